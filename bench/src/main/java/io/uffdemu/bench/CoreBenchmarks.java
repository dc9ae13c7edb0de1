package io.uffdemu.bench;

import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.Kernel;
import io.uffdemu.server.mm.Linux;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * JMH microbenchmarks of the core's hot paths (no thread hand-off): the cost the emulator adds per fault.
 * Run: {@code java -cp bench/target/uffdemu-bench.jar org.openjdk.jmh.Main CoreBenchmarks}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class CoreBenchmarks {
    Kernel k;
    int pid;
    int fd;
    long anon;
    long reg;
    byte[] page = new byte[(int) Linux.PAGE_SIZE];
    byte[] one = {1};

    @Setup(Level.Trial)
    public void setup() {
        k = new Kernel(new Kernel.Config(1L << 30, 0, 0, 0, false));
        pid = k.createProcess("jmh", 0, true, "jmh").pid();
        anon = k.vm.mmap(pid, 0, 1 << 20, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        reg = k.vm.mmap(pid, 0, 1 << 20, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        fd = k.uffd.userfaultfd(pid, Linux.O_NONBLOCK, false);
        k.uffd.api(pid, fd, Linux.UFFD_API, 0);
        k.uffd.register(pid, fd, reg, 1 << 20, Linux.UFFDIO_REGISTER_MODE_MISSING | Linux.UFFDIO_REGISTER_MODE_WP);
        java.util.Arrays.fill(page, (byte) 3);
        k.uffd.copy(pid, fd, reg + Linux.PAGE_SIZE * 8, page, 0);
    }

    /** An anonymous write fault (do_anonymous_page) and its zap: no uffd involved. */
    @Benchmark
    public void anonWriteFaultAndZap() throws InterruptedException {
        k.faults.access(pid, anon, 1, true, one, AccessMode.USER, Long.MAX_VALUE);
        k.vm.madvise(pid, anon, Linux.PAGE_SIZE, Linux.MADV_DONTNEED);
    }

    /** UFFDIO_COPY of one page into a registered hole, then MADV_DONTNEED to make it a hole again. */
    @Benchmark
    public long uffdioCopyAndZap() {
        long n = k.uffd.copy(pid, fd, reg, page, 0);
        k.vm.madvise(pid, reg, Linux.PAGE_SIZE, Linux.MADV_DONTNEED);
        return n;
    }

    /** UFFDIO_WRITEPROTECT set then clear on one present page. */
    @Benchmark
    public void writeprotectToggle() {
        k.uffd.writeprotect(pid, fd, reg + Linux.PAGE_SIZE * 8, Linux.PAGE_SIZE, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
        k.uffd.writeprotect(pid, fd, reg + Linux.PAGE_SIZE * 8, Linux.PAGE_SIZE, 0);
    }

    /** One pagemap entry. */
    @Benchmark
    public long[] pagemapRead() {
        return k.pagemap.read(pid, anon, 1);
    }
}
