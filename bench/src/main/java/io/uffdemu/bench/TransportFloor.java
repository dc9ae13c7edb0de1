package io.uffdemu.bench;

import com.google.protobuf.ByteString;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Server;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.HandleAttach;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleRequestBatch;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.IoctlResult;
import io.uffdemu.api.v1.IoctlResultBatch;
import io.uffdemu.api.v1.Pagefault;
import io.uffdemu.api.v1.UffdMsg;
import io.uffdemu.api.v1.UffdMsgBatch;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The transport floor of issue 9's remote round trip: what gRPC, protobuf and loopback TCP alone cost for the
 * messages one remote fault takes, with no emulation at all. Two JVMs, as in {@code bench remote}: a child JVM
 * serves the Handle method with a stub that keeps {@code inflight} "faults" outstanding, sends their messages
 * ({@code UffdMsg} pagefaults in {@code UffdMsgBatch}es of {@code batch}), and answers each {@code HandleRequest}
 * batch of 4 KiB {@code CopyRequest}s by copying every page into a frame-sized array (the emulator's one frame
 * write), sending one {@code IoctlResultBatch}, and "re-faulting" those pages at once (their next messages).
 * This JVM is the handler: a raw stub that answers each message batch with one COPY batch, each page copied
 * into its request as the SDK does. Same message shapes; the server's calls on virtual threads as in the uffdemu
 * server, the client's callbacks on gRPC's default executor unless told to run them on the transport thread (what
 * the SDK's Handle stream does; {@code --direct client}); fewer hops than the real path: a lower bound on the CPU a remote fault costs, and so an
 * upper bound on the faults/s any remote path built on this transport can reach on this machine.
 */
final class TransportFloor {
    private TransportFloor() {
    }

    /** One measured point: items (faults) per second, and CPU per item of each process. */
    record Result(double itemsPerSecond, double clientCpuMicros, double serverCpuMicros) {
        double cpuMicros() {
            return clientCpuMicros + serverCpuMicros;
        }
    }

    /** The child JVM: {@code java -cp <bench jar> io.uffdemu.bench.TransportFloor <port>}; prints "ready". */
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        boolean direct = args.length > 1 && args[1].equals("direct");
        Server server = io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder.forAddress(
                        new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), port),
                        InsecureServerCredentials.create())
                // virtual threads as the uffdemu server's calls; direct: on the transport's event loop
                .executor(direct ? com.google.common.util.concurrent.MoreExecutors.directExecutor()
                        : Executors.newVirtualThreadPerTaskExecutor())
                .maxInboundMessageSize(64 << 20)
                .addService(new Stub())
                .build().start();
        System.out.println("ready");
        System.out.flush();
        // ends when the parent closes our stdin (or dies)
        while (System.in.read() >= 0) {
            // nothing
        }
        server.shutdownNow();
    }

    /** The server side: attach.pid = faults kept in flight, attach.max_batch = messages per UffdMsgBatch. */
    static final class Stub extends UserfaultfdServiceGrpc.UserfaultfdServiceImplBase {
        @Override
        public StreamObserver<HandleRequest> handle(StreamObserver<HandleResponse> out) {
            return new StreamObserver<>() {
                final byte[] frame = new byte[4096];
                int batch = 1;
                long nextAddress = 0x10000000L;
                long seq;

                @Override
                public void onNext(HandleRequest r) {
                    if (r.hasAttach()) {
                        HandleAttach a = r.getAttach();
                        batch = Math.max(1, a.getMaxBatch());
                        fault(a.getPid());
                        return;
                    }
                    List<HandleRequest> items = r.hasBatch() ? r.getBatch().getRequestsList() : List.of(r);
                    IoctlResultBatch.Builder results = IoctlResultBatch.newBuilder();
                    for (HandleRequest item : items) {
                        CopyRequest c = item.getCopy();
                        c.getData().copyTo(frame, 0);
                        results.addResults(IoctlResult.newBuilder().setRequestId(item.getRequestId())
                                .setBytes(c.getData().size()));
                    }
                    out.onNext(HandleResponse.newBuilder().setResults(results).build());
                    fault(items.size());
                }

                /** {@code n} faults: their messages, {@code batch} per HandleResponse. */
                private void fault(int n) {
                    for (int i = 0; i < n; i += batch) {
                        UffdMsgBatch.Builder b = UffdMsgBatch.newBuilder();
                        for (int j = i; j < Math.min(n, i + batch); j++) {
                            b.addMsgs(UffdMsg.newBuilder().setEvent(0x12).setSeq(++seq).setPagefault(
                                    Pagefault.newBuilder().setFlags(1).setAddress(nextAddress)));
                            nextAddress += 4096;
                        }
                        out.onNext(HandleResponse.newBuilder().setMsgs(b).build());
                    }
                }

                @Override
                public void onError(Throwable t) {
                }

                @Override
                public void onCompleted() {
                    out.onCompleted();
                }
            };
        }
    }

    /** The child JVM and a channel to it. */
    static final class Peer implements AutoCloseable {
        final java.lang.Process child;
        final ManagedChannel channel;

        Peer(boolean directServer, boolean directClient) throws IOException, InterruptedException {
            int port;
            try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
                port = s.getLocalPort();
            }
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            // this JVM's class path: the bench jar under `java -jar`, the module's classes under a test
            child = new ProcessBuilder(java, "-XX:+UseG1GC", "-cp", System.getProperty("java.class.path"),
                    TransportFloor.class.getName(), Integer.toString(port), directServer ? "direct" : "threads")
                    .redirectError(ProcessBuilder.Redirect.INHERIT).start();
            try {
                BufferedReader r = new BufferedReader(new InputStreamReader(child.getInputStream(),
                        StandardCharsets.UTF_8));
                var ready = CompletableFuture.supplyAsync(() -> {
                    try {
                        return r.readLine();
                    } catch (IOException e) {
                        return "(" + e + ")";
                    }
                }, Executors.newVirtualThreadPerTaskExecutor());
                String line;
                try {
                    line = ready.get(60, TimeUnit.SECONDS);
                } catch (ExecutionException | TimeoutException e) {
                    line = "(no answer within 60 s)";
                }
                if (!"ready".equals(line)) {
                    throw new IOException("transport floor server did not start: " + line);
                }
                if (child.toHandle().info().totalCpuDuration().isEmpty()) {
                    throw new IOException("this system does not give the child JVM's CPU time");
                }
                ManagedChannelBuilder<?> b = ManagedChannelBuilder.forAddress("127.0.0.1", port).usePlaintext()
                        .maxInboundMessageSize(64 << 20);
                channel = (directClient ? b.directExecutor() : b).build();
            } catch (IOException | InterruptedException | RuntimeException e) {
                child.destroyForcibly();
                throw e;
            }
        }

        private long cpuNanos() {
            return child.toHandle().info().totalCpuDuration().map(java.time.Duration::toNanos)
                    .orElseThrow(() -> new IllegalStateException("no CPU time for the child JVM"));
        }

        /** {@code items} faults with {@code inflight} outstanding, messages in batches of {@code batch}. */
        Result run(long items, int inflight, int batch) throws InterruptedException {
            var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                    .getOperatingSystemMXBean();
            byte[] page = new byte[4096];
            page[17] = 1; // not a zero page
            AtomicLong seen = new AtomicLong();
            CountDownLatch done = new CountDownLatch(1);
            AtomicReference<Throwable> error = new AtomicReference<>();
            AtomicReference<StreamObserver<HandleRequest>> requests = new AtomicReference<>();
            long[] nextId = {1};
            StreamObserver<HandleResponse> handler = new StreamObserver<>() {
                @Override
                public void onNext(HandleResponse r) {
                    if (!r.hasMsgs()) {
                        return; // results: nothing to do
                    }
                    List<UffdMsg> msgs = r.getMsgs().getMsgsList();
                    List<HandleRequest> copies = new ArrayList<>(msgs.size());
                    for (UffdMsg m : msgs) {
                        copies.add(HandleRequest.newBuilder().setRequestId(nextId[0]++).setCopy(CopyRequest
                                .newBuilder().setPid(1).setFd(3).setDst(m.getPagefault().getAddress())
                                .setData(ByteString.copyFrom(page))).build());
                    }
                    long s = seen.addAndGet(msgs.size());
                    if (s >= items) {
                        done.countDown();
                        return; // stop answering: the faults left in flight are not counted
                    }
                    synchronized (requests) {
                        requests.get().onNext(HandleRequest.newBuilder()
                                .setBatch(HandleRequestBatch.newBuilder().addAllRequests(copies)).build());
                    }
                }

                @Override
                public void onError(Throwable t) {
                    error.set(t);
                    done.countDown();
                }

                @Override
                public void onCompleted() {
                    done.countDown();
                }
            };
            long cpu0 = os.getProcessCpuTime();
            long srv0 = cpuNanos();
            long t0 = System.nanoTime();
            synchronized (requests) {
                requests.set(UserfaultfdServiceGrpc.newStub(channel).handle(handler));
                requests.get().onNext(HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder()
                        .setPid(inflight).setMaxBatch(batch)).build());
            }
            if (!done.await(10, TimeUnit.MINUTES)) {
                throw new IllegalStateException("transport floor run did not finish");
            }
            long t1 = System.nanoTime();
            long cpu1 = os.getProcessCpuTime();
            long srv1 = cpuNanos();
            synchronized (requests) {
                requests.get().onCompleted();
            }
            if (error.get() != null) {
                throw new IllegalStateException("transport floor stream failed", error.get());
            }
            long n = seen.get();
            return new Result(n / ((t1 - t0) / 1e9), (cpu1 - cpu0) / 1e3 / n, (srv1 - srv0) / 1e3 / n);
        }

        @Override
        public void close() {
            channel.shutdownNow();
            try {
                child.getOutputStream().close();
                if (!child.waitFor(10, TimeUnit.SECONDS)) {
                    child.destroyForcibly();
                }
            } catch (IOException | InterruptedException e) {
                child.destroyForcibly();
            }
        }
    }
}
