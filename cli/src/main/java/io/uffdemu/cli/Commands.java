package io.uffdemu.cli;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.BackendInfo;
import io.uffdemu.client.ErrnoException;
import io.uffdemu.client.EinvalException;
import io.uffdemu.client.Linux;
import io.uffdemu.client.PagemapEntry;
import io.uffdemu.client.Process;
import io.uffdemu.client.ProcessInfo;
import io.uffdemu.client.UffdInfo;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Vma;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** The one-shot subcommands. */
final class Commands {
    private Commands() {
    }

    /** Common base: the root, a connected client, and the global options mixin. */
    abstract static class Base implements Callable<Integer> {
        @Mixin
        Cli.GlobalOptions global;

        @Spec
        CommandLine.Model.CommandSpec spec;

        Cli cli() {
            return (Cli) spec.root().userObject();
        }

        @Override
        public final Integer call() throws Exception {
            try (UffdemuClient c = cli().connect()) {
                return run(cli(), c);
            }
        }

        abstract int run(Cli cli, UffdemuClient c) throws Exception;
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    /** An address as printed by maps: hex, with or without 0x. */
    static long parseAddress(CommandLine cl, String s) {
        String h = s.startsWith("0x") || s.startsWith("0X") ? s.substring(2) : s;
        try {
            return Long.parseUnsignedLong(h, 16);
        } catch (NumberFormatException e) {
            throw new CommandLine.ParameterException(cl, "not a hex address: " + s);
        }
    }

    static String uffdFlags(Vma v) {
        List<String> f = new ArrayList<>();
        if (v.uffdMissing()) {
            f.add("um");
        }
        if (v.uffdWp()) {
            f.add("uw");
        }
        if (v.uffdMinor()) {
            f.add("ui");
        }
        return f.isEmpty() ? "-" : String.join(",", f);
    }

    static String pageSize(long b) {
        return b >= 1L << 30 ? (b >> 30) + "G" : b >= 1L << 20 ? (b >> 20) + "M" : (b >> 10) + "K";
    }

    /** Names of the set bits of {@code bits} among Linux constants with {@code prefix} (bit values or bit numbers). */
    static List<String> bitNames(long bits, String prefix, boolean bitNumbers) {
        List<String> names = new ArrayList<>();
        long known = 0;
        for (Field f : Linux.class.getFields()) {
            if (!Modifier.isStatic(f.getModifiers()) || !f.getName().startsWith(prefix)) {
                continue;
            }
            try {
                long v = ((Number) f.get(null)).longValue();
                long mask = bitNumbers ? 1L << v : v;
                if (Long.bitCount(mask) == 1 && (bits & mask) != 0) {
                    names.add(f.getName().substring(prefix.length()));
                    known |= mask;
                }
            } catch (IllegalAccessException e) {
                throw new IllegalStateException(e);
            }
        }
        if ((bits & ~known) != 0) {
            names.add(hex(bits & ~known));
        }
        return names;
    }

    // ------------------------------------------------------------------ ps

    @Command(name = "ps", mixinStandardHelpOptions = true, description = "List the emulated processes.")
    static final class Ps extends Base {
        @Override
        int run(Cli cli, UffdemuClient c) {
            List<ProcessInfo> ps = c.processes();
            if (cli.json) {
                List<Object> l = new ArrayList<>();
                for (ProcessInfo p : ps) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("pid", p.pid());
                    m.put("ppid", p.parentPid());
                    m.put("name", p.name());
                    m.put("uid", p.credentials().uid());
                    m.put("capSysPtrace", p.credentials().capSysPtrace());
                    m.put("rssAnonBytes", p.rssAnonBytes());
                    m.put("rssShmemBytes", p.rssShmemBytes());
                    m.put("rssFileBytes", p.rssFileBytes());
                    m.put("swapBytes", p.swapBytes());
                    m.put("vmas", p.mappingCount());
                    m.put("fds", p.fds());
                    l.add(m);
                }
                cli.printJson(l);
                return 0;
            }
            Table t = new Table("PID", "PPID", "UID", "PTRACE", "ANON_KB", "SHMEM_KB", "FILE_KB", "SWAP_KB", "VMAS",
                    "FDS", "NAME");
            for (ProcessInfo p : ps) {
                t.row(p.pid(), p.parentPid(), p.credentials().uid(), p.credentials().capSysPtrace() ? "yes" : "no",
                        p.rssAnonBytes() / 1024, p.rssShmemBytes() / 1024, p.rssFileBytes() / 1024,
                        p.swapBytes() / 1024, p.mappingCount(), p.fds().size(), p.name());
            }
            t.print(cli.out);
            return 0;
        }
    }

    // ------------------------------------------------------------------ maps

    @Command(name = "maps", mixinStandardHelpOptions = true,
            description = {"Like /proc/PID/maps, with the page size and the userfaultfd registration of each VMA:",
                "um = MISSING, uw = WP, ui = MINOR (the VmFlags of /proc/PID/smaps)."})
    static final class Maps extends Base {
        @Parameters(index = "0", paramLabel = "PID")
        int pid;

        @Override
        int run(Cli cli, UffdemuClient c) {
            List<Vma> vmas = c.process(pid).maps();
            if (cli.json) {
                List<Object> l = new ArrayList<>();
                for (Vma v : vmas) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("start", hex(v.start()));
                    m.put("end", hex(v.end()));
                    m.put("perms", v.perms());
                    m.put("offset", v.offset());
                    m.put("path", v.path());
                    m.put("memoryType", String.valueOf(v.memoryType()));
                    m.put("pageSize", v.pageSize());
                    m.put("uffdMissing", v.uffdMissing());
                    m.put("uffdWp", v.uffdWp());
                    m.put("uffdMinor", v.uffdMinor());
                    l.add(m);
                }
                cli.printJson(l);
                return 0;
            }
            for (Vma v : vmas) {
                cli.out.println(String.format("%08x-%08x %s %08x %-4s %-8s %s", v.start(), v.end(), v.perms(),
                        v.offset(), pageSize(v.pageSize()), uffdFlags(v), v.path()).stripTrailing());
            }
            return 0;
        }
    }

    // ------------------------------------------------------------------ pagemap

    @Command(name = "pagemap", mixinStandardHelpOptions = true,
            description = "Decoded /proc/PID/pagemap entries of PAGES pages from START (hex, as maps prints it).")
    static final class Pagemap extends Base {
        @Parameters(index = "0", paramLabel = "PID")
        int pid;

        @Parameters(index = "1", paramLabel = "START", description = "hex address, 0x optional")
        String start;

        @Parameters(index = "2", arity = "0..1", paramLabel = "PAGES", defaultValue = "1",
                description = "number of pages (default: ${DEFAULT-VALUE})")
        long pages;

        @Override
        int run(Cli cli, UffdemuClient c) {
            long addr = parseAddress(spec.commandLine(), start);
            if (pages < 1) {
                throw new CommandLine.ParameterException(spec.commandLine(), "PAGES must be >= 1");
            }
            List<PagemapEntry> pm = c.process(pid).pagemap(addr, pages);
            if (cli.json) {
                List<Object> l = new ArrayList<>();
                for (PagemapEntry e : pm) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("address", hex(e.address()));
                    m.put("raw", hex(e.raw()));
                    m.put("present", e.present());
                    m.put("swapped", e.swapped());
                    m.put("file", e.fileOrSharedAnon());
                    m.put("exclusive", e.exclusive());
                    m.put("softDirty", e.softDirty());
                    m.put("uffdWp", e.uffdWp());
                    m.put("pfn", e.pfn());
                    l.add(m);
                }
                cli.printJson(l);
                return 0;
            }
            Table t = new Table("ADDRESS", "PRESENT", "SWAPPED", "FILE", "EXCLUSIVE", "SOFT_DIRTY", "UFFD_WP", "PFN",
                    "RAW");
            for (PagemapEntry e : pm) {
                t.row(Long.toHexString(e.address()), yn(e.present()), yn(e.swapped()), yn(e.fileOrSharedAnon()),
                        yn(e.exclusive()), yn(e.softDirty()), yn(e.uffdWp()), hex(e.pfn()), hex(e.raw()));
            }
            t.print(cli.out);
            return 0;
        }

        private static String yn(boolean b) {
            return b ? "yes" : "-";
        }
    }

    // ------------------------------------------------------------------ uffd ls

    @Command(name = "uffd", mixinStandardHelpOptions = true, description = "userfaultfd views.",
            subcommands = UffdLs.class)
    static final class Uffd implements Callable<Integer> {
        @Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() {
            throw new CommandLine.ParameterException(spec.commandLine(), "Missing required subcommand");
        }
    }

    static String modeFlags(long mode) {
        List<String> f = new ArrayList<>();
        if ((mode & Linux.UFFDIO_REGISTER_MODE_MISSING) != 0) {
            f.add("um");
        }
        if ((mode & Linux.UFFDIO_REGISTER_MODE_WP) != 0) {
            f.add("uw");
        }
        if ((mode & Linux.UFFDIO_REGISTER_MODE_MINOR) != 0) {
            f.add("ui");
        }
        return f.isEmpty() ? "-" : String.join(",", f);
    }

    @Command(name = "ls", mixinStandardHelpOptions = true,
            description = {"The userfaultfds of PID: features, registered ranges, pending and blocked faults, "
                + "unread events, and whether a handler is attached (UserfaultfdService.List, as "
                + "/proc/PID/fdinfo/FD shows it).",
                "PENDING = faults not yet read (fdinfo pending), BLOCKED = faults waiting, read or not (total), "
                + "EVENTS = unread non-cooperative events (0 on the native backend).",
                "Range modes: um = MISSING, uw = WP, ui = MINOR."})
    static final class UffdLs extends Base {
        @Parameters(index = "0", paramLabel = "PID")
        int pid;

        @Override
        int run(Cli cli, UffdemuClient c) {
            List<UffdInfo> uffds = c.process(pid).userfaultfds();
            if (cli.json) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("pid", pid);
                List<Object> l = new ArrayList<>();
                for (UffdInfo u : uffds) {
                    Map<String, Object> o = new LinkedHashMap<>();
                    o.put("fd", u.fd());
                    o.put("flags", hex(u.flags()));
                    o.put("apiDone", u.apiDone());
                    o.put("features", hex(u.features()));
                    o.put("featureNames", bitNames(u.features(), "UFFD_FEATURE_", false));
                    List<Object> ranges = new ArrayList<>();
                    for (UffdInfo.RegisteredRange r : u.ranges()) {
                        Map<String, Object> ro = new LinkedHashMap<>();
                        ro.put("start", hex(r.range().start()));
                        ro.put("end", hex(r.range().end()));
                        ro.put("modes", modeFlags(r.mode()));
                        ranges.add(ro);
                    }
                    o.put("ranges", ranges);
                    o.put("pendingFaults", u.pendingFaults());
                    o.put("totalFaults", u.totalFaults());
                    o.put("pendingEvents", u.pendingEvents());
                    o.put("handlerAttached", u.handlerAttached());
                    l.add(o);
                }
                m.put("uffds", l);
                cli.printJson(m);
                return 0;
            }
            Table t = new Table("FD", "FEATURES", "RANGES", "PENDING", "BLOCKED", "EVENTS", "HANDLER");
            for (UffdInfo u : uffds) {
                String f = u.apiDone() ? hex(u.features()) : "(no UFFDIO_API)";
                t.row(u.fd(), f, u.ranges().size(), u.pendingFaults(), u.totalFaults(), u.pendingEvents(),
                        u.handlerAttached() ? "attached" : "-");
            }
            t.print(cli.out);
            for (UffdInfo u : uffds) {
                List<String> names = bitNames(u.features(), "UFFD_FEATURE_", false);
                cli.out.println();
                cli.out.println("fd " + u.fd() + ": features " + (names.isEmpty() ? "none" : String.join(" ", names)));
                if (u.ranges().isEmpty()) {
                    cli.out.println("  no registered range");
                }
                for (UffdInfo.RegisteredRange r : u.ranges()) {
                    cli.out.println(String.format("  %08x-%08x %s", r.range().start(), r.range().end(),
                            modeFlags(r.mode())));
                }
            }
            return 0;
        }
    }

    // ------------------------------------------------------------------ sysctl

    /** The sysctls the server knows (docs/api.md plus vm.mmap_min_addr); the API has no listing call. */
    static final List<String> KNOWN_SYSCTLS = List.of("vm/mmap_min_addr", "vm/nr_hugepages", "vm/nr_hugepages_1G",
            "vm/unprivileged_userfaultfd", "mm/transparent_hugepage/enabled", "mm/transparent_hugepage/use_zero_page",
            "mm/read_fault_zero_page");

    @Command(name = "sysctl", mixinStandardHelpOptions = true,
            description = {"Read (NAME), set (NAME=VALUE) or list the sysctls. NAME as vm.x or vm/x.",
                "Setting needs an admin tenant when authentication is on."})
    static final class Sysctl extends Base {
        @Parameters(index = "0", arity = "0..1", paramLabel = "NAME[=VALUE]")
        String arg;

        @Override
        int run(Cli cli, UffdemuClient c) {
            Map<String, String> values = new LinkedHashMap<>();
            if (arg == null) {
                for (String n : KNOWN_SYSCTLS) {
                    values.put(n, c.sysctl(n));
                }
            } else {
                int eq = arg.indexOf('=');
                String name = (eq < 0 ? arg : arg.substring(0, eq)).trim().replace('.', '/');
                if (name.isEmpty()) {
                    throw new CommandLine.ParameterException(spec.commandLine(), "empty sysctl name");
                }
                values.put(name, eq < 0 ? c.sysctl(name) : c.setSysctl(name, arg.substring(eq + 1).trim()));
            }
            if (cli.json) {
                Map<String, Object> m = new LinkedHashMap<>();
                values.forEach((k, v) -> m.put(k.replace('/', '.'), v));
                cli.printJson(m);
            } else {
                values.forEach((k, v) -> cli.out.println(k.replace('/', '.') + " = " + v));
            }
            return 0;
        }
    }

    // ------------------------------------------------------------------ meminfo

    static final List<String> MEMINFO_ORDER = List.of("MemTotal", "MemFree", "AnonPages", "ShmemMapped",
            "SwapTotal", "SwapFree", "HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "Hugepagesize",
            "HugePages1G_Total", "HugePages1G_Free");

    @Command(name = "meminfo", mixinStandardHelpOptions = true,
            description = "Like /proc/meminfo (kB, except the HugePages counts).")
    static final class Meminfo extends Base {
        @Override
        int run(Cli cli, UffdemuClient c) {
            Map<String, Long> raw = new TreeMap<>(c.meminfo());
            Map<String, Long> ordered = new LinkedHashMap<>();
            for (String k : MEMINFO_ORDER) {
                if (raw.containsKey(k)) {
                    ordered.put(k, raw.remove(k));
                }
            }
            ordered.putAll(raw);
            if (cli.json) {
                cli.printJson(ordered);
                return 0;
            }
            ordered.forEach((k, v) -> cli.out.println(String.format("%-18s %10d%s", k + ":", v,
                    k.startsWith("HugePages") ? "" : " kB")));
            return 0;
        }
    }

    // ------------------------------------------------------------------ backend

    @Command(name = "backend", mixinStandardHelpOptions = true,
            description = "The server's memory backend and the UFFDIO_API features and ioctls it supports.")
    static final class Backend extends Base {
        @Override
        int run(Cli cli, UffdemuClient c) {
            BackendInfo raw = c.backend();
            BackendInfo b = new BackendInfo(raw.name(), raw.available(),
                    raw.unavailableReason() == null ? "" : raw.unavailableReason(), raw.features(), raw.ioctls(),
                    raw.kernelRelease() == null ? "" : raw.kernelRelease());
            List<String> features = bitNames(b.features(), "UFFD_FEATURE_", false);
            List<String> ioctls = bitNames(b.ioctls(), "_UFFDIO_", true);
            if (cli.json) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("name", b.name());
                m.put("available", b.available());
                m.put("unavailableReason", b.unavailableReason());
                m.put("kernelRelease", b.kernelRelease());
                m.put("features", hex(b.features()));
                m.put("featureNames", features);
                m.put("ioctls", hex(b.ioctls()));
                m.put("ioctlNames", ioctls);
                cli.printJson(m);
                return 0;
            }
            cli.out.println("backend:    " + b.name());
            cli.out.println("available:  " + (b.available() ? "yes" : "no"
                    + (b.unavailableReason().isEmpty() ? "" : " (" + b.unavailableReason() + ")")));
            if (!b.kernelRelease().isEmpty()) {
                cli.out.println("kernel:     " + b.kernelRelease());
            }
            cli.out.println("features:   " + hex(b.features()) + " " + String.join(" ", features));
            cli.out.println("ioctls:     " + hex(b.ioctls()) + " " + String.join(" ", ioctls));
            return 0;
        }
    }

    // ------------------------------------------------------------------ recipes (client-sdk io.uffdemu.client.recipes)

    @Command(name = "snapshot", description = "Live snapshot of a process (writers keep running): write-protect, "
            + "save pages in the background and before each WP fault is released; a crash-safe directory with a "
            + "manifest and per-page SHA-256 (docs/recipes.md section 1).")
    static final class Snapshot extends Base {
        @Parameters(index = "0", description = "process id")
        int pid;
        @Parameters(index = "1", description = "output directory (must not exist)")
        java.nio.file.Path dir;
        @Option(names = "--verify", description = "check pages.bin against the manifest afterwards")
        boolean verify;

        @Override
        int run(Cli cli, UffdemuClient c) throws Exception {
            io.uffdemu.client.recipes.SnapshotResult r;
            try (ProgressBar bar = ProgressBar.of(cli, "snapshot pages")) {
                r = io.uffdemu.client.recipes.LiveSnapshot.take(c,
                        io.uffdemu.client.recipes.SnapshotOptions.of(pid, dir).withSourceServer(cli.target()), bar);
            }
            if (verify) {
                io.uffdemu.client.recipes.SnapshotVerifier.verifyFile(r.dir()).throwIfFailed();
            }
            cli.out.print(cli.json ? r.toJson() + System.lineSeparator() : r.toTable());
            return 0;
        }
    }

    @Command(name = "restore", description = "Lazy restore of a snapshot into a new process: MISSING faults are "
            + "served from the snapshot (COPY, zero pages for holes), the rest is prefetched "
            + "(docs/recipes.md section 4). Waits for the prefetch, prints the new pid, and leaves the process.")
    static final class Restore extends Base {
        @Parameters(index = "0", description = "snapshot directory")
        java.nio.file.Path dir;
        @Option(names = "--timeout", defaultValue = "PT10M", description = "prefetch timeout (ISO-8601, default ${DEFAULT-VALUE})")
        java.time.Duration timeout;

        @Override
        int run(Cli cli, UffdemuClient c) throws Exception {
            io.uffdemu.client.recipes.LazyRestore restore;
            try (ProgressBar bar = ProgressBar.of(cli, "restore prefetch")) {
                restore = io.uffdemu.client.recipes.LazyRestore.start(c,
                        io.uffdemu.client.recipes.RestoreOptions.of(dir), bar);
                restore.awaitPrefetch(timeout);
            }
            var r = restore.result();
            cli.out.print(cli.json ? r.toJson() + System.lineSeparator() : r.toTable());
            return 0;
        }
    }

    @Command(name = "bench", description = "Handler load test: threads run an access pattern against a fault "
            + "handler; reports faults/s, latency percentiles and integrity (docs/recipes.md section 5).")
    static final class Bench extends Base {
        @Option(names = "--threads", defaultValue = "16")
        int threads;
        @Option(names = "--pages", defaultValue = "256")
        long pages;
        @Option(names = "--ops", defaultValue = "200", description = "accesses per thread")
        long ops;
        @Option(names = "--memory", defaultValue = "ANON", description = "ANON, SHMEM or HUGETLB")
        io.uffdemu.client.MemoryType memory;
        @Option(names = "--pattern", defaultValue = "RANDOM", description = "SEQUENTIAL, RANDOM or ZIPFIAN")
        io.uffdemu.client.recipes.BenchOptions.Pattern pattern;
        @Option(names = "--mode", defaultValue = "MISSING", description = "MISSING or WP")
        io.uffdemu.client.recipes.BenchOptions.Mode mode;
        @Option(names = "--write-ratio", defaultValue = "0.3")
        double writeRatio;
        @Option(names = "--seed", defaultValue = "1")
        long seed;
        @Option(names = "--html", description = "also write an HTML report with the latency plot here")
        java.nio.file.Path html;

        @Override
        int run(Cli cli, UffdemuClient c) throws Exception {
            var d = io.uffdemu.client.recipes.BenchOptions.defaults();
            var o = new io.uffdemu.client.recipes.BenchOptions(threads, pages, memory, pattern, writeRatio, mode, ops,
                    null, d.handlerWorkers(), null, true, java.util.Set.of(), 0, seed, null);
            io.uffdemu.client.recipes.BenchResult r;
            try (ProgressBar bar = ProgressBar.of(cli, "bench accesses")) {
                r = io.uffdemu.client.recipes.LoadTest.run(c, o, bar);
            }
            if (html != null) {
                java.nio.file.Files.writeString(html, r.toHtml());
            }
            cli.out.print(cli.json ? r.toJson() + System.lineSeparator() : r.toTable());
            return r.ok() ? 0 : ExitCodes.OTHER;
        }
    }

    /** "90s", "10m", "1h", "250ms" or an ISO-8601 duration ("PT1H"). */
    static final class DurationConverter implements CommandLine.ITypeConverter<java.time.Duration> {
        @Override
        public java.time.Duration convert(String v) {
            String s = v.strip().toLowerCase(java.util.Locale.ROOT);
            if (s.startsWith("pt") || s.startsWith("p")) {
                return java.time.Duration.parse(s.toUpperCase(java.util.Locale.ROOT));
            }
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("(\\d+)(ms|s|m|h)").matcher(s);
            if (!m.matches()) {
                throw new CommandLine.TypeConversionException("not a duration: " + v + " (use 90s, 10m, 1h)");
            }
            long n = Long.parseLong(m.group(1));
            return switch (m.group(2)) {
                case "ms" -> java.time.Duration.ofMillis(n);
                case "s" -> java.time.Duration.ofSeconds(n);
                case "m" -> java.time.Duration.ofMinutes(n);
                default -> java.time.Duration.ofHours(n);
            };
        }
    }

    @Command(name = "soak", description = {"Soak: mixed load rounds for a long time with handlers killed and "
            + "restarted while faults are in flight; checks that no write is lost and that the server's heap, "
            + "RSS and emulated memory stay flat (issue 8; docs/recipes.md).",
        "Exit code 0 when the verdict is OK, 7 otherwise."})
    static final class SoakCmd extends Base {
        @Option(names = "--duration", defaultValue = "1h", converter = DurationConverter.class,
                description = "total time (default ${DEFAULT-VALUE})")
        java.time.Duration duration;
        @Option(names = "--round", defaultValue = "20s", converter = DurationConverter.class,
                description = "length of one load round (default ${DEFAULT-VALUE})")
        java.time.Duration round;
        @Option(names = "--restart-every", defaultValue = "3s", converter = DurationConverter.class,
                description = "kill the handler and attach a new one this often (default ${DEFAULT-VALUE})")
        java.time.Duration restartEvery;
        @Option(names = "--threads", defaultValue = "32")
        int threads;
        @Option(names = "--pages", defaultValue = "512")
        long pages;
        @Option(names = "--metrics-url", description = "the server's /actuator/prometheus (e.g. "
                + "http://127.0.0.1:8080/actuator/prometheus); without it memory is not checked")
        java.net.URI metricsUrl;

        @Override
        int run(Cli cli, UffdemuClient c) throws Exception {
            var o = io.uffdemu.client.recipes.Soak.Options.DEFAULT.withDuration(duration).withRoundLength(round)
                    .withRestartEvery(restartEvery).withLoad(threads, pages).withMetricsUrl(metricsUrl);
            var r = io.uffdemu.client.recipes.Soak.run(cli.config(), o, s -> {
                if (!cli.json) {
                    cli.err.printf("round %d: %s, %d ops, %d restarts, %d violations%n", s.round(), s.load(), s.ops(),
                            s.restarts(), s.violations());
                    cli.err.flush();
                }
            });
            if (cli.json) {
                java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
                m.put("ok", r.ok());
                m.put("ops", r.ops());
                m.put("faults", r.faults());
                m.put("restarts", r.restarts());
                m.put("violations", r.violations());
                m.put("memoryFindings", r.memoryFindings());
                m.put("rounds", r.samples().size());
                cli.printJson(m);
            } else {
                cli.out.print(r.toTable());
            }
            return r.ok() ? 0 : ExitCodes.OTHER;
        }
    }
}
