package io.uffdemu.server.grpc;

import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.TimeUnit;

/**
 * The one path of every unary call: runs the body, interrupts it when the client cancels or the deadline
 * passes, and maps failures through {@link Errors}.
 */
public final class Calls {
    private Calls() {
    }

    /** A call body that may block and throw. */
    @FunctionalInterface
    public interface Body<T> {
        T run() throws Exception;
    }

    public static <T> void unary(StreamObserver<T> out, Body<T> body) {
        // gRPC runs calls on virtual threads (GrpcExecutorConfiguration), so the body runs right here; a
        // cancelled call or a passed deadline interrupts it, freeing whatever it waits for
        ServerCallStreamObserver<T> obs = (ServerCallStreamObserver<T>) out;
        Context ctx = Context.current();
        Thread me = Thread.currentThread();
        Context.CancellationListener interrupt = c -> me.interrupt();
        ctx.addListener(interrupt, Runnable::run);
        T result;
        try {
            result = body.run();
        } catch (Throwable t) {
            if (!obs.isCancelled()) {
                try {
                    obs.onError(Errors.map(t));
                } catch (IllegalStateException ignored) {
                    // call already closed
                }
            }
            return;
        } finally {
            ctx.removeListener(interrupt);
            Thread.interrupted();
        }
        if (!obs.isCancelled()) {
            obs.onNext(result);
            obs.onCompleted();
        }
    }

    /** The call's deadline as System.nanoTime()-based nanos, or {@code fallbackNanos} from now when none is set. */
    public static long deadlineNanos(long fallbackNanos) {
        Deadline d = Context.current().getDeadline();
        long now = System.nanoTime();
        if (d == null) {
            return fallbackNanos == Long.MAX_VALUE ? Long.MAX_VALUE : now + fallbackNanos;
        }
        return now + Math.max(0, d.timeRemaining(TimeUnit.NANOSECONDS));
    }
}
