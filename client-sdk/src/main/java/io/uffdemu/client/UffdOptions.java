package io.uffdemu.client;

/**
 * Arguments of userfaultfd(2) plus the UFFDIO_API handshake.
 * {@link #DEFAULT}: {@code O_CLOEXEC | O_NONBLOCK}, no features, the syscall (not /dev/userfaultfd).
 *
 * <pre>{@code
 * Userfaultfd uffd = process.userfaultfd(UffdOptions.DEFAULT
 *     .withFeatures(Linux.UFFD_FEATURE_EVENT_REMOVE | Linux.UFFD_FEATURE_THREAD_ID).userModeOnly());
 * }</pre>
 *
 * @param flags O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY
 * @param features UFFD_FEATURE_* bits requested
 * @param devUserfaultfd open through /dev/userfaultfd (USERFAULTFD_IOC_NEW)
 */
public record UffdOptions(int flags, long features, boolean devUserfaultfd) {
  public static final UffdOptions DEFAULT = new UffdOptions(Linux.O_CLOEXEC | Linux.O_NONBLOCK, 0, false);

  public UffdOptions withFlags(int flags) {
    return new UffdOptions(flags, features, devUserfaultfd);
  }

  public UffdOptions withFeatures(long features) {
    return new UffdOptions(flags, features, devUserfaultfd);
  }

  public UffdOptions withDevUserfaultfd(boolean dev) {
    return new UffdOptions(flags, features, dev);
  }

  public UffdOptions userModeOnly() {
    return withFlags(flags | Linux.UFFD_USER_MODE_ONLY);
  }
}
