package io.uffdemu.client;

/**
 * A call failed the way the kernel fails it: with an errno. Decoded from the {@code uffdemu.v1.ErrnoInfo}
 * detail of the gRPC status (never from message text). Common errno values have their own subclass
 * ({@link EexistException}, {@link EagainException}, ...), created by {@link #of}.
 *
 * <p>{@link #bytesDone()} is the progress of a partial operation (bytes copied by UFFDIO_COPY before the
 * failure, or pages for PAGEMAP_SCAN). It is never negative: a kernel-style negative count is decoded as
 * the errno it encodes, not as a huge partial count.
 *
 * <pre>{@code
 * try { uffd.copy(dst, data, 0); }
 * catch (EexistException e) { resolved(dst); } // already populated
 * catch (EagainException e) { long done = e.bytesDone(); retryLater(dst + done); }
 * }</pre>
 */
public class ErrnoException extends UffdemuException {
  private final int errno;
  private final String name;
  private final String call;
  private final long bytesDone;
  /** ErrnoInfo.reason: "QUOTA_EXCEEDED" for a tenant or global quota, empty otherwise; set once by {@link #of}. */
  private String reason = "";

  public ErrnoException(int errno, String name, String call, long bytesDone, String grpcCode, Throwable cause) {
    super(call + ": " + name + " (errno " + errno + ")" + (bytesDone > 0 ? ", " + bytesDone + " bytes done" : ""),
        grpcCode, cause);
    this.errno = errno;
    this.name = name;
    this.call = call;
    this.bytesDone = Math.max(0, bytesDone);
  }

  /** Kernel errno value, e.g. 17. */
  public int errno() {
    return errno;
  }

  /** Symbolic errno name, e.g. "EEXIST". */
  public String name() {
    return name;
  }

  /** The syscall or ioctl that failed, e.g. "UFFDIO_COPY". */
  public String call() {
    return call;
  }

  /** Why the server refused beyond the errno: {@code "QUOTA_EXCEEDED"} for a quota, empty otherwise. */
  public String reason() {
    return reason;
  }

  /**
   * The failure is a quota of the server ({@code uffdemu.quotas.*}: the tenant's memory cgroup, mappings, uffds,
   * processes, request rate...), not the emulated kernel's own answer; the errno is still the kernel's for that limit.
   */
  public boolean isQuota() {
    return "QUOTA_EXCEEDED".equals(reason);
  }

  /** Progress before the failure (bytes, or pages for PAGEMAP_SCAN); 0 when none; never negative. */
  public long bytesDone() {
    return bytesDone;
  }

  /**
   * Creates the most specific exception for {@code errno}.
   *
   * @param name symbolic name; when null or blank, {@link Linux#errnoName} is used
   * @param grpcCode the gRPC code name that carried it, or null
   */
  public static ErrnoException of(int errno, String name, String call, long bytesDone, String grpcCode,
      String reason, Throwable cause) {
    ErrnoException e = of(errno, name, call, bytesDone, grpcCode, cause);
    e.reason = reason == null ? "" : reason;
    return e;
  }

  /** {@link #of(int, String, String, long, String, String, Throwable)} without a reason. */
  public static ErrnoException of(int errno, String name, String call, long bytesDone, String grpcCode,
      Throwable cause) {
    String n = name == null || name.isBlank() ? Linux.errnoName(errno) : name;
    String c = call == null || call.isBlank() ? "unknown" : call;
    String g = grpcCode == null ? "UNKNOWN" : grpcCode;
    return switch (errno) {
      case Linux.EPERM -> new EpermException(n, c, bytesDone, g, cause);
      case Linux.ENOENT -> new EnoentException(n, c, bytesDone, g, cause);
      case Linux.ESRCH -> new EsrchException(n, c, bytesDone, g, cause);
      case Linux.EINTR -> new EintrException(n, c, bytesDone, g, cause);
      case Linux.EBADF -> new EbadfException(n, c, bytesDone, g, cause);
      case Linux.EAGAIN -> new EagainException(n, c, bytesDone, g, cause);
      case Linux.ENOMEM -> new EnomemException(n, c, bytesDone, g, cause);
      case Linux.EACCES -> new EaccesException(n, c, bytesDone, g, cause);
      case Linux.EFAULT -> new EfaultException(n, c, bytesDone, g, cause);
      case Linux.EBUSY -> new EbusyException(n, c, bytesDone, g, cause);
      case Linux.EEXIST -> new EexistException(n, c, bytesDone, g, cause);
      case Linux.EINVAL -> new EinvalException(n, c, bytesDone, g, cause);
      case Linux.ENOSPC -> new EnospcException(n, c, bytesDone, g, cause);
      case Linux.ENOSYS, Linux.EOPNOTSUPP -> new EnotsupException(errno, n, c, bytesDone, g, cause);
      default -> new ErrnoException(errno, n, c, bytesDone, g, cause);
    };
  }
}
