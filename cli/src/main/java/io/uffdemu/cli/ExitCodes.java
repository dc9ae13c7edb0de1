package io.uffdemu.cli;

import io.uffdemu.client.ErrnoException;
import io.uffdemu.client.Linux;
import io.uffdemu.client.ServerUnavailableException;
import io.uffdemu.client.UffdemuException;

/** Exit codes by errno class (the table in cli/README.md). */
final class ExitCodes {
    static final int OK = 0;
    static final int USAGE = 1;
    static final int NOT_FOUND = 2;
    static final int INVALID = 3;
    static final int PERMISSION = 4;
    static final int EXHAUSTED = 5;
    static final int UNAVAILABLE = 6;
    static final int OTHER = 7;

    private ExitCodes() {
    }

    static int of(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof ErrnoException e) {
                return ofErrno(e.errno());
            }
            if (c instanceof ServerUnavailableException) {
                return UNAVAILABLE;
            }
            if (c instanceof UffdemuException u) {
                return ofGrpc(u.grpcCode());
            }
        }
        return OTHER;
    }

    static int ofErrno(int errno) {
        return switch (errno) {
            case Linux.ENOENT, Linux.ESRCH, Linux.EBADF -> NOT_FOUND;
            case Linux.EINVAL, Linux.EFAULT, Linux.ENOTTY, Linux.ERANGE -> INVALID;
            case Linux.EPERM, Linux.EACCES -> PERMISSION;
            case Linux.ENOMEM, Linux.ENOSPC, Linux.EMFILE, Linux.EAGAIN, Linux.E2BIG -> EXHAUSTED;
            default -> OTHER;
        };
    }

    static int ofGrpc(String code) {
        return switch (code == null ? "" : code) {
            case "NOT_FOUND" -> NOT_FOUND;
            case "INVALID_ARGUMENT", "OUT_OF_RANGE" -> INVALID;
            case "PERMISSION_DENIED", "UNAUTHENTICATED" -> PERMISSION;
            case "RESOURCE_EXHAUSTED" -> EXHAUSTED;
            case "UNAVAILABLE", "DEADLINE_EXCEEDED" -> UNAVAILABLE;
            default -> OTHER;
        };
    }
}
