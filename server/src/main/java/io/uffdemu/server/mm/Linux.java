package io.uffdemu.server.mm;

/**
 * Kernel constants the core speaks (x86_64 values): {@code include/uapi/asm-generic/mman-common.h},
 * {@code include/uapi/linux/memfd.h}, {@code include/uapi/linux/falloc.h}, {@code include/uapi/linux/userfaultfd.h},
 * {@code include/uapi/linux/fs.h} (PAGEMAP_SCAN).
 */
public final class Linux {
    private Linux() {
    }

    public static final int PAGE_SHIFT = 12;
    public static final long PAGE_SIZE = 1L << PAGE_SHIFT;
    public static final long PMD_SIZE = 1L << 21;
    public static final long PUD_SIZE = 1L << 30;
    /** x86_64 4-level TASK_SIZE_MAX: {@code (1 << 47) - PAGE_SIZE}. */
    public static final long TASK_SIZE = (1L << 47) - PAGE_SIZE;
    /** {@code vm.mmap_min_addr} default. */
    public static final long MMAP_MIN_ADDR = 65536;
    /** Top of the emulated mmap area (below the stack), where top-down allocation starts. */
    public static final long MMAP_BASE = 0x7ffff7fff000L;

    public static final int PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;

    public static final int MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_SHARED_VALIDATE = 0x03, MAP_TYPE = 0x0f;
    public static final int MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_NORESERVE = 0x4000, MAP_POPULATE = 0x8000;
    public static final int MAP_HUGETLB = 0x40000, MAP_FIXED_NOREPLACE = 0x100000;
    public static final int MAP_HUGE_SHIFT = 26, MAP_HUGE_MASK = 0x3f;
    public static final int MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT, MAP_HUGE_1GB = 30 << MAP_HUGE_SHIFT;
    /** Flags mmap accepts (others are ignored by the kernel for MAP_PRIVATE/MAP_SHARED; we accept the same). */
    public static final int MAP_KNOWN = MAP_TYPE | MAP_FIXED | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE
            | MAP_HUGETLB | MAP_FIXED_NOREPLACE | (MAP_HUGE_MASK << MAP_HUGE_SHIFT) | 0x0100 /*GROWSDOWN*/
            | 0x0800 /*DENYWRITE*/ | 0x1000 /*EXECUTABLE*/ | 0x2000 /*LOCKED*/ | 0x10000 /*NONBLOCK*/
            | 0x20000 /*STACK*/ | 0x80000 /*SYNC*/;

    public static final int MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2, MREMAP_DONTUNMAP = 4;

    public static final int MADV_NORMAL = 0, MADV_RANDOM = 1, MADV_SEQUENTIAL = 2, MADV_WILLNEED = 3;
    public static final int MADV_DONTNEED = 4, MADV_FREE = 8, MADV_REMOVE = 9, MADV_DONTFORK = 10, MADV_DOFORK = 11;
    public static final int MADV_HUGEPAGE = 14, MADV_NOHUGEPAGE = 15, MADV_COLD = 20, MADV_PAGEOUT = 21;
    public static final int MADV_POPULATE_READ = 22, MADV_POPULATE_WRITE = 23, MADV_DONTNEED_LOCKED = 24;
    public static final int MADV_COLLAPSE = 25;
    public static final int MADV_GUARD_INSTALL = 102, MADV_GUARD_REMOVE = 103;

    public static final int MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2, MFD_HUGETLB = 4, MFD_NOEXEC_SEAL = 8, MFD_EXEC = 0x10;
    public static final int MFD_HUGE_SHIFT = 26, MFD_HUGE_MASK = 0x3f;

    public static final int FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2;

    public static final int O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;

    public static final int SIGBUS = 7, SIGSEGV = 11;
    public static final int SEGV_MAPERR = 1, SEGV_ACCERR = 2, BUS_ADRERR = 2;

    // ---- userfaultfd uapi ----
    public static final int UFFD_API = 0xAA;
    public static final int UFFD_USER_MODE_ONLY = 1;

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
    /** Every feature Linux 6.18 knows (and supports on x86_64 with PTE markers). */
    public static final long UFFD_API_FEATURES = (1L << 17) - 1;
    /** Internal "UFFDIO_API done" bit the kernel keeps in ctx->features (shown in fdinfo). */
    public static final long UFFD_FEATURE_INITIALIZED = 1L << 31;

    public static final int _UFFDIO_REGISTER = 0, _UFFDIO_UNREGISTER = 1, _UFFDIO_WAKE = 2, _UFFDIO_COPY = 3;
    public static final int _UFFDIO_ZEROPAGE = 4, _UFFDIO_MOVE = 5, _UFFDIO_WRITEPROTECT = 6, _UFFDIO_CONTINUE = 7;
    public static final int _UFFDIO_POISON = 8, _UFFDIO_API = 0x3F;
    public static final long UFFD_API_IOCTLS = (1L << _UFFDIO_REGISTER) | (1L << _UFFDIO_UNREGISTER) | (1L << _UFFDIO_API);
    public static final long UFFD_API_RANGE_IOCTLS = (1L << _UFFDIO_WAKE) | (1L << _UFFDIO_COPY) | (1L << _UFFDIO_ZEROPAGE)
            | (1L << _UFFDIO_MOVE) | (1L << _UFFDIO_WRITEPROTECT) | (1L << _UFFDIO_CONTINUE) | (1L << _UFFDIO_POISON);
    public static final long UFFD_API_RANGE_IOCTLS_BASIC = (1L << _UFFDIO_WAKE) | (1L << _UFFDIO_COPY)
            | (1L << _UFFDIO_WRITEPROTECT) | (1L << _UFFDIO_CONTINUE) | (1L << _UFFDIO_POISON);

    public static final int UFFDIO_REGISTER_MODE_MISSING = 1, UFFDIO_REGISTER_MODE_WP = 2, UFFDIO_REGISTER_MODE_MINOR = 4;
    public static final int UFFDIO_COPY_MODE_DONTWAKE = 1, UFFDIO_COPY_MODE_WP = 2;
    public static final int UFFDIO_ZEROPAGE_MODE_DONTWAKE = 1;
    public static final int UFFDIO_WRITEPROTECT_MODE_WP = 1, UFFDIO_WRITEPROTECT_MODE_DONTWAKE = 2;
    public static final int UFFDIO_CONTINUE_MODE_DONTWAKE = 1, UFFDIO_CONTINUE_MODE_WP = 2;
    public static final int UFFDIO_POISON_MODE_DONTWAKE = 1;
    public static final int UFFDIO_MOVE_MODE_DONTWAKE = 1, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES = 2;

    public static final int UFFD_EVENT_PAGEFAULT = 0x12, UFFD_EVENT_FORK = 0x13, UFFD_EVENT_REMAP = 0x14;
    public static final int UFFD_EVENT_REMOVE = 0x15, UFFD_EVENT_UNMAP = 0x16;
    public static final int UFFD_PAGEFAULT_FLAG_WRITE = 1, UFFD_PAGEFAULT_FLAG_WP = 2, UFFD_PAGEFAULT_FLAG_MINOR = 4;

    // ---- pagemap ----
    public static final long PM_PRESENT = 1L << 63, PM_SWAP = 1L << 62, PM_FILE = 1L << 61, PM_GUARD_REGION = 1L << 58;
    public static final long PM_UFFD_WP = 1L << 57, PM_MMAP_EXCLUSIVE = 1L << 56, PM_SOFT_DIRTY = 1L << 55;
    public static final long PM_PFRAME_MASK = (1L << 55) - 1;

    public static final long PAGE_IS_WPALLOWED = 1 << 0, PAGE_IS_WRITTEN = 1 << 1, PAGE_IS_FILE = 1 << 2;
    public static final long PAGE_IS_PRESENT = 1 << 3, PAGE_IS_SWAPPED = 1 << 4, PAGE_IS_PFNZERO = 1 << 5;
    public static final long PAGE_IS_HUGE = 1 << 6, PAGE_IS_SOFT_DIRTY = 1 << 7, PAGE_IS_GUARD = 1 << 8;
    public static final long PM_SCAN_CATEGORIES = (1 << 9) - 1;
    public static final long PM_SCAN_WP_MATCHING = 1, PM_SCAN_CHECK_WPASYNC = 2;
    public static final long PM_SCAN_FLAGS = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;

    public static boolean isPageAligned(long v, long pageSize) {
        return (v & (pageSize - 1)) == 0;
    }
}
