// Bulk uffd operations on the real kernel, for ratios against the emulator (same operations, same sizes).
// Prints "<op> <microseconds> us" lines. Usage: ./uffd_bulk_bench BYTES   (as root)
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
static void copy_case(size_t len){
  long u = uffd_open(0);
  char *a = mmap(0,len,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  struct uffdio_register r={.range={(unsigned long)a,len},.mode=UFFDIO_REGISTER_MODE_MISSING};
  if(ioctl(u,UFFDIO_REGISTER,&r)){perror("reg");exit(1);}
  char *src = malloc(4096); memset(src,7,4096);
  double t0=now_us();
  for(size_t off=0; off<len; off+=4096){ struct uffdio_copy c={.dst=(unsigned long)a+off,.src=(unsigned long)src,.len=4096,.mode=UFFDIO_COPY_MODE_DONTWAKE}; if(ioctl(u,UFFDIO_COPY,&c)){perror("copy");exit(1);} }
  double t1=now_us(); printf("copy-4k %.1f us\n",t1-t0);
  munmap(a,len); close(u); free(src);
}
int main(int argc,char**argv){
  size_t len = argc>1? strtoull(argv[1],0,10) : (1UL<<30);
  wp_case("wp-populated",len,1); wp_case("wp-unpopulated",len,0); copy_case(len);
  return 0;
}
