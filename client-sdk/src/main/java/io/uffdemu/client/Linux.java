package io.uffdemu.client;

/**
 * Kernel constants, with the values of the Linux uapi headers ({@code include/uapi/linux/userfaultfd.h},
 * {@code include/uapi/linux/fs.h}, {@code include/uapi/asm-generic/mman-common.h}, {@code linux/memfd.h},
 * {@code linux/falloc.h}, {@code asm-generic/errno*.h}). The uffdemu API carries these numbers unchanged.
 *
 * <pre>{@code
 * long addr = process.mmap(MmapOptions.anonymous(1 << 20).withProt(Linux.PROT_READ | Linux.PROT_WRITE));
 * uffd.register(new AddrRange(addr, 1 << 20), Linux.UFFDIO_REGISTER_MODE_MISSING);
 * }</pre>
 */
public final class Linux {
  private Linux() {}

  // ---- mman-common.h / mman.h
  public static final int PROT_NONE = 0x0;
  public static final int PROT_READ = 0x1;
  public static final int PROT_WRITE = 0x2;
  public static final int PROT_EXEC = 0x4;

  public static final int MAP_SHARED = 0x01;
  public static final int MAP_PRIVATE = 0x02;
  public static final int MAP_SHARED_VALIDATE = 0x03;
  public static final int MAP_FIXED = 0x10;
  public static final int MAP_ANONYMOUS = 0x20;
  public static final int MAP_NORESERVE = 0x4000;
  public static final int MAP_POPULATE = 0x8000;
  public static final int MAP_HUGETLB = 0x40000;
  public static final int MAP_FIXED_NOREPLACE = 0x100000;
  public static final int MAP_HUGE_SHIFT = 26;
  public static final int MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT;
  public static final int MAP_HUGE_1GB = 30 << MAP_HUGE_SHIFT;

  public static final int MREMAP_MAYMOVE = 1;
  public static final int MREMAP_FIXED = 2;
  public static final int MREMAP_DONTUNMAP = 4;

  public static final int MADV_NORMAL = 0;
  public static final int MADV_RANDOM = 1;
  public static final int MADV_SEQUENTIAL = 2;
  public static final int MADV_WILLNEED = 3;
  public static final int MADV_DONTNEED = 4;
  public static final int MADV_FREE = 8;
  public static final int MADV_REMOVE = 9;
  public static final int MADV_DONTFORK = 10;
  public static final int MADV_DOFORK = 11;
  public static final int MADV_MERGEABLE = 12;
  public static final int MADV_UNMERGEABLE = 13;
  public static final int MADV_HUGEPAGE = 14;
  public static final int MADV_NOHUGEPAGE = 15;
  public static final int MADV_DONTDUMP = 16;
  public static final int MADV_DODUMP = 17;
  public static final int MADV_WIPEONFORK = 18;
  public static final int MADV_KEEPONFORK = 19;
  public static final int MADV_COLD = 20;
  public static final int MADV_PAGEOUT = 21;
  public static final int MADV_POPULATE_READ = 22;
  public static final int MADV_POPULATE_WRITE = 23;
  public static final int MADV_DONTNEED_LOCKED = 24;
  public static final int MADV_COLLAPSE = 25;
  public static final int MADV_GUARD_INSTALL = 102;
  public static final int MADV_GUARD_REMOVE = 103;

  // ---- memfd.h
  public static final int MFD_CLOEXEC = 0x0001;
  public static final int MFD_ALLOW_SEALING = 0x0002;
  public static final int MFD_HUGETLB = 0x0004;
  public static final int MFD_NOEXEC_SEAL = 0x0008;
  public static final int MFD_EXEC = 0x0010;
  public static final int MFD_HUGE_2MB = 21 << 26;
  public static final int MFD_HUGE_1GB = 30 << 26;

  // ---- falloc.h
  public static final int FALLOC_FL_KEEP_SIZE = 0x01;
  public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
  public static final int FALLOC_FL_COLLAPSE_RANGE = 0x08;
  public static final int FALLOC_FL_ZERO_RANGE = 0x10;
  public static final int FALLOC_FL_INSERT_RANGE = 0x20;
  public static final int FALLOC_FL_UNSHARE_RANGE = 0x40;

  // ---- fcntl.h / userfaultfd(2) flags
  public static final int O_NONBLOCK = 0x800;
  public static final int O_CLOEXEC = 0x80000;
  public static final int UFFD_USER_MODE_ONLY = 1;

  // ---- userfaultfd.h
  public static final int UFFD_API = 0xAA;

  public static final int UFFD_EVENT_PAGEFAULT = 0x12;
  public static final int UFFD_EVENT_FORK = 0x13;
  public static final int UFFD_EVENT_REMAP = 0x14;
  public static final int UFFD_EVENT_REMOVE = 0x15;
  public static final int UFFD_EVENT_UNMAP = 0x16;

  public static final long UFFD_PAGEFAULT_FLAG_WRITE = 1L << 0;
  public static final long UFFD_PAGEFAULT_FLAG_WP = 1L << 1;
  public static final long UFFD_PAGEFAULT_FLAG_MINOR = 1L << 2;

  public static final long UFFD_FEATURE_PAGEFAULT_FLAG_WP = 1L << 0;
  public static final long UFFD_FEATURE_EVENT_FORK = 1L << 1;
  public static final long UFFD_FEATURE_EVENT_REMAP = 1L << 2;
  public static final long UFFD_FEATURE_EVENT_REMOVE = 1L << 3;
  public static final long UFFD_FEATURE_MISSING_HUGETLBFS = 1L << 4;
  public static final long UFFD_FEATURE_MISSING_SHMEM = 1L << 5;
  public static final long UFFD_FEATURE_EVENT_UNMAP = 1L << 6;
  public static final long UFFD_FEATURE_SIGBUS = 1L << 7;
  public static final long UFFD_FEATURE_THREAD_ID = 1L << 8;
  public static final long UFFD_FEATURE_MINOR_HUGETLBFS = 1L << 9;
  public static final long UFFD_FEATURE_MINOR_SHMEM = 1L << 10;
  public static final long UFFD_FEATURE_EXACT_ADDRESS = 1L << 11;
  public static final long UFFD_FEATURE_WP_HUGETLBFS_SHMEM = 1L << 12;
  public static final long UFFD_FEATURE_WP_UNPOPULATED = 1L << 13;
  public static final long UFFD_FEATURE_POISON = 1L << 14;
  public static final long UFFD_FEATURE_WP_ASYNC = 1L << 15;
  public static final long UFFD_FEATURE_MOVE = 1L << 16;

  /** Ioctl numbers ({@code _UFFDIO_*}): bit positions in {@code uffdio_api.ioctls} / {@code uffdio_register.ioctls}. */
  public static final int _UFFDIO_REGISTER = 0x00;
  public static final int _UFFDIO_UNREGISTER = 0x01;
  public static final int _UFFDIO_WAKE = 0x02;
  public static final int _UFFDIO_COPY = 0x03;
  public static final int _UFFDIO_ZEROPAGE = 0x04;
  public static final int _UFFDIO_MOVE = 0x05;
  public static final int _UFFDIO_WRITEPROTECT = 0x06;
  public static final int _UFFDIO_CONTINUE = 0x07;
  public static final int _UFFDIO_POISON = 0x08;
  public static final int _UFFDIO_API = 0x3F;

  public static final long UFFDIO_REGISTER_MODE_MISSING = 1L << 0;
  public static final long UFFDIO_REGISTER_MODE_WP = 1L << 1;
  public static final long UFFDIO_REGISTER_MODE_MINOR = 1L << 2;

  public static final long UFFDIO_COPY_MODE_DONTWAKE = 1L << 0;
  public static final long UFFDIO_COPY_MODE_WP = 1L << 1;
  public static final long UFFDIO_ZEROPAGE_MODE_DONTWAKE = 1L << 0;
  public static final long UFFDIO_WRITEPROTECT_MODE_WP = 1L << 0;
  public static final long UFFDIO_WRITEPROTECT_MODE_DONTWAKE = 1L << 1;
  public static final long UFFDIO_CONTINUE_MODE_DONTWAKE = 1L << 0;
  public static final long UFFDIO_CONTINUE_MODE_WP = 1L << 1;
  public static final long UFFDIO_POISON_MODE_DONTWAKE = 1L << 0;
  public static final long UFFDIO_MOVE_MODE_DONTWAKE = 1L << 0;
  public static final long UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES = 1L << 1;

  // ---- fs.h: PAGEMAP_SCAN
  public static final long PAGE_IS_WPALLOWED = 1L << 0;
  public static final long PAGE_IS_WRITTEN = 1L << 1;
  public static final long PAGE_IS_FILE = 1L << 2;
  public static final long PAGE_IS_PRESENT = 1L << 3;
  public static final long PAGE_IS_SWAPPED = 1L << 4;
  public static final long PAGE_IS_PFNZERO = 1L << 5;
  public static final long PAGE_IS_HUGE = 1L << 6;
  public static final long PAGE_IS_SOFT_DIRTY = 1L << 7;
  /** Linux 6.15+. */
  public static final long PAGE_IS_GUARD = 1L << 8;

  public static final long PM_SCAN_WP_MATCHING = 1L << 0;
  public static final long PM_SCAN_CHECK_WPASYNC = 1L << 1;

  // ---- /proc/PID/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst)
  public static final int PM_PRESENT_BIT = 63;
  public static final int PM_SWAP_BIT = 62;
  public static final int PM_FILE_BIT = 61;
  public static final int PM_UFFD_WP_BIT = 57;
  public static final int PM_MMAP_EXCLUSIVE_BIT = 56;
  public static final int PM_SOFT_DIRTY_BIT = 55;
  public static final long PM_PFN_MASK = (1L << 55) - 1;

  // ---- signals
  public static final int SIGBUS = 7;
  public static final int SIGSEGV = 11;

  // ---- errno (asm-generic/errno-base.h, errno.h)
  public static final int EPERM = 1;
  public static final int ENOENT = 2;
  public static final int ESRCH = 3;
  public static final int EINTR = 4;
  public static final int E2BIG = 7;
  public static final int EBADF = 9;
  public static final int EAGAIN = 11;
  public static final int ENOMEM = 12;
  public static final int EACCES = 13;
  public static final int EFAULT = 14;
  public static final int EBUSY = 16;
  public static final int EEXIST = 17;
  public static final int EINVAL = 22;
  public static final int EMFILE = 24;
  public static final int ENOTTY = 25;
  public static final int ENOSPC = 28;
  public static final int ERANGE = 34;
  public static final int ENOSYS = 38;
  public static final int EOPNOTSUPP = 95;

  /** Symbolic name of an errno value, e.g. {@code "EEXIST"} for 17, or {@code "E<n>"} when unknown. */
  public static String errnoName(int errno) {
    return switch (errno) {
      case EPERM -> "EPERM";
      case ENOENT -> "ENOENT";
      case ESRCH -> "ESRCH";
      case EINTR -> "EINTR";
      case E2BIG -> "E2BIG";
      case EBADF -> "EBADF";
      case EAGAIN -> "EAGAIN";
      case ENOMEM -> "ENOMEM";
      case EACCES -> "EACCES";
      case EFAULT -> "EFAULT";
      case EBUSY -> "EBUSY";
      case EEXIST -> "EEXIST";
      case EINVAL -> "EINVAL";
      case EMFILE -> "EMFILE";
      case ENOTTY -> "ENOTTY";
      case ENOSPC -> "ENOSPC";
      case ERANGE -> "ERANGE";
      case ENOSYS -> "ENOSYS";
      case EOPNOTSUPP -> "EOPNOTSUPP";
      default -> "E" + errno;
    };
  }
}
