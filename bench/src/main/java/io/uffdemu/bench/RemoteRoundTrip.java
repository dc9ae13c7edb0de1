package io.uffdemu.bench;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.BatchFaultHandler;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.Memfd;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.StormOptions;
import io.uffdemu.client.StormResult;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Issue 9's remote round trip: faulting threads in a server process (ProcessService.Storm, so no RPC per access),
 * the handler in this JVM (the SDK's handler loop over the Handle stream on loopback): fault raised → message on
 * the stream → handler → resolution → thread resumed, with and without batching. Either starts the server
 * ({@code java -jar server/target/uffdemu-server-*-exec.jar} on a free loopback port, emulated backend) or uses
 * a running one.
 */
final class RemoteRoundTrip implements AutoCloseable {
    private final java.lang.Process server;
    private final UffdemuClient client;
    /** With --target: the server's pid when given (--server-pid), so that its CPU is counted too; 0: not counted. */
    long serverPid;
    /** HandlerOptions.copyRegionBytes of the batching runs (resolutions on the stream). */
    long copyRegionBytes = HandlerOptions.DEFAULT_COPY_REGION_BYTES;

    private RemoteRoundTrip(java.lang.Process server, UffdemuClient client) {
        this.server = server;
        this.client = client;
    }

    /** What one case measured: faults/s over the storm and the storm's access latency (a fault's round trip). */
    record Result(double faultsPerSecond, double p50Micros, double p99Micros, long lostWrites, double cpuMicrosPerFault) {
    }

    /** CPU time of this JVM plus the server's (when this bench started it, or --server-pid), in nanoseconds. */
    private long cpuNanos() {
        long self = ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                .getOperatingSystemMXBean()).getProcessCpuTime();
        ProcessHandle h = server != null ? server.toHandle() : serverPid > 0 ? ProcessHandle.of(serverPid).orElse(null) : null;
        long srv = h == null ? 0 : h.info().totalCpuDuration().map(java.time.Duration::toNanos).orElse(0L);
        return self + srv;
    }

    /** A running server at {@code target}: host:port, or any gRPC target such as unix:///run/uffdemu.sock. */
    static RemoteRoundTrip connect(String target) {
        return new RemoteRoundTrip(null, UffdemuClient.connect(ClientConfig.DEFAULT.withTarget(target)));
    }

    /**
     * Starts the server jar on a free loopback port, or on the Unix domain socket {@code unixSocket} if not null,
     * and waits (up to 90 s) until it answers.
     */
    static RemoteRoundTrip start(Path serverJar, Path log, Path unixSocket) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "-XX:+UseG1GC", "-jar", serverJar.toString()));
        String target;
        if (unixSocket != null) {
            Path socket = unixSocket.toAbsolutePath(); // the server refuses a relative path
            cmd.addAll(List.of("--spring.grpc.server.address=", "--spring.grpc.server.port=",
                    "--spring.grpc.server.netty.domain-socket-path=" + socket));
            target = "unix://" + socket;
        } else {
            int port;
            try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                port = s.getLocalPort();
            }
            cmd.addAll(List.of("--spring.grpc.server.address=127.0.0.1", "--spring.grpc.server.port=" + port));
            target = "127.0.0.1:" + port;
        }
        cmd.addAll(List.of("--server.address=127.0.0.1", "--server.port=0", "--uffdemu.backend=emulated",
                "--uffdemu.quotas.requests-per-second=0", "--uffdemu.quotas.max-blocked-threads=4096",
                "--uffdemu.emulated.memory=4GB", "--uffdemu.quotas.memory=3GB"));
        java.lang.Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        UffdemuClient c = UffdemuClient.connect(ClientConfig.DEFAULT.withTarget(target));
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (true) {
            try {
                c.backend();
                return new RemoteRoundTrip(p, c);
            } catch (RuntimeException e) {
                if (!p.isAlive() || System.nanoTime() > until) {
                    c.close();
                    p.destroyForcibly();
                    throw new IOException("the server did not start (log: " + log + "): " + e.getMessage(), e);
                }
                Thread.sleep(200);
            }
        }
    }

    /** The newest server exec jar under server/target (the build's output). */
    static Path findServerJar(Path root) throws IOException {
        try (var s = Files.list(root.resolve("server/target"))) {
            return s.filter(f -> f.getFileName().toString().matches("uffdemu-server-.*-exec\\.jar"))
                    .findFirst().orElseThrow(() -> new IOException("no server/target/uffdemu-server-*-exec.jar: "
                            + "build it with ./mvnw -pl server -am package -DskipTests"));
        }
    }

    /**
     * One case: {@code pages} pages (2 MiB ones for hugetlb) touched by {@code threads} storm threads, one fault
     * each (MISSING + COPY, or WP + un-protect of pages written before), served by one handler loop; batching =
     * HandleAttach.max_batch 64 and resolutions batched on the stream; without = one message per stream message,
     * unary resolutions.
     */
    Result run(EmulatedRoundTrip.Case c, long pages, int threads, boolean batching, int workers) {
        long ps = c.pageSize();
        // the server's emulated machine (this bench's own, or --target's) gets the huge pages the case needs, and its
        // own count back after the case
        String before = c.hugetlb ? client.sysctl("vm/nr_hugepages").trim() : null;
        boolean raised = before != null && Long.parseLong(before) < pages;
        if (raised) {
            client.setSysctl("vm/nr_hugepages", Long.toString(pages));
        }
        try {
            return runCase(c, pages, threads, batching, workers, ps);
        } finally {
            if (raised) {
                client.setSysctl("vm/nr_hugepages", before);
            }
        }
    }

    private Result runCase(EmulatedRoundTrip.Case c, long pages, int threads, boolean batching, int workers,
            long ps) {
        Process p = client.createProcess("remote-bench");
        // with batching a BatchFaultHandler (a message batch served on one worker, its resolutions sent as one
        // batch); -Duffdemu.bench.per-fault-handler=true measures the per-fault handler path instead. A fault the
        // handler fails on ends the case: the process exits (its blocked threads are woken) and the case throws
        // the handler's failure, instead of the storm waiting for a thread left blocked until its call's deadline
        // (30 s) and failing with DEADLINE_EXCEEDED and no cause
        Runnable abort = () -> Thread.ofVirtual().start(() -> {
            try {
                p.exit();
            } catch (RuntimeException e) {
                // already gone
            }
        });
        BenchHandler h = batching && !Boolean.getBoolean("uffdemu.bench.per-fault-handler")
                ? new BatchBenchHandler(c.wp, ps, abort) : new BenchHandler(c.wp, ps, abort);
        try {
            long len = pages * ps;
            Memfd memfd = null;
            long addr;
            if (c.shmem) {
                memfd = p.memfdCreate("remote-bench", c.memfdFlags());
                memfd.ftruncate(len);
                addr = p.mmap(MmapOptions.DEFAULT.withLength(len).sharedFile(memfd.fd(), 0));
            } else {
                addr = p.mmap(MmapOptions.anonymous(len));
            }
            AddrRange range = new AddrRange(addr, len);
            var uffd = p.userfaultfd(UffdOptions.DEFAULT.withFeatures(c.wp ? Linux.UFFD_FEATURE_PAGEFAULT_FLAG_WP : 0));
            if (c.wp) {
                p.storm(StormOptions.writes(addr, len, Math.min(threads, 64)).withStride(ps)); // populate
                uffd.register(range, Linux.UFFDIO_REGISTER_MODE_WP);
                uffd.writeProtect(range, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
            } else {
                uffd.register(range, Linux.UFFDIO_REGISTER_MODE_MISSING);
            }
            HandlerOptions o = HandlerOptions.DEFAULT.withPageSize(ps).withWorkers(workers).withQueueCapacity(Math.max(64, workers))
                    .withMaxBatch(batching ? 64 : 1).withResolveOnStream(batching)
                    .withCopyRegionBytes(copyRegionBytes);
            StormResult r;
            long cpu0;
            long cpu1;
            try (HandlerLoop loop = uffd.handle(h, o)) {
                cpu0 = cpuNanos();
                r = p.storm(StormOptions.writes(addr, len, threads).withStride(ps).withRound(1).withVerify(true));
                cpu1 = cpuNanos();
            } catch (RuntimeException e) {
                h.check(c.label());
                throw e;
            }
            h.check(c.label());
            if (r.failed() != 0) {
                throw new IllegalStateException(c.label() + ": " + r.failed() + " accesses failed (first signal "
                        + r.firstSignal() + ", errno " + r.firstErrno() + ")");
            }
            // the CPU figure includes the verify pass (one read per page, no fault) and is the one that survives a
            // loaded machine; faults/s and latency depend on how much of the cores the run got
            return new Result(r.accessesPerSecond(), r.p50Nanos() / 1e3, r.p99Nanos() / 1e3, r.lostWrites(),
                    (cpu1 - cpu0) / 1e3 / Math.max(1, r.accesses()));
        } finally {
            try {
                p.exit(); // also after a failed handler's abort (whose exit runs on its own thread and may fail)
            } catch (RuntimeException e) {
                if (h.failure() == null) {
                    throw e;
                }
                // aborted: the process is gone already (ESRCH), or the case's error is the one to report
            }
        }
    }

    /**
     * The bench's handler: a COPY of a zero page (MISSING) or an un-protect (WP). A fault it could not resolve (an
     * error from the server, a deadline) would leave its thread blocked (FallbackPolicy.FAIL) and the storm waiting
     * for it until the call's deadline: the first failure (or a failed stream) runs {@code abort} once, which ends
     * the process, and {@link #check} turns it into the case's error.
     */
    static class BenchHandler implements FaultHandler {
        private final boolean wp;
        private final byte[] zero;
        private final Runnable abort;
        private final java.util.concurrent.atomic.AtomicReference<Throwable> failure =
                new java.util.concurrent.atomic.AtomicReference<>();

        BenchHandler(boolean wp, long pageSize, Runnable abort) {
            this.wp = wp;
            this.zero = wp ? null : new byte[(int) pageSize];
            this.abort = abort;
        }

        @Override
        public void onFault(io.uffdemu.client.FaultContext ctx) {
            if (wp) {
                ctx.writeUnprotect();
            } else {
                ctx.copy(zero);
            }
        }

        @Override
        public void onFailure(io.uffdemu.client.UffdMessage.PageFault fault, Throwable cause) {
            fail(new IllegalStateException("fault at 0x" + Long.toHexString(fault.address()) + " not resolved: "
                    + cause, cause));
        }

        @Override
        public void onError(Throwable error) {
            fail(new IllegalStateException("handler stream failed: " + error, error));
        }

        private void fail(Throwable t) {
            if (failure.compareAndSet(null, t)) {
                abort.run();
            }
        }

        Throwable failure() {
            return failure.get();
        }

        /** Throws the handler's first failure, if any. */
        void check(String label) {
            Throwable t = failure.get();
            if (t != null) {
                throw new IllegalStateException(label + ": " + t.getMessage(), t);
            }
        }
    }

    /** {@link BenchHandler} served a message batch at a time. */
    static final class BatchBenchHandler extends BenchHandler implements BatchFaultHandler {
        BatchBenchHandler(boolean wp, long pageSize, Runnable abort) {
            super(wp, pageSize, abort);
        }
    }

    @Override
    public void close() {
        client.close();
        if (server != null) {
            server.destroy();
            try {
                if (!server.waitFor(20, TimeUnit.SECONDS)) {
                    server.destroyForcibly();
                }
            } catch (InterruptedException e) {
                server.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }
}
