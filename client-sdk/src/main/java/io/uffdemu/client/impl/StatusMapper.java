package io.uffdemu.client.impl;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import io.uffdemu.api.v1.ErrnoInfo;
import io.uffdemu.client.ErrnoException;
import io.uffdemu.client.ServerUnavailableException;
import io.uffdemu.client.UffdemuException;

/** The one place where gRPC failures become SDK exceptions: ErrnoInfo detail first, status code second. */
final class StatusMapper {
  private StatusMapper() {}

  static UffdemuException map(Throwable t, String call) {
    if (t instanceof UffdemuException u) {
      return u;
    }
    Status status = Status.fromThrowable(t);
    ErrnoInfo info = errnoInfo(t);
    if (info != null) {
      return fromInfo(info, call, status.getCode().name(), t);
    }
    String desc = status.getDescription() == null ? "" : ": " + status.getDescription();
    if (status.getCode() == Status.Code.UNAVAILABLE) {
      return new ServerUnavailableException(call + ": server unavailable" + desc, t);
    }
    return new UffdemuException(call + ": " + status.getCode() + desc, status.getCode().name(), t);
  }

  /** Whether a failed attempt may be redone for an idempotent call: transport failure, no errno. */
  static boolean retryable(Throwable t) {
    return Status.fromThrowable(t).getCode() == Status.Code.UNAVAILABLE && errnoInfo(t) == null;
  }

  static ErrnoException fromInfo(ErrnoInfo info, String call, String grpcCode, Throwable cause) {
    String c = info.getCall().isBlank() ? call : info.getCall();
    return ErrnoException.of(info.getErrno(), info.getName(), c, info.getBytesDone(), grpcCode, info.getReason(),
        cause);
  }

  /**
   * Decodes a kernel-style byte count: negative values are {@code -errno} (as in {@code uffdio_copy.copy}),
   * never a huge partial count.
   */
  static long bytes(String call, long bytes) {
    if (bytes < 0) {
      int errno = bytes < -4095 ? io.uffdemu.client.Linux.EINVAL : (int) -bytes;
      throw ErrnoException.of(errno, null, call, 0, null, null);
    }
    return bytes;
  }

  static ErrnoInfo errnoInfo(Throwable t) {
    com.google.rpc.Status s;
    try {
      s = StatusProto.fromThrowable(t);
    } catch (RuntimeException e) {
      return null;
    }
    if (s == null) {
      return null;
    }
    for (Any any : s.getDetailsList()) {
      if (any.is(ErrnoInfo.class)) {
        try {
          return any.unpack(ErrnoInfo.class);
        } catch (InvalidProtocolBufferException e) {
          return null;
        }
      }
    }
    return null;
  }
}
