package io.uffdemu.server.grpc;

import com.google.protobuf.Any;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.uffdemu.api.v1.ErrnoInfo;
import io.uffdemu.server.backend.UnavailableBackend;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.LinuxException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one place where core errors become gRPC statuses: the errno travels as a packed {@link ErrnoInfo}
 * detail of a {@code google.rpc.Status}, and the gRPC code is derived from it (table in docs/api.md).
 */
public final class Errors {
    private static final Logger log = LoggerFactory.getLogger(Errors.class);

    private Errors() {
    }

    public static Status.Code codeFor(Errno e) {
        return switch (e) {
            case EINVAL, EFAULT, ERANGE, ENOTTY, EOVERFLOW, ESPIPE -> Status.Code.INVALID_ARGUMENT;
            case ENOENT, ESRCH, EBADF, ENODEV -> Status.Code.NOT_FOUND;
            case EEXIST -> Status.Code.ALREADY_EXISTS;
            case EAGAIN -> Status.Code.ABORTED;
            case ENOMEM, EMFILE, ENFILE, ENOSPC, E2BIG, EFBIG -> Status.Code.RESOURCE_EXHAUSTED;
            case EPERM, EACCES -> Status.Code.PERMISSION_DENIED;
            case EBUSY, EIO, EHWPOISON -> Status.Code.FAILED_PRECONDITION;
            case EOPNOTSUPP, ENOSYS -> Status.Code.UNIMPLEMENTED;
            case EINTR -> Status.Code.CANCELLED;
            case ETIMEDOUT -> Status.Code.DEADLINE_EXCEEDED;
        };
    }

    /** {@link ErrnoInfo#getReason()} of a failure caused by a tenant's (or the machine-wide) quota. */
    public static final String QUOTA_EXCEEDED = "QUOTA_EXCEEDED";

    /**
     * A core failure as a status: the errno's code from {@link #codeFor}, except that a quota failure
     * ({@link LinuxException#isQuota()}) is always RESOURCE_EXHAUSTED with reason {@link #QUOTA_EXCEEDED}, whatever
     * its errno (EAGAIN from a pending-fault quota is not ABORTED: retrying at once will not help).
     */
    public static StatusRuntimeException of(LinuxException e) {
        return e.isQuota() ? of(e, Status.Code.RESOURCE_EXHAUSTED) : of(e, codeFor(e.errno()));
    }

    static StatusRuntimeException of(LinuxException e, Status.Code code) {
        ErrnoInfo info = ErrnoInfo.newBuilder().setErrno(e.errno().number()).setName(e.errno().name())
                .setCall(e.call()).setBytesDone(e.bytesDone()).setReason(e.isQuota() ? QUOTA_EXCEEDED : "").build();
        com.google.rpc.Status st = com.google.rpc.Status.newBuilder().setCode(code.value())
                .setMessage(e.getMessage()).addDetails(Any.pack(info)).build();
        return StatusProto.toStatusRuntimeException(st);
    }

    public static StatusRuntimeException invalid(String message) {
        return Status.INVALID_ARGUMENT.withDescription(message).asRuntimeException();
    }

    /** Maps any throwable from a call into the status a client should see. */
    public static StatusRuntimeException map(Throwable t) {
        if (t instanceof StatusRuntimeException s) {
            return s;
        }
        if (t instanceof LinuxException le) {
            return of(le);
        }
        if (t instanceof TenantGuard.QuotaException q) {
            return of(q.cause, Status.Code.RESOURCE_EXHAUSTED);
        }
        if (t instanceof UnavailableBackend.BackendUnavailableException u) {
            return Status.UNAVAILABLE.withDescription(u.getMessage()).asRuntimeException();
        }
        if (t instanceof InterruptedException) {
            return Status.CANCELLED.withDescription("call cancelled").asRuntimeException();
        }
        if (t instanceof IllegalArgumentException ia) {
            return Status.INVALID_ARGUMENT.withDescription(ia.getMessage()).asRuntimeException();
        }
        log.error("internal error", t);
        return Status.INTERNAL.withDescription("internal error: " + t).asRuntimeException();
    }
}
