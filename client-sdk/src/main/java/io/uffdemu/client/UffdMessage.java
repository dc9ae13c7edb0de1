package io.uffdemu.client;

/**
 * A {@code struct uffd_msg}, as read from the uffd. {@link #seq()} is the server's monotonic sequence number
 * on this uffd.
 *
 * <pre>{@code
 * switch (msg) {
 *   case UffdMessage.PageFault pf -> serve(pf.address());
 *   case UffdMessage.RemoveEvent rm -> forget(rm.start(), rm.end());
 *   default -> {}
 * }
 * }</pre>
 */
public sealed interface UffdMessage {
  long seq();

  /**
   * UFFD_EVENT_PAGEFAULT.
   *
   * @param flags UFFD_PAGEFAULT_FLAG_* bits
   * @param ptid faulting thread id when THREAD_ID was negotiated, else 0
   */
  record PageFault(long address, long flags, boolean write, boolean wp, boolean minor, int ptid, long seq)
      implements UffdMessage {
    public static PageFault of(long address, long flags, int ptid, long seq) {
      return new PageFault(address, flags, (flags & Linux.UFFD_PAGEFAULT_FLAG_WRITE) != 0,
          (flags & Linux.UFFD_PAGEFAULT_FLAG_WP) != 0, (flags & Linux.UFFD_PAGEFAULT_FLAG_MINOR) != 0, ptid, seq);
    }

    @Override
    public String toString() {
      return "PageFault[0x" + Long.toHexString(address) + (write ? " write" : " read") + (wp ? " wp" : "")
          + (minor ? " minor" : "") + " ptid=" + ptid + " seq=" + seq + "]";
    }
  }

  /** UFFD_EVENT_FORK: {@code ufd} is the child's uffd, installed in the reader's fd table. */
  record ForkEvent(int ufd, int childPid, long seq) implements UffdMessage {}

  /** UFFD_EVENT_REMAP (mremap). */
  record RemapEvent(long from, long to, long len, long seq) implements UffdMessage {}

  /** UFFD_EVENT_REMOVE (madvise DONTNEED/FREE/REMOVE). Resolving ioctls fail with EAGAIN until it is read. */
  record RemoveEvent(long start, long end, long seq) implements UffdMessage {}

  /** UFFD_EVENT_UNMAP (munmap or implicit unmap). */
  record UnmapEvent(long start, long end, long seq) implements UffdMessage {}
}
