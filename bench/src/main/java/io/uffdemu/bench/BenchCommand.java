package io.uffdemu.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code java -jar bench/target/uffdemu-bench.jar <roundtrip|bulk|scale>}: uffdemu's figures as ratios against
 * the real kernel measured in the same run (docs/benchmarks.md).
 */
@Command(name = "uffdemu-bench", mixinStandardHelpOptions = true,
        subcommands = {BenchCommand.RoundTrip.class, BenchCommand.Remote.class, BenchCommand.Curve.class, BenchCommand.Bulk.class,
                BenchCommand.Scale.class, BenchCommand.Transport.class},
        description = "Benchmarks of uffdemu against the real kernel's userfaultfd on this machine.")
public final class BenchCommand implements Runnable {
    public static void main(String[] args) {
        // The in-process round trip is a chain of virtual-thread hand-offs; with one carrier each hand-off is a
        // continuation switch instead of a cross-core wake-up (reference/perf-notes.md). Override with
        // -Djdk.virtualThreadScheduler.parallelism=N. Must be set before the first virtual thread starts.
        if (System.getProperty("jdk.virtualThreadScheduler.parallelism") == null) {
            System.setProperty("jdk.virtualThreadScheduler.parallelism", "1");
        }
        System.exit(new CommandLine(new BenchCommand()).execute(args));
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    static String fmt(double v) {
        return v >= 100 ? String.format("%,.0f", v) : String.format("%.2f", v);
    }

    /** The yardsticks have room for 256 faulting threads (pthread_t t[256]): more are compared with 256. */
    static int yardstickThreads(int threads) {
        return Math.min(threads, 256);
    }

    /**
     * The kernel's figures for {@code cases} with {@code threads} faulting threads: the yardstick's, plus
     * uffd_hugetlb_bench.c's when a case is hugetlb (at most one thread per huge page).
     */
    static Map<String, Double> yardstick(KernelYardstick kernel, List<String> cases, long pages, long hugePages,
            int threads, int rounds) {
        int kt = yardstickThreads(threads);
        Map<String, Double> k = new java.util.LinkedHashMap<>(kernel.bestRoundTrip(pages, kt, rounds));
        if (cases.stream().anyMatch(c -> EmulatedRoundTrip.Case.of(c).hugetlb)) {
            k.putAll(kernel.bestHugetlbRoundTrip(hugePages, (int) Math.min(kt, hugePages), rounds));
        }
        return k;
    }

    /**
     * One case of a table row with {@code asked} faulting threads: its pages (2 MiB ones for hugetlb), the threads
     * it gets (at most one per page) and the threads {@link #yardstick} ran the kernel's figure with.
     */
    record Sizing(EmulatedRoundTrip.Case ec, long pages, int asked, int threads, int kernelThreads) {
        static Sizing of(String c, long pages, long hugePages, int asked) {
            EmulatedRoundTrip.Case ec = EmulatedRoundTrip.Case.of(c);
            long n = ec.hugetlb ? hugePages : pages;
            int kt = yardstickThreads(asked);
            return new Sizing(ec, n, asked, (int) Math.min(asked, n), ec.hugetlb ? (int) Math.min(kt, hugePages) : kt);
        }

        /** The threads column: the threads the case got, of those asked for when it has fewer pages. */
        String threadsCell() {
            return threads < asked ? threads + " (of " + asked + ": one per page)" : Integer.toString(asked);
        }

        /** The kernel column: {@code kf} faults/s, with the yardstick's thread count when it ran fewer. */
        String kernelCell(Double kf) {
            return kf == null ? "n/a" : fmt(kf) + (kernelThreads < threads ? " (" + kernelThreads + " threads)" : "");
        }
    }

    static void checkHugePages(Object command, long hugePages) {
        if (hugePages < 1) {
            throw new CommandLine.ParameterException(new CommandLine(command), "--huge-pages must be at least 1");
        }
    }

    @Command(name = "roundtrip", description = "Fault round trip (faulting thread -> message -> handler -> resolve -> "
            + "resume): emulated in-process vs the kernel yardstick uffd_kernel_bench.c.")
    static final class RoundTrip implements Callable<Integer> {
        @Option(names = "--pages", defaultValue = "40000", description = "pages touched per case (default ${DEFAULT-VALUE})")
        long pages;
        @Option(names = "--threads", defaultValue = "1,8", split = ",", description = "faulting thread counts")
        List<Integer> threads;
        @Option(names = "--rounds", defaultValue = "3", description = "rounds per case; the best is reported")
        int rounds;
        @Option(names = "--cases", defaultValue = "anon-missing,shmem-missing,anon-wp,shmem-wp,hugetlb-missing,hugetlb-wp",
                split = ",")
        List<String> cases;
        @Option(names = "--huge-pages", defaultValue = "256", description = "2 MiB pages touched per hugetlb case "
                + "(default ${DEFAULT-VALUE}; the kernel and native sides need that many free: vm.nr_hugepages)")
        long hugePages;
        @Option(names = "--skip-emulated", description = "kernel and native backend only")
        boolean skipEmulated;
        // a plain flag: picocli's negatable form with defaultValue "true" made --no-native set true
        @Option(names = "--skip-native", description = "skip the native (linux) backend (issue 4's ratio)")
        boolean skipNative;
        @Option(names = "--repeat", defaultValue = "1", description = "run the whole table this many times, the "
                + "yardstick and uffdemu back to back in each, then print each cell's median ratio and range "
                + "(the kernel's own figure moves between runs on a shared machine)")
        int repeat;

        @Override
        public Integer call() throws Exception {
            if (repeat < 1) {
                throw new CommandLine.ParameterException(new CommandLine(this),
                        "--repeat must be at least 1");
            }
            checkHugePages(this, hugePages);
            KernelYardstick kernel = new KernelYardstick();
            Map<String, List<double[]>> ratios = new java.util.LinkedHashMap<>();
            for (int rep = 1; rep <= repeat; rep++) {
                if (repeat > 1) {
                    System.out.printf("%nRepetition %d of %d%n%n", rep, repeat);
                }
                table(kernel, ratios);
            }
            if (repeat > 1) {
                System.out.printf("%nMedian ratio to the kernel over %d repetitions (min-max)%n%n", repeat);
                System.out.println("| case | threads | emulated/kernel | native/kernel | native, virtual callers/kernel |");
                System.out.println("|---|---|---|---|---|");
                for (var e : ratios.entrySet()) {
                    String[] key = e.getKey().split("/");
                    System.out.printf("| %s | %s | %s | %s | %s |%n", key[0], key[1], medianRange(e.getValue(), 0),
                            medianRange(e.getValue(), 1), medianRange(e.getValue(), 2));
                }
            }
            if (kernel.unavailableReason() != null) {
                System.out.println();
                System.out.println("kernel yardstick unavailable: " + kernel.unavailableReason());
            }
            for (String reason : new java.util.LinkedHashSet<>(nativeUnavailable)) {
                System.out.println();
                System.out.println("native backend n/a for " + reason);
            }
            return 0;
        }

        /** Native runs that could not run (the case and the errno), reported under the table. */
        private final List<String> nativeUnavailable = new ArrayList<>();

        /** "median (min-max)" of column {@code col} over the repetitions that measured it; "n/a" when none did. */
        static String medianRange(List<double[]> rows, int col) {
            double[] v = rows.stream().mapToDouble(r -> r[col]).filter(x -> x >= 0).sorted().toArray();
            if (v.length == 0) {
                return "n/a";
            }
            double median = v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
            return String.format("%.2f (%.2f-%.2f)", median, v[0], v[v.length - 1]);
        }

        /** One table: for each thread count the yardstick, then each case on uffdemu; ratios appended per cell. */
        private void table(KernelYardstick kernel, Map<String, List<double[]>> ratios) throws Exception {
            System.out.println("| case | threads | kernel faults/s | emulated faults/s | ratio (emulated/kernel) "
                    + "| emulated p50 us | p99 us | native backend faults/s | ratio (native/kernel) "
                    + "| native, virtual callers faults/s | ratio |");
            System.out.println("|---|---|---|---|---|---|---|---|---|---|---|");
            for (int t : threads) {
                Map<String, Double> k = yardstick(kernel, cases, pages, hugePages, t, rounds);
                if (!skipEmulated) {
                    EmulatedRoundTrip.run(EmulatedRoundTrip.Case.ANON_MISSING, Math.min(pages, 20000), t); // warm-up
                }
                for (String c : cases) {
                    Sizing sz = Sizing.of(c, pages, hugePages, t);
                    EmulatedRoundTrip.Case ec = sz.ec();
                    long n = sz.pages();
                    EmulatedRoundTrip.Result best = null;
                    for (int r = 0; !skipEmulated && r < rounds; r++) {
                        var res = EmulatedRoundTrip.run(ec, n, t);
                        if (best == null || res.faultsPerSecond() > best.faultsPerSecond()) {
                            best = res;
                        }
                    }
                    Double kf = k.get(c);
                    double nat = -1;
                    double natV = -1;
                    if (!skipNative) {
                        try {
                            for (int r = 0; r < rounds; r++) {
                                nat = Math.max(nat, NativeRoundTrip.run(ec, n, t, true));
                                natV = Math.max(natV, NativeRoundTrip.run(ec, n, t, false));
                            }
                        } catch (io.uffdemu.server.mm.LinuxException e) {
                            // no free huge pages on the host, typically: the cell reads n/a, the reason below
                            nativeUnavailable.add(c + ": " + e.getMessage());
                        }
                    }
                    System.out.printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |%n", c,
                            sz.threadsCell(), sz.kernelCell(kf),
                            best == null ? "n/a" : fmt(best.faultsPerSecond()),
                            kf == null || best == null ? "n/a" : String.format("%.2f", best.faultsPerSecond() / kf),
                            best == null ? "n/a" : String.format("%.1f", best.latency().getValueAtPercentile(50) / 1e3),
                            best == null ? "n/a" : String.format("%.1f", best.latency().getValueAtPercentile(99) / 1e3),
                            nat < 0 ? "n/a" : fmt(nat),
                            nat < 0 || kf == null ? "n/a" : String.format("%.2f", nat / kf),
                            natV < 0 ? "n/a" : fmt(natV),
                            natV < 0 || kf == null ? "n/a" : String.format("%.2f", natV / kf));
                    ratios.computeIfAbsent(c + "/" + t, x -> new ArrayList<>()).add(new double[] {
                        kf == null || best == null ? -1 : best.faultsPerSecond() / kf,
                        nat < 0 || kf == null ? -1 : nat / kf,
                        natV < 0 || kf == null ? -1 : natV / kf});
                }
            }
        }
    }

    @Command(name = "remote", description = "Remote fault round trip through gRPC on loopback: faulting threads in "
            + "the server (ProcessService.Storm), the SDK's handler loop here, with and without batching, against the "
            + "kernel yardstick with the same faulting threads and one handler thread.")
    static final class Remote implements Callable<Integer> {
        @Option(names = "--pages", defaultValue = "40000", description = "pages touched per case (default ${DEFAULT-VALUE})")
        long pages;
        @Option(names = "--threads", defaultValue = "1,8,64,1000", split = ",", description = "faulting thread counts")
        List<Integer> threads;
        @Option(names = "--rounds", defaultValue = "2", description = "rounds per case; the best is reported")
        int rounds;
        @Option(names = "--cases", defaultValue = "anon-missing,shmem-missing,anon-wp,shmem-wp,hugetlb-missing,hugetlb-wp",
                split = ",")
        List<String> cases;
        @Option(names = "--huge-pages", defaultValue = "256", description = "2 MiB pages touched per hugetlb case "
                + "(default ${DEFAULT-VALUE}; the kernel side needs that many free: vm.nr_hugepages)")
        long hugePages;
        @Option(names = "--workers", defaultValue = "0",
                description = "handler loop workers (0: the faulting threads, between 4 and 64)")
        int workers;
        @Option(names = "--unix-socket", description = "start the server on this Unix domain socket instead of a "
                + "loopback TCP port (a same-host handler's transport)")
        java.nio.file.Path unixSocket;
        @Option(names = "--target", description = "host:port, or unix:///path, of a running server (default: start "
                + "server/target's jar)")
        String target;
        @Option(names = "--server-jar", description = "server exec jar to start (default: server/target/uffdemu-server-*-exec.jar)")
        java.nio.file.Path serverJar;
        @Option(names = "--skip-kernel", description = "no kernel yardstick (machines without userfaultfd)")
        boolean skipKernel;

        @Option(names = "--server-pid", description = "with --target: the server's pid, to count its CPU too")
        long serverPid;

        @Option(names = "--batching-only", description = "only the batching runs (the no-batching columns read n/a)")
        boolean batchingOnly;

        @Option(names = "--warmup-seconds", defaultValue = "30", description = "unmeasured passes over the cases "
                + "(64 faulting threads, small sizes) until this many seconds have gone, at least one, before anything "
                + "is measured: both JVMs compile the paths the table times (default ${DEFAULT-VALUE}; 0: one pass)")
        long warmupSeconds;

        @Option(names = "--copy-region", defaultValue = "" + io.uffdemu.client.HandlerOptions.DEFAULT_COPY_REGION_BYTES,
                description = "bytes of the Handle stream's copy region in the batching runs (HandlerOptions."
                        + "copyRegionBytes, default ${DEFAULT-VALUE}; 0: COPY bytes travel in the requests)")
        long copyRegion;

        @Override
        public Integer call() throws Exception {
            checkHugePages(this, hugePages);
            if (warmupSeconds < 0) {
                throw new CommandLine.ParameterException(new CommandLine(this), "--warmup-seconds must not be negative");
            }
            if (target != null && unixSocket != null) {
                throw new CommandLine.ParameterException(new CommandLine(this),
                        "--unix-socket starts a server; --target uses a running one: give one of them");
            }
            KernelYardstick kernel = new KernelYardstick();
            java.nio.file.Path log = java.nio.file.Files.createTempFile("uffdemu-bench-server", ".log");
            try (RemoteRoundTrip remote = target != null
                    ? RemoteRoundTrip.connect(target)
                    : RemoteRoundTrip.start(serverJar != null ? serverJar
                            : RemoteRoundTrip.findServerJar(java.nio.file.Path.of("")), log, unixSocket)) {
                remote.serverPid = serverPid;
                remote.copyRegionBytes = copyRegion;
                warmUp(remote);
                System.out.println("| case | threads | kernel faults/s | remote, no batching faults/s | ratio | p50 us "
                        + "| p99 us | CPU us/fault | remote, batching faults/s | ratio | p50 us | p99 us | CPU us/fault "
                        + "| lost writes |");
                System.out.println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
                for (int t : threads) {
                    Map<String, Double> k = skipKernel ? Map.of()
                            : yardstick(kernel, cases, pages, hugePages, t, rounds);
                    for (String c : cases) {
                        Sizing sz = Sizing.of(c, pages, hugePages, t);
                        EmulatedRoundTrip.Case ec = sz.ec();
                        long n = sz.pages();
                        int ct = sz.threads();
                        int w = workers > 0 ? workers : Math.max(4, Math.min(64, ct));
                        RemoteRoundTrip.Result plain = null;
                        RemoteRoundTrip.Result batched = null;
                        long lost = 0;
                        for (int r = 0; r < rounds; r++) {
                            if (!batchingOnly) {
                                var a = remote.run(ec, n, ct, false, w);
                                lost += a.lostWrites();
                                plain = plain == null || a.faultsPerSecond() > plain.faultsPerSecond() ? a : plain;
                            }
                            var b = remote.run(ec, n, ct, true, w);
                            lost += b.lostWrites();
                            batched = batched == null || b.faultsPerSecond() > batched.faultsPerSecond() ? b : batched;
                        }
                        Double kf = k.get(c);
                        String plainCols = plain == null ? "n/a | n/a | n/a | n/a | n/a"
                                : String.format("%s | %s | %.0f | %.0f | %.1f", fmt(plain.faultsPerSecond()),
                                        kf == null ? "n/a" : String.format("%.2f", plain.faultsPerSecond() / kf),
                                        plain.p50Micros(), plain.p99Micros(), plain.cpuMicrosPerFault());
                        System.out.printf("| %s | %s | %s | %s | %s | %s | %.0f | %.0f | %.1f "
                                + "| %d |%n", c, sz.threadsCell(), sz.kernelCell(kf),
                                plainCols,
                                fmt(batched.faultsPerSecond()),
                                kf == null ? "n/a" : String.format("%.2f", batched.faultsPerSecond() / kf),
                                batched.p50Micros(), batched.p99Micros(), batched.cpuMicrosPerFault(), lost);
                    }
                }
            }
            if (kernel.unavailableReason() != null) {
                System.out.println();
                System.out.println("kernel yardstick unavailable: " + kernel.unavailableReason());
            }
            return 0;
        }

        /**
         * JIT warm-up of both JVMs on the paths the table measures: passes over every case (its fault kind, memory
         * type and resolution) with 64 faulting threads at small sizes, in every mode measured, until
         * --warmup-seconds have gone (at least one pass). A server compiles the Handle stream's batch paths over tens
         * of seconds on 2 cores; without this the first rows time the compiler as much as the emulator.
         */
        private void warmUp(RemoteRoundTrip remote) {
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(warmupSeconds);
            do {
                for (String c : cases) {
                    Sizing sz = Sizing.of(c, Math.min(pages, 20000), Math.min(hugePages, 32), 64);
                    for (boolean b : batchingOnly ? new boolean[] {true} : new boolean[] {false, true}) {
                        remote.run(sz.ec(), sz.pages(), sz.threads(), b,
                                workers > 0 ? workers : Math.max(4, Math.min(64, sz.threads())));
                    }
                }
            } while (System.nanoTime() < end);
        }
    }

    @Command(name = "curve", description = "Scaling curve of the fault round trip: cost per fault against faulting "
            + "threads and pages touched, emulated in-process and native backend, each next to the kernel yardstick "
            + "run with the same threads and pages.")
    static final class Curve implements Callable<Integer> {
        @Option(names = "--threads", defaultValue = "1,8,64", split = ",", description = "faulting thread counts")
        List<Integer> threads;
        @Option(names = "--pages", defaultValue = "10000,40000,160000", split = ",", description = "pages touched")
        List<Long> pages;
        @Option(names = "--case", defaultValue = "anon-missing", description = "one of the yardstick's cases")
        String caseLabel;
        @Option(names = "--rounds", defaultValue = "2", description = "rounds per point; the best is reported")
        int rounds;
        @Option(names = "--skip-native", description = "skip the native backend (platform faulting threads)")
        boolean skipNative;

        @Override
        public Integer call() throws Exception {
            KernelYardstick kernel = new KernelYardstick();
            EmulatedRoundTrip.Case c = EmulatedRoundTrip.Case.of(caseLabel);
            EmulatedRoundTrip.run(c, 20000, 1); // warm-up
            System.out.println("| case | threads | pages | kernel faults/s | kernel us/fault | emulated faults/s "
                    + "| emulated us/fault | emulated/kernel | native faults/s | native us/fault | native/kernel |");
            System.out.println("|---|---|---|---|---|---|---|---|---|---|---|");
            for (int t : threads) {
                for (long n : pages) {
                    double kf = -1;
                    double ef = -1;
                    double nf = -1;
                    for (int r = 0; r < rounds; r++) {
                        Double k = kernel.roundTrip(n, t).get(c.label());
                        if (k != null) {
                            kf = Math.max(kf, k);
                        }
                        ef = Math.max(ef, EmulatedRoundTrip.run(c, n, t).faultsPerSecond());
                        if (!skipNative) {
                            nf = Math.max(nf, NativeRoundTrip.run(c, n, t, true));
                        }
                    }
                    System.out.printf("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |%n", c.label(), t, n,
                            kf < 0 ? "n/a" : fmt(kf), kf < 0 ? "n/a" : String.format("%.2f", 1e6 / kf),
                            fmt(ef), String.format("%.2f", 1e6 / ef),
                            kf < 0 ? "n/a" : String.format("%.2f", ef / kf),
                            nf < 0 ? "n/a" : fmt(nf), nf < 0 ? "n/a" : String.format("%.2f", 1e6 / nf),
                            nf < 0 || kf < 0 ? "n/a" : String.format("%.2f", nf / kf));
                }
            }
            if (kernel.unavailableReason() != null) {
                System.out.println();
                System.out.println("kernel yardstick unavailable: " + kernel.unavailableReason());
            }
            return 0;
        }
    }

    @Command(name = "bulk", description = "Bulk ioctls over a large range: WRITEPROTECT populated / unpopulated, "
            + "COPY of every page in 4 KiB and in 2 MiB steps, fork of a process with the range populated, "
            + "PAGEMAP_SCAN; emulated vs kernel.")
    static final class Bulk implements Callable<Integer> {
        @Option(names = "--bytes", defaultValue = "1073741824", description = "range size (default 1 GiB)")
        long bytes;

        @Override
        public Integer call() throws Exception {
            KernelYardstick kernel = new KernelYardstick();
            Map<String, Double> k = kernel.bulk(bytes);
            Map<String, Double> e = EmulatedBulk.bulk(bytes);
            System.out.printf("| operation (%d MiB) | kernel us | emulated us | ratio (kernel/emulated: >1 = emulator faster) |%n",
                    bytes >> 20);
            System.out.println("|---|---|---|---|");
            for (var en : e.entrySet()) {
                // copy-4k-reused: the emulated COPY into content memory the host already handed over, against
                // the kernel's copy-4k (its pages come from its free lists either way)
                String kernelOp = en.getKey().equals("copy-4k-reused") ? "copy-4k" : en.getKey();
                Double kv = k.get(kernelOp);
                String label = kernelOp.equals(en.getKey()) ? en.getKey() : en.getKey() + " (kernel: " + kernelOp + ")";
                System.out.printf("| %s | %s | %s | %s |%n", label, kv == null ? "n/a" : fmt(kv),
                        fmt(en.getValue()), kv == null ? "n/a" : String.format("%.2f", kv / en.getValue()));
            }
            if (kernel.unavailableReason() != null) {
                System.out.println("kernel side unavailable: " + kernel.unavailableReason());
            }
            return 0;
        }
    }

    @Command(name = "scale", description = "Memory and scale figures of the emulation core.")
    static final class Scale implements Callable<Integer> {
        @Option(names = "--resident-pages", defaultValue = "1000000")
        long resident;
        @Option(names = "--processes", defaultValue = "1000")
        int processes;
        @Option(names = "--blocked-threads", defaultValue = "10000")
        int blocked;

        @Override
        public Integer call() throws Exception {
            System.out.println("| figure | value |");
            System.out.println("|---|---|");
            List<String> lines = new ArrayList<>();
            EmulatedBulk.scale(resident, processes, blocked).forEach((n, v) -> lines.add("| " + n + " | " + fmt(v)
                    + " |"));
            lines.forEach(System.out::println);
            return 0;
        }
    }

    @Command(name = "transport", description = "The remote round trip's transport floor: gRPC, protobuf and loopback "
            + "TCP alone carrying one remote fault's messages (a pagefault message out, a 4 KiB COPY in, its result "
            + "out) between two JVMs, with no emulation; CPU per fault of both processes, and the faults/s that CPU "
            + "allows on this machine's cores next to the kernel yardstick's 64-thread figure.")
    static final class Transport implements Callable<Integer> {
        @Option(names = "--batches", defaultValue = "1,8,16,32,64", split = ",",
                description = "messages per batch (both directions)")
        List<Integer> batches;
        @Option(names = "--inflight", defaultValue = "64", description = "faults kept outstanding (faulting threads)")
        int inflight;
        @Option(names = "--items", defaultValue = "200000", description = "faults per point (default ${DEFAULT-VALUE})")
        long items;
        @Option(names = "--rounds", defaultValue = "3", description = "rounds per point; the best is reported")
        int rounds;
        @Option(names = "--pages", defaultValue = "40000", description = "pages of the kernel yardstick's run")
        long pages;
        @Option(names = "--skip-kernel", description = "no kernel yardstick (machines without userfaultfd)")
        boolean skipKernel;
        @Option(names = "--direct", defaultValue = "none", description = "which side runs its stream callbacks on "
                + "the transport's event loop (gRPC directExecutor) instead of an executor (the server: virtual "
                + "threads, as the uffdemu server's calls; the client: gRPC's default executor): none, client (as "
                + "the SDK's Handle stream does), server or both (default ${DEFAULT-VALUE})")
        String direct;

        @Override
        public Integer call() throws Exception {
            if (rounds < 1 || items < 1 || inflight < 1 || batches.stream().anyMatch(b -> b < 1)) {
                throw new CommandLine.ParameterException(new CommandLine(this),
                        "--rounds, --items, --inflight and every --batches size must be at least 1");
            }
            if (!List.of("none", "client", "server", "both").contains(direct)) {
                throw new CommandLine.ParameterException(new CommandLine(this),
                        "--direct must be none, client, server or both, not " + direct);
            }
            KernelYardstick kernel = new KernelYardstick();
            int cores = Runtime.getRuntime().availableProcessors();
            try (TransportFloor.Peer peer = new TransportFloor.Peer(
                    direct.equals("server") || direct.equals("both"), direct.equals("client") || direct.equals("both"))) {
                for (int b : batches) {
                    peer.run(Math.min(items, 100_000), inflight, b); // warm-up: JIT both sides
                }
                Map<String, Double> k = skipKernel ? Map.of() : kernel.bestRoundTrip(pages, Math.min(inflight, 256), 2);
                Double kf = k.get("anon-missing");
                System.out.println("| messages per batch | faults in flight | faults/s | CPU us/fault, both | client "
                        + "| server | faults/s the CPU allows on " + cores + " cores | kernel faults/s (anon-missing, "
                        + Math.min(inflight, 256) + " threads) | allowed/kernel |");
                System.out.println("|---|---|---|---|---|---|---|---|---|");
                for (int b : batches) {
                    TransportFloor.Result best = null;
                    for (int r = 0; r < rounds; r++) {
                        TransportFloor.Result x = peer.run(items, inflight, b);
                        best = best == null || x.cpuMicros() < best.cpuMicros() ? x : best;
                    }
                    double allowed = cores * 1e6 / best.cpuMicros();
                    System.out.printf("| %d | %d | %s | %.2f | %.2f | %.2f | %s | %s | %s |%n", b, inflight,
                            fmt(best.itemsPerSecond()), best.cpuMicros(), best.clientCpuMicros(),
                            best.serverCpuMicros(), fmt(allowed), kf == null ? "n/a" : fmt(kf),
                            kf == null ? "n/a" : String.format("%.2f", allowed / kf));
                }
            }
            if (kernel.unavailableReason() != null) {
                System.out.println();
                System.out.println("kernel yardstick unavailable: " + kernel.unavailableReason());
            }
            return 0;
        }
    }
}
