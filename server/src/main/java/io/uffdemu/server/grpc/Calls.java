package io.uffdemu.server.grpc;

import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * Runs every unary call on a virtual thread (calls may block on userfaults or uffd events), interrupts it
 * when the client cancels or the deadline passes, and maps failures through {@link Errors}.
 */
public final class Calls {
    private static final ExecutorService VTHREADS = Executors.newThreadPerTaskExecutor(
            Thread.ofVirtual().name("uffdemu-call-", 0).factory());

    private Calls() {
    }

    /** A call body that may block and throw. */
    @FunctionalInterface
    public interface Body<T> {
        T run() throws Exception;
    }

    public static <T> void unary(StreamObserver<T> out, Body<T> body) {
        ServerCallStreamObserver<T> obs = (ServerCallStreamObserver<T>) out;
        Context ctx = Context.current();
        Future<?> f = VTHREADS.submit(ctx.wrap(() -> {
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
            }
            if (!obs.isCancelled()) {
                obs.onNext(result);
                obs.onCompleted();
            }
        }));
        obs.setOnCancelHandler(() -> f.cancel(true));
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
