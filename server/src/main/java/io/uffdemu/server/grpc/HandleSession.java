package io.uffdemu.server.grpc;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.ErrnoInfo;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.IoctlResult;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.UffdMsg;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One Handle stream: a reader (a virtual thread doing read(2) on the uffd) pushes messages while the client
 * can take them — when it cannot, messages stay queued in the uffd, as in the kernel — and resolutions sent
 * by the client run in order on their own virtual thread.
 */
final class HandleSession implements StreamObserver<HandleRequest> {
    private final UserfaultfdGrpcService service;
    private final MemoryBackend backend;
    private final ServerCallStreamObserver<HandleResponse> out;
    private final ExecutorService ops = Executors.newSingleThreadExecutor(Thread.ofVirtual()
            .name("uffdemu-handle-ops").factory());
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition ready = lock.newCondition();
    private volatile boolean finished;
    private Thread reader;
    private long key = -1;
    private int pid;
    private int fd;
    private final String tenant;
    private boolean stopped;

    HandleSession(UserfaultfdGrpcService service, MemoryBackend backend, ServerCallStreamObserver<HandleResponse> out,
            String tenant) {
        this.service = service;
        this.tenant = tenant;
        this.backend = backend;
        this.out = out;
        out.setOnReadyHandler(() -> {
            lock.lock();
            try {
                ready.signalAll();
            } finally {
                lock.unlock();
            }
        });
        out.setOnCancelHandler(() -> stop(true));
    }

    @Override
    public void onNext(HandleRequest r) {
        if (finished) {
            return;
        }
        if (key < 0) {
            if (r.getKindCase() != HandleRequest.KindCase.ATTACH) {
                fail(Status.INVALID_ARGUMENT.withDescription("the first HandleRequest must be attach")
                        .asRuntimeException());
                return;
            }
            attach(r.getAttach().getPid(), r.getAttach().getFd());
            return;
        }
        long id = r.getRequestId();
        ops.submit(() -> {
            IoctlResult.Builder res = IoctlResult.newBuilder().setRequestId(id);
            try {
                res.setBytes(service.resolve(r));
            } catch (LinuxException e) {
                res.setError(ErrnoInfo.newBuilder().setErrno(e.errno().number()).setName(e.errno().name())
                        .setCall(e.call()).setBytesDone(e.bytesDone()));
            } catch (StatusRuntimeException e) {
                res.setError(ErrnoInfo.newBuilder().setErrno(22).setName("EINVAL").setCall(r.getKindCase().name()));
            } catch (Throwable t) {
                fail(Errors.map(t), true);
                return;
            }
            send(HandleResponse.newBuilder().setResult(res).build());
        });
    }

    private void attach(int pid, int fd) {
        this.pid = pid;
        this.fd = fd;
        long k = UserfaultfdGrpcService.key(pid, fd);
        // a bad pid or fd surfaces from the first read(2) as its errno (ESRCH, EBADF, ENOTTY)
        if (service.sessions.putIfAbsent(k, this) != null) {
            fail(Status.FAILED_PRECONDITION.withDescription("another Handle stream is attached to this uffd")
                    .asRuntimeException());
            return;
        }
        key = k;
        service.adopted(k);
        reader = Thread.ofVirtual().name("uffdemu-handle-reader-" + pid + "-" + fd).start(this::readLoop);
    }

    private void readLoop() {
        try {
            while (!finished && !Thread.currentThread().isInterrupted()) {
                awaitReady();
                if (finished) {
                    return;
                }
                List<UffdMsg> msgs = backend.uffdRead(pid, fd, service.maxReadMessages(),
                        System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(500));
                for (UffdMsg m : msgs) {
                    send(HandleResponse.newBuilder().setMsg(ProtoMapper.msg(m)).build());
                }
            }
        } catch (InterruptedException e) {
            // stream ended
        } catch (Throwable t) {
            fail(Errors.map(t));
        }
    }

    private void awaitReady() throws InterruptedException {
        lock.lock();
        try {
            while (!finished && !out.isReady()) {
                ready.await(200, TimeUnit.MILLISECONDS);
            }
        } finally {
            lock.unlock();
        }
    }

    private void send(HandleResponse r) {
        synchronized (out) {
            if (!finished) {
                out.onNext(r);
            }
        }
    }

    private void fail(StatusRuntimeException e) {
        fail(e, false);
    }

    /** Ends the stream with an error; {@code abnormal} = the handler's side broke, so the grace period applies. */
    private void fail(StatusRuntimeException e, boolean abnormal) {
        synchronized (out) {
            if (finished) {
                return;
            }
            finished = true;
            try {
                out.onError(e);
            } catch (IllegalStateException ignored) {
                // already closed
            }
        }
        stop(abnormal);
    }

    private synchronized void stop(boolean abnormal) {
        finished = true;
        if (stopped) {
            return;
        }
        stopped = true;
        if (reader != null) {
            reader.interrupt();
        }
        ops.shutdown();
        service.guard.streamClosed(tenant);
        if (key >= 0) {
            service.sessions.remove(key, this);
            if (abnormal) {
                // faults this handler read but never resolved re-fault and queue fresh messages for the next
                // handler (a WAKE without a fix, as the kernel defines it)
                try {
                    backend.uffdWake(pid, fd, io.uffdemu.server.mm.Linux.MMAP_MIN_ADDR,
                            io.uffdemu.server.mm.Linux.TASK_SIZE - io.uffdemu.server.mm.Linux.MMAP_MIN_ADDR);
                } catch (RuntimeException e) {
                    // the uffd or process is gone already
                }
                service.orphaned(key, pid, fd);
            }
        }
    }

    @Override
    public void onError(Throwable t) {
        stop(true);
    }

    @Override
    public void onCompleted() {
        // the handler is done: stop reading at once and free the uffd for the next Handle stream (a client may
        // re-attach right after half-closing), then let queued resolutions finish and complete the stream
        synchronized (this) {
            if (reader != null) {
                reader.interrupt();
            }
            if (key >= 0) {
                service.sessions.remove(key, this);
            }
        }
        ops.shutdown();
        try {
            ops.awaitTermination(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        synchronized (out) {
            if (!finished) {
                finished = true;
                out.onCompleted();
            }
        }
        stop(false);
    }
}
