package io.uffdemu.server.backend;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Proxy;

/**
 * The backend that was asked for but cannot run: {@link #status()} says why, and every other call fails
 * with {@link BackendUnavailableException} (gRPC UNAVAILABLE with the reason).
 */
public final class UnavailableBackend {
    private UnavailableBackend() {
    }

    public static MemoryBackend of(BackendStatus status) {
        InvocationHandler h = (proxy, method, args) -> switch (method.getName()) {
            case "name" -> status.name();
            case "status" -> status;
            case "close" -> null;
            case "resolutionsMayBlock" -> true;
            case "toString" -> "UnavailableBackend[" + status.unavailableReason() + "]";
            case "hashCode" -> System.identityHashCode(proxy);
            case "equals" -> proxy == args[0];
            default -> throw new BackendUnavailableException(status.name() + " backend unavailable: "
                    + status.unavailableReason());
        };
        return (MemoryBackend) Proxy.newProxyInstance(MemoryBackend.class.getClassLoader(),
                new Class<?>[] {MemoryBackend.class}, h);
    }

    /** Thrown by every call on an unavailable backend. */
    public static final class BackendUnavailableException extends RuntimeException {
        public BackendUnavailableException(String message) {
            super(message, null, false, false);
        }
    }
}
