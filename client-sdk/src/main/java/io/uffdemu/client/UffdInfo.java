package io.uffdemu.client;

import java.util.List;

/**
 * What one userfaultfd looks like from outside: {@code /proc/PID/fdinfo/FD} ({@code pending}, {@code total},
 * {@code API}) plus the ranges registered through it. From {@link Userfaultfd#describe()} or
 * {@link Process#userfaultfds()}.
 *
 * <pre>{@code
 * for (UffdInfo u : process.userfaultfds()) {
 *   System.out.printf("fd %d: %d faults unread, %d blocked, %d ranges%n", u.fd(), u.pendingFaults(),
 *       u.totalFaults(), u.ranges().size());
 * }
 * }</pre>
 *
 * @param flags userfaultfd(2) flags (O_CLOEXEC, O_NONBLOCK, UFFD_USER_MODE_ONLY)
 * @param apiDone UFFDIO_API was answered
 * @param features negotiated UFFD_FEATURE_* bits
 * @param ranges registered ranges in address order (one per VMA)
 * @param pendingFaults faults queued and not yet read (fdinfo {@code pending})
 * @param totalFaults faults blocked on this uffd, read or not (fdinfo {@code total})
 * @param pendingEvents non-cooperative events queued and not yet read (0 on the native backend)
 * @param handlerAttached a Handle stream is attached now
 */
public record UffdInfo(int pid, int fd, int flags, boolean apiDone, long features, List<RegisteredRange> ranges,
    int pendingFaults, int totalFaults, int pendingEvents, boolean handlerAttached) {
  public UffdInfo {
    ranges = List.copyOf(ranges);
  }

  /**
   * A range registered through a uffd, with its UFFDIO_REGISTER_MODE_* bits.
   *
   * <pre>{@code
   * boolean wp = (r.mode() & Linux.UFFDIO_REGISTER_MODE_WP) != 0;
   * }</pre>
   */
  public record RegisteredRange(AddrRange range, long mode) {}
}
