// The yardstick's round trip (uffd_kernel_bench.c: T faulting threads touch one byte of each page of their
// slice, one handler thread reads up to 64 messages per read and resolves each) on hugetlbfs: a MFD_HUGETLB memfd
// of 2 MiB pages mapped MAP_SHARED; MISSING is resolved by UFFDIO_COPY of the whole 2 MiB page, WP by
// UFFDIO_WRITEPROTECT clear of it. Same output lines as the yardstick ("hugetlb-missing", "hugetlb-wp").
// Usage: ./uffd_hugetlb_bench HUGE_PAGES [THREADS]   (needs HUGE_PAGES free 2 MiB pages: vm.nr_hugepages)
#define _GNU_SOURCE
#include <linux/userfaultfd.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <poll.h>
#include <fcntl.h>
#include <time.h>
#include <errno.h>
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 4
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif

static long uffd; static char *area; static size_t npages; static const size_t PS = 2UL << 20;
static volatile int done; static int nthreads=1; static volatile int finished; static char *srcpage;

static double now(void){ struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec + t.tv_nsec*1e-9; }
static void *toucher(void *a){ long id=(long)a; size_t per=npages/nthreads;
  for(size_t i=id*per;i<(id+1)*per;i++) area[i*PS] = (char)i;
  if(__sync_add_and_fetch(&finished,1)==nthreads) done=1; return 0; }
static void *handler(void *a){
  int wp = *(int*)a; struct uffd_msg msgs[64];
  while(!done){
    struct pollfd p={.fd=uffd,.events=POLLIN}; if(poll(&p,1,100)<=0) continue;
    ssize_t n = read(uffd,msgs,sizeof msgs); if(n<0){ if(errno==EAGAIN) continue; perror("read"); exit(1);}
    for(int i=0;i<n/(ssize_t)sizeof(struct uffd_msg);i++){
      unsigned long addr = msgs[i].arg.pagefault.address & ~(PS-1);
      if(wp){ struct uffdio_writeprotect w={.range={addr,PS},.mode=0}; if(ioctl(uffd,UFFDIO_WRITEPROTECT,&w)) {perror("wp");exit(1);} }
      else { struct uffdio_copy c={.dst=addr,.src=(unsigned long)srcpage,.len=PS,.mode=0}; if(ioctl(uffd,UFFDIO_COPY,&c) && errno!=EEXIST){perror("copy");exit(1);} }
    }
  }
  return 0;
}
static void run(const char *name, int wp){
  uffd = syscall(SYS_userfaultfd, O_CLOEXEC|O_NONBLOCK);
  struct uffdio_api api={.api=UFFD_API,.features= wp? UFFD_FEATURE_WP_HUGETLBFS_SHMEM:0};
  if(ioctl(uffd,UFFDIO_API,&api)){perror("api");exit(1);}
  size_t len=npages*PS;
  int fd=memfd_create("b",MFD_HUGETLB|MFD_HUGE_2MB); if(fd<0){perror("memfd_create");exit(1);}
  if(ftruncate(fd,len)){perror("ftruncate");exit(1);}
  area=mmap(0,len,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0); close(fd);
  if(area==MAP_FAILED){perror("mmap (free 2 MiB huge pages: vm.nr_hugepages)");exit(1);}
  if(wp) memset(area,1,len);
  struct uffdio_register r={.range={(unsigned long)area,len},.mode= wp? UFFDIO_REGISTER_MODE_WP:UFFDIO_REGISTER_MODE_MISSING};
  if(ioctl(uffd,UFFDIO_REGISTER,&r)){perror("reg");exit(1);}
  if(wp){ struct uffdio_writeprotect w={.range={(unsigned long)area,len},.mode=UFFDIO_WRITEPROTECT_MODE_WP}; if(ioctl(uffd,UFFDIO_WRITEPROTECT,&w)){perror("wpall");exit(1);} }
  done=0; finished=0; pthread_t h,t[256]; double t0=now();
  pthread_create(&h,0,handler,&wp); for(long i=0;i<nthreads;i++) pthread_create(&t[i],0,toucher,(void*)i);
  for(int i=0;i<nthreads;i++) pthread_join(t[i],0); double t1=now(); pthread_join(h,0);
  size_t n=npages/nthreads*nthreads;
  printf("%-14s threads=%d pages=%zu  %.0f faults/s  %.2f us/fault\n",name,nthreads,n,n/(t1-t0),(t1-t0)*1e6/n);
  munmap(area,len); close(uffd);
}
int main(int argc,char**argv){
  npages = argc>1? strtoul(argv[1],0,10): 256; nthreads = argc>2? atoi(argv[2]):1;
  if(nthreads<1 || nthreads>256 || (size_t)nthreads>npages){fprintf(stderr,"threads: 1..256 and at most HUGE_PAGES\n");return 2;}
  srcpage = malloc(PS); memset(srcpage,7,PS);
  run("hugetlb-missing",0); run("hugetlb-wp",1);
  return 0;
}
