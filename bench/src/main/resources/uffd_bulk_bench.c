// Bulk uffd operations on the real kernel, for ratios against the emulator (same operations, same sizes).
// Prints "<op> <microseconds> us" lines: wp-populated, wp-unpopulated, copy-4k, copy-2m, fork-1g. Usage: ./uffd_bulk_bench BYTES   (as root)
#define _GNU_SOURCE
#include <linux/userfaultfd.h>
#include <linux/fs.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>
#include <sys/wait.h>
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1<<13)
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static double now_us(void){ struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec*1e6 + t.tv_nsec*1e-3; }
static long uffd_open(unsigned long features){
  long u = syscall(SYS_userfaultfd, O_CLOEXEC|O_NONBLOCK);
  struct uffdio_api api={.api=UFFD_API,.features=features};
  if(u<0 || ioctl(u,UFFDIO_API,&api)){perror("uffd");exit(1);} return u; }
static void wp_case(const char *name, size_t len, int populate){
  long u = uffd_open(populate?0:UFFD_FEATURE_WP_UNPOPULATED);
  char *a = mmap(0,len,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  if(a==MAP_FAILED){perror("mmap");exit(1);}
  if(populate && madvise(a,len,MADV_POPULATE_WRITE)){perror("populate");exit(1);}
  struct uffdio_register r={.range={(unsigned long)a,len},.mode=UFFDIO_REGISTER_MODE_WP};
  if(ioctl(u,UFFDIO_REGISTER,&r)){perror("reg");exit(1);}
  struct uffdio_writeprotect w={.range={(unsigned long)a,len},.mode=UFFDIO_WRITEPROTECT_MODE_WP};
  double t0=now_us(); if(ioctl(u,UFFDIO_WRITEPROTECT,&w)){perror("wp");exit(1);} double t1=now_us();
  printf("%s %.1f us\n",name,t1-t0);
  munmap(a,len); close(u);
}
// UFFDIO_COPY of every page of an anonymous MISSING range, `step` bytes per ioctl (4 KiB or 2 MiB).
static void copy_case(const char *name, size_t len, size_t step){
  long u = uffd_open(0);
  char *a = mmap(0,len,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  if(a==MAP_FAILED){perror("mmap");exit(1);}
  struct uffdio_register r={.range={(unsigned long)a,len},.mode=UFFDIO_REGISTER_MODE_MISSING};
  if(ioctl(u,UFFDIO_REGISTER,&r)){perror("reg");exit(1);}
  char *src = malloc(step); memset(src,7,step);
  double t0=now_us();
  for(size_t off=0; off<len; off+=step){
    struct uffdio_copy c={.dst=(unsigned long)a+off,.src=(unsigned long)src,.len=step,.mode=UFFDIO_COPY_MODE_DONTWAKE};
    if(ioctl(u,UFFDIO_COPY,&c) || c.copy!=(long long)step){perror("copy");exit(1);} }
  double t1=now_us(); printf("%s %.1f us\n",name,t1-t0);
  munmap(a,len); close(u); free(src);
}
// fork() of a process with `len` bytes of populated private anonymous memory: the time of fork() in the parent
// (dup_mmap() copies the PTEs and write-protects both sides); the child _exit()s at once, reaped after timing.
static void fork_case(size_t len){
  char *a = mmap(0,len,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  if(a==MAP_FAILED){perror("mmap");exit(1);}
  if(madvise(a,len,MADV_POPULATE_WRITE)){perror("populate");exit(1);}
  fflush(stdout);
  double t0=now_us(); pid_t p=fork(); if(p==0) _exit(0); double t1=now_us();
  if(p<0){perror("fork");exit(1);}
  int st; if(waitpid(p,&st,0)!=p || !WIFEXITED(st)){perror("waitpid");exit(1);}
  printf("fork-1g %.1f us\n",t1-t0);
  munmap(a,len);
}
int main(int argc,char**argv){
  size_t len = argc>1? strtoull(argv[1],0,10) : (1UL<<30);
  wp_case("wp-populated",len,1); wp_case("wp-unpopulated",len,0); copy_case("copy-4k",len,4096); copy_case("copy-2m",len,2UL<<20); fork_case(len);
  return 0;
}
