package io.uffdemu.server.mm;

/**
 * {@code struct uffd_msg} ({@code include/uapi/linux/userfaultfd.h}): what read(2) on a userfaultfd returns.
 * {@link #seq} is the emulator's per-uffd sequence number (not part of the kernel struct).
 */
public sealed interface UffdMsg {
    int event();

    long seq();

    /** UFFD_EVENT_PAGEFAULT: flags are UFFD_PAGEFAULT_FLAG_WRITE / _WP / _MINOR; ptid 0 unless THREAD_ID. */
    record Pagefault(long seq, long flags, long address, int ptid) implements UffdMsg {
        public int event() {
            return Linux.UFFD_EVENT_PAGEFAULT;
        }
    }

    /** UFFD_EVENT_FORK: {@code ufd} is the new fd, installed in the reader's fd table at read time. */
    record Fork(long seq, int ufd, int childPid) implements UffdMsg {
        public int event() {
            return Linux.UFFD_EVENT_FORK;
        }
    }

    record Remap(long seq, long from, long to, long len) implements UffdMsg {
        public int event() {
            return Linux.UFFD_EVENT_REMAP;
        }
    }

    record Remove(long seq, long start, long end) implements UffdMsg {
        public int event() {
            return Linux.UFFD_EVENT_REMOVE;
        }
    }

    record Unmap(long seq, long start, long end) implements UffdMsg {
        public int event() {
            return Linux.UFFD_EVENT_UNMAP;
        }
    }
}
