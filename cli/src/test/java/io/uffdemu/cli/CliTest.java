package io.uffdemu.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.jayway.jsonpath.JsonPath;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.Linux;
import io.uffdemu.client.Memfd;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import io.uffdemu.server.UffdemuServerApplication;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/** Every subcommand against the real server, started in-process on a random port. */
@SpringBootTest(classes = UffdemuServerApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"spring.grpc.server.port=0"})
@Timeout(60)
class CliTest {
    static final int PAGE = 4096;

    @LocalGrpcServerPort
    int port;

    UffdemuClient client;
    Process proc;
    long anon;
    long shared;
    Userfaultfd uffd;
    Memfd memfd;

    record Run(int code, String out, String err) {}

    Run cli(String... args) {
        return cliWithEnv(Map.of("UFFDEMU_SERVER", "127.0.0.1:" + port), args);
    }

    static Run cliWithEnv(Map<String, String> env, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Cli.run(args, env, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString(), err.toString());
    }

    @BeforeEach
    void setUp() {
        client = UffdemuClient.connect(ClientConfig.DEFAULT.withTarget("127.0.0.1:" + port));
        proc = client.createProcess("cli-target");
        anon = proc.mmap(MmapOptions.anonymous(4 * PAGE));
        memfd = proc.memfdCreate("guest", 0);
        memfd.ftruncate(4 * PAGE);
        shared = memfd.mmap(4 * PAGE, 0);
        proc.write(shared, "x".getBytes());
        uffd = proc.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM));
        uffd.register(new AddrRange(anon, 4 * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);
        uffd.register(new AddrRange(shared, 4 * PAGE), Linux.UFFDIO_REGISTER_MODE_WP);
        uffd.writeProtect(new AddrRange(shared, PAGE), Linux.UFFDIO_WRITEPROTECT_MODE_WP);
    }

    @AfterEach
    void tearDown() {
        proc.exit();
        client.close();
    }

    @Test
    void ps() {
        Run r = cli("ps");
        assertThat(r.code()).isZero();
        assertThat(r.out()).startsWith("PID").contains("cli-target");
        assertThat(r.out().lines().filter(l -> l.startsWith(proc.pid() + " ")).findFirst()).get()
                .asString().endsWith("cli-target").contains("yes");
        Run j = cli("ps", "--json");
        assertThat(j.code()).isZero();
        List<String> names = JsonPath.read(j.out(), "$[?(@.pid == " + proc.pid() + ")].name");
        assertThat(names).containsExactly("cli-target");
        List<List<Integer>> fds = JsonPath.read(j.out(), "$[?(@.pid == " + proc.pid() + ")].fds");
        assertThat(fds.getFirst()).contains(uffd.fd(), memfd.fd());
    }

    @Test
    void maps() {
        Run r = cli("maps", Integer.toString(proc.pid()));
        assertThat(r.code()).isZero();
        assertThat(r.out()).containsPattern(String.format("(?m)^%08x-%08x rw-p 00000000 4K +um$", anon,
                anon + 4 * PAGE));
        assertThat(r.out()).containsPattern(String.format("(?m)^%08x-%08x rw-s 00000000 4K +uw +/memfd:guest", shared,
                shared + 4 * PAGE));
        Run j = cli("--json", "maps", Integer.toString(proc.pid()));
        List<Boolean> wp = JsonPath.read(j.out(), "$[?(@.start == '0x" + Long.toHexString(shared) + "')].uffdWp");
        assertThat(wp).containsExactly(true);
        List<Boolean> missing = JsonPath.read(j.out(), "$[?(@.start == '0x" + Long.toHexString(anon)
                + "')].uffdMissing");
        assertThat(missing).containsExactly(true);
    }

    @Test
    void pagemap() {
        Run r = cli("pagemap", Integer.toString(proc.pid()), Long.toHexString(shared), "2");
        assertThat(r.code()).isZero();
        List<String> lines = r.out().lines().toList();
        assertThat(lines).hasSize(3);
        assertThat(lines.get(0)).startsWith("ADDRESS").contains("UFFD_WP");
        // page 0: present, shared file page, write-protected; page 1: not present
        assertThat(lines.get(1).split("\\s+")).startsWith(Long.toHexString(shared), "yes", "-", "yes");
        assertThat(lines.get(1).split("\\s+")[6]).isEqualTo("yes");
        assertThat(lines.get(2).split("\\s+")[1]).isEqualTo("-");
        Run j = cli("pagemap", "--json", Integer.toString(proc.pid()), "0x" + Long.toHexString(shared), "2");
        List<Boolean> wp = JsonPath.read(j.out(), "$[*].uffdWp");
        assertThat(wp).containsExactly(true, false);
        assertThat(cli("pagemap", Integer.toString(proc.pid()), "xyz").code()).isEqualTo(ExitCodes.USAGE);
        Run one = cli("pagemap", Integer.toString(proc.pid()), Long.toHexString(shared));
        assertThat(one.code()).as(one.err()).isZero();
        assertThat(one.out().lines()).hasSize(2);
    }

    @Test
    void uffdLs() {
        Run r = cli("uffd", "ls", Integer.toString(proc.pid()));
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).containsPattern("(?m)^FD +FEATURES +RANGES +PENDING +BLOCKED +EVENTS +HANDLER$");
        assertThat(r.out()).containsPattern("(?m)^" + uffd.fd() + " +0x[0-9a-f]+ +2 +0 +0 +0 +-$");
        assertThat(r.out()).doesNotContainPattern("(?m)^" + memfd.fd() + " ");
        assertThat(r.out()).contains("WP_HUGETLBFS_SHMEM")
                .contains(String.format("%08x-%08x um", anon, anon + 4 * PAGE))
                .contains(String.format("%08x-%08x uw", shared, shared + 4 * PAGE));
        Run j = cli("uffd", "ls", Integer.toString(proc.pid()), "--json");
        assertThat(j.code()).isZero();
        List<Integer> fds = JsonPath.read(j.out(), "$.uffds[*].fd");
        assertThat(fds).containsExactly(uffd.fd());
        List<String> modes = JsonPath.read(j.out(), "$.uffds[0].ranges[*].modes");
        assertThat(modes).containsExactly(anon < shared ? "um" : "uw", anon < shared ? "uw" : "um");
        assertThat((Integer) JsonPath.read(j.out(), "$.uffds[0].pendingFaults")).isZero();
        assertThat((Boolean) JsonPath.read(j.out(), "$.uffds[0].handlerAttached")).isFalse();
        List<String> names = JsonPath.read(j.out(), "$.uffds[0].featureNames");
        assertThat(names).contains("WP_HUGETLBFS_SHMEM");
        assertThat(cli("uffd", "ls", "999999").code()).isEqualTo(ExitCodes.NOT_FOUND);
    }

    @Test
    void uffdLsShowsAPendingFaultAndAnAttachedHandler() throws Exception {
        var read = proc.withDeadline(java.time.Duration.ofSeconds(30)).async().read(anon, 1);
        long end = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(10);
        while (uffd.describe().pendingFaults() == 0 && System.nanoTime() < end) {
            Thread.sleep(10);
        }
        Run r = cli("uffd", "ls", Integer.toString(proc.pid()));
        assertThat(r.out()).containsPattern("(?m)^" + uffd.fd() + " +0x[0-9a-f]+ +2 +1 +1 +0 +-$");
        try (var loop = uffd.handle(ctx -> ctx.zeropage(), io.uffdemu.client.HandlerOptions.DEFAULT)) {
            assertThat(read.get(10, java.util.concurrent.TimeUnit.SECONDS).ok()).isTrue();
            Run j = cli("uffd", "ls", Integer.toString(proc.pid()), "--json");
            assertThat((Boolean) JsonPath.read(j.out(), "$.uffds[0].handlerAttached")).isTrue();
            assertThat((Integer) JsonPath.read(j.out(), "$.uffds[0].totalFaults")).isZero();
        }
    }

    @Test
    void sysctl() {
        Run all = cli("sysctl");
        assertThat(all.code()).isZero();
        assertThat(all.out()).contains("vm.unprivileged_userfaultfd = ").contains("vm.nr_hugepages = ");
        Run set = cli("sysctl", "vm.nr_hugepages=2");
        assertThat(set.code()).isZero();
        assertThat(set.out().strip()).isEqualTo("vm.nr_hugepages = 2");
        Run get = cli("sysctl", "--json", "vm/nr_hugepages");
        assertThat((String) JsonPath.read(get.out(), "$['vm.nr_hugepages']")).isEqualTo("2");
        assertThat(cli("sysctl", "vm.nr_hugepages=0").code()).isZero();
        Run unknown = cli("sysctl", "vm.nope");
        assertThat(unknown.code()).isEqualTo(ExitCodes.NOT_FOUND);
        assertThat(unknown.err()).contains("ENOENT");
        assertThat(cli("sysctl", "vm.unprivileged_userfaultfd=7").code()).isEqualTo(ExitCodes.INVALID);
    }

    @Test
    void meminfo() {
        Run r = cli("meminfo");
        assertThat(r.code()).isZero();
        assertThat(r.out().lines().findFirst()).get().asString().matches("MemTotal: +\\d+ kB");
        assertThat(r.out()).containsPattern("(?m)^HugePages_Total: +\\d+$");
        Number total = JsonPath.read(cli("meminfo", "--json").out(), "$.MemTotal");
        assertThat(total.longValue()).isPositive();
    }

    @Test
    void backend() {
        Run r = cli("backend");
        assertThat(r.code()).isZero();
        assertThat(r.out()).contains("backend:    emulated").contains("available:  yes")
                .contains("WP_HUGETLBFS_SHMEM").contains(" COPY ZEROPAGE ");
        Run j = cli("backend", "--json");
        assertThat((String) JsonPath.read(j.out(), "$.name")).isEqualTo("emulated");
        List<String> features = JsonPath.read(j.out(), "$.featureNames");
        assertThat(features).contains("MISSING_SHMEM", "THREAD_ID");
    }

    @Test
    void watchPrintsMessagesAndWakesUnresolvedFaultsOnExit() throws Exception {
        CompletableFuture<Run> watch = CompletableFuture.supplyAsync(() -> cli("watch",
                Integer.toString(proc.pid()), Integer.toString(uffd.fd()), "--count", "1", "--timeout", "20"));
        // the fault is delivered to whoever holds the stream; retry the access until watch has attached
        CompletableFuture<io.uffdemu.client.AccessResult> write =
                proc.async().write(shared + 16, "y".getBytes());
        Run r = watch.get(30, TimeUnit.SECONDS);
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).containsPattern("PAGEFAULT 0x" + Long.toHexString(shared) + "\\w* WRITE\\|WP");
        // watch left the fault unresolved and woke it on exit: the thread re-faults, a real handler serves it
        // right after a Handle stream ends the server may still refuse a new one for a moment (FAILED_PRECONDITION,
        // see server e2e ReattachRaceIT): retry the attach
        for (int attempt = 0; ; attempt++) {
            try (var loop = uffd.handle(ctx -> ctx.writeUnprotect(), io.uffdemu.client.HandlerOptions.DEFAULT)) {
                if (loop.awaitTermination(java.time.Duration.ofMillis(100)) && attempt < 20) {
                    continue;
                }
                assertThat(write.get(10, TimeUnit.SECONDS).ok()).isTrue();
                break;
            }
        }
        Thread.sleep(200); // let the server release the uffd before the next watch attaches

        CompletableFuture<Run> json = CompletableFuture.supplyAsync(() -> cli("watch", "--json", "--zero",
                Integer.toString(proc.pid()), Integer.toString(uffd.fd()), "--count", "1", "--timeout", "20"));
        io.uffdemu.client.AccessResult read = proc.read(anon + PAGE, 8);
        assertThat(read.ok()).isTrue();
        assertThat(read.data()).containsOnly(0);
        Run jr = json.get(30, TimeUnit.SECONDS);
        assertThat(jr.code()).isZero();
        assertThat((String) JsonPath.read(jr.out().strip(), "$.event")).isEqualTo("PAGEFAULT");
        assertThat((String) JsonPath.read(jr.out().strip(), "$.address"))
                .isEqualTo("0x" + Long.toHexString(anon + PAGE));
    }

    @Test
    void watchOfAFdThatIsNotAUffdFails() {
        Run r = cli("watch", Integer.toString(proc.pid()), Integer.toString(memfd.fd()), "--timeout", "10");
        assertThat(r.code()).isEqualTo(ExitCodes.INVALID);
        assertThat(r.err()).contains("ENOTTY");
    }

    @Test
    void snapshotThenRestoreReadsEveryPageBack(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) {
        Process src = client.createProcess("snap-src");
        long a = src.mmap(MmapOptions.anonymous(8 * PAGE));
        for (int i = 0; i < 8; i += 2) {
            src.write(a + (long) i * PAGE, ("page-" + i).getBytes());
        }
        java.nio.file.Path dir = tmp.resolve("snap");
        Run snap = cli("--json", "snapshot", Integer.toString(src.pid()), dir.toString(), "--verify");
        assertThat(snap.code()).as(snap.err()).isZero();
        assertThat((Integer) JsonPath.read(snap.out().strip(), "$.pages")).isEqualTo(8);
        assertThat(dir.resolve("manifest.json")).exists();

        Run restore = cli("--json", "restore", dir.toString());
        assertThat(restore.code()).as(restore.err()).isZero();
        int pid = JsonPath.read(restore.out().strip(), "$.pid");
        assertThat(pid).isNotEqualTo(src.pid());
        Process restored = client.process(pid);
        for (int i = 0; i < 8; i++) {
            byte[] got = restored.read(a + (long) i * PAGE, 6).data();
            assertThat(new String(got)).isEqualTo(i % 2 == 0 ? ("page-" + i).substring(0, 6) : "\0\0\0\0\0\0");
        }
        src.exit();
        restored.exit();
    }

    @Test
    void benchRunsALoadTestWithTheIntegrityOracle(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) {
        java.nio.file.Path html = tmp.resolve("report.html");
        Run r = cli("--json", "bench", "--threads", "4", "--pages", "32", "--ops", "40", "--html", html.toString());
        assertThat(r.code()).as(r.err()).isZero();
        assertThat((Boolean) JsonPath.read(r.out().strip(), "$.ok")).isTrue();
        assertThat(html).content().contains("<svg");
        Run table = cli("bench", "--threads", "2", "--pages", "16", "--ops", "20", "--mode", "WP");
        assertThat(table.code()).as(table.err()).isZero();
        assertThat(table.out()).isNotBlank();
    }

    @Test
    void soakRunsRoundsWithHandlerRestarts() {
        Run r = cli("--json", "soak", "--duration", "3s", "--round", "1s", "--restart-every", "400ms", "--threads",
                "4", "--pages", "32");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat((Boolean) JsonPath.read(r.out().strip(), "$.ok")).isTrue();
        assertThat((Integer) JsonPath.read(r.out().strip(), "$.violations")).isZero();
        assertThat((Integer) JsonPath.read(r.out().strip(), "$.rounds")).isGreaterThanOrEqualTo(2);
        assertThat((Integer) JsonPath.read(r.out().strip(), "$.restarts")).isPositive();
        Run bad = cli("soak", "--duration", "forever");
        assertThat(bad.code()).isEqualTo(1);
        assertThat(bad.err()).contains("not a duration");
    }

    /** Like {@link #cli}, as if stderr were a terminal (what Main decides from /proc/self/fd/2). */
    Run cliOnTerminal(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Cli.run(args, Map.of("UFFDEMU_SERVER", "127.0.0.1:" + port), new PrintWriter(out, true),
                new PrintWriter(err, true), true);
        return new Run(code, out.toString(), err.toString());
    }

    static final java.util.regex.Pattern BAR = java.util.regex.Pattern.compile("\\r\\w[\\w ]* \\[[# ]+\\] +\\d+% \\d+/\\d+");

    @Test
    void progressBarsGoToStderrOnATerminalAndNeverPolluteStdoutOrJson(
            @org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) {
        Process src = client.createProcess("progress-src");
        long a = src.mmap(MmapOptions.anonymous(16 * PAGE));
        src.write(a, "x".getBytes());

        // a terminal: the bar is drawn on stderr and reaches the total (the recipe's progress callback fired)
        Run snap = cliOnTerminal("snapshot", Integer.toString(src.pid()), tmp.resolve("s1").toString());
        assertThat(snap.code()).as(snap.err()).isZero();
        assertThat(snap.err()).containsPattern(BAR).contains("snapshot pages [").contains("100% 16/16");
        assertThat(snap.out()).doesNotContain("\r").doesNotContain("[#").isNotBlank();

        Run restore = cliOnTerminal("restore", tmp.resolve("s1").toString());
        assertThat(restore.code()).as(restore.err()).isZero();
        assertThat(restore.err()).contains("restore prefetch [").contains("100% 16/16");
        assertThat(restore.out()).doesNotContain("\r");

        Run bench = cliOnTerminal("bench", "--threads", "2", "--pages", "8", "--ops", "10");
        assertThat(bench.code()).as(bench.err()).isZero();
        assertThat(bench.err()).contains("bench accesses [").contains("100% 20/20");
        assertThat(bench.out()).doesNotContain("\r");

        // --json: never a bar, even when forced, and stdout is exactly one JSON document
        Run json = cliOnTerminal("--json", "--progress", "always", "snapshot", Integer.toString(src.pid()),
                tmp.resolve("s2").toString());
        assertThat(json.code()).as(json.err()).isZero();
        assertThat(json.err()).doesNotContain("\r").doesNotContain("[#");
        assertThat((Integer) JsonPath.read(json.out().strip(), "$.pages")).isEqualTo(16);
        assertThat(json.out().strip()).startsWith("{").endsWith("}");

        // not a terminal (pipes, CI): nothing by default, a bar when asked for
        Run piped = cli("bench", "--threads", "1", "--pages", "4", "--ops", "5");
        assertThat(piped.err()).doesNotContain("\r");
        Run forced = cliWithEnv(Map.of("UFFDEMU_SERVER", "127.0.0.1:" + port, "UFFDEMU_PROGRESS", "always"),
                "bench", "--threads", "1", "--pages", "4", "--ops", "5");
        assertThat(forced.err()).contains("100% 5/5");
        Run never = cliOnTerminal("--progress", "never", "bench", "--threads", "1", "--pages", "4", "--ops", "5");
        assertThat(never.err()).doesNotContain("\r");
        assertThat(cli("--progress", "sometimes", "ps").code()).isEqualTo(ExitCodes.USAGE);
        src.exit();
    }

    @Test
    void serverFlagTokenAndExitCodes() {
        Run down = cliWithEnv(Map.of(), "--server", "127.0.0.1:1", "ps");
        assertThat(down.code()).isEqualTo(ExitCodes.UNAVAILABLE);
        Run flagWins = cliWithEnv(Map.of("UFFDEMU_SERVER", "127.0.0.1:1", "UFFDEMU_TOKEN", "t0ken"),
                "ps", "--server", "127.0.0.1:" + port);
        assertThat(flagWins.code()).as(flagWins.err()).isZero();
        assertThat(cli("maps", "999999").code()).isEqualTo(ExitCodes.NOT_FOUND);
        assertThat(cli("maps").code()).isEqualTo(ExitCodes.USAGE);
        assertThat(cli("nosuchcommand").code()).isEqualTo(ExitCodes.USAGE);
        assertThat(cli().code()).isEqualTo(ExitCodes.USAGE);
    }
}
