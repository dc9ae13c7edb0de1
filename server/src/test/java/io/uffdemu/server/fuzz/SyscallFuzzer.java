package io.uffdemu.server.fuzz;

import io.uffdemu.server.backend.emulated.EmulatedBackend;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.Kernel;
import io.uffdemu.server.mm.KernelProfile;
import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.Pagemap;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Deterministic random syscall/ioctl sequences against the emulated backend with the invariant checker on.
 * Determinism despite blocking calls: accesses use an already-expired deadline (a userfault is queued and
 * withdrawn at once: ETIMEDOUT), and an operation that blocks on an unread uffd event is completed by the
 * fuzzer reading every uffd of every process, in a fixed order, until the operation returns.
 *
 * <p>An operation may fail with any errno ({@link LinuxException}); anything else (an invariant violation,
 * a runtime exception) fails the sequence, reported with its seed and the steps that led there.
 */
final class SyscallFuzzer {
    /** Which memory the fuzzer maps and creates; ALL mixes anon, shared anon, memfd (shmem or hugetlb), hugetlb. */
    enum Focus { ALL, ANON, SHMEM, HUGETLB }

    /** One step of a sequence: the operation (0..{@value #OPS}-1) and the seed of its parameters. */
    record Step(int op, long paramSeed) {
        @Override
        public String toString() {
            return op + ":" + paramSeed;
        }
    }

    static final int OPS = 30;

    /** Test of the test: when set, an operation it accepts throws a non-errno exception (a bug to be found). */
    java.util.function.IntPredicate sabotage;

    private SplittableRandom rnd;
    private final long seed;
    private final Focus focus;
    private final EmulatedBackend b;
    private final List<String> log = new ArrayList<>();
    private final List<Integer> pids = new ArrayList<>();
    private final List<long[]> maps = new ArrayList<>(); // {pid, addr, len}
    private final List<int[]> memfds = new ArrayList<>(); // {pid, fd}
    private final List<int[]> uffds = new ArrayList<>(); // {pid, fd}
    /** Successful operations by name (first word of the step description), for the coverage check. */
    final java.util.Map<String, Integer> succeeded = new java.util.TreeMap<>();

    SyscallFuzzer(long seed) {
        this(seed, Focus.ALL, KernelProfile.DEFAULT);
    }

    SyscallFuzzer(long seed, Focus focus) {
        this(seed, focus, KernelProfile.DEFAULT);
    }

    /** A fuzzer against an emulated kernel that imitates {@code profile}. */
    SyscallFuzzer(long seed, KernelProfile profile) {
        this(seed, Focus.ALL, profile);
    }

    SyscallFuzzer(long seed, Focus focus, KernelProfile profile) {
        this.seed = seed;
        this.focus = focus;
        this.rnd = new SplittableRandom(seed);
        this.b = new EmulatedBackend(new Kernel.Config(64L << 20, 16L << 20, 8, 0, true, profile));
        thpEverywhere((seed & 3) == 0);
    }

    /** A quarter of the runs with THP everywhere, so faults, zaps, wp, mremap, fork... meet huge PMDs too. */
    private SplittableRandom thpRnd = new SplittableRandom(0x7417);

    private void thpEverywhere(boolean on) {
        thpRnd = new SplittableRandom(seed ^ 0x7417);
        b.setSysctl(Kernel.THP_ENABLED, on ? "always" : "madvise");
        b.setSysctl(Kernel.THP_SHMEM_ENABLED, on ? "always" : "never");
    }

    /**
     * Runs a given sequence (the property tests' form: each step's parameters come from its own seed, so a
     * shrinker can drop steps and simplify each one independently); throws AssertionError as {@link #run(int)}.
     */
    void run(List<Step> steps) {
        thpEverywhere(!steps.isEmpty() && (steps.get(0).paramSeed() & 3) == 0);
        pids.add(b.createProcess("fuzz", 0, true, "fuzz").pid());
        for (int i = 0; i < steps.size(); i++) {
            rnd = new SplittableRandom(steps.get(i).paramSeed());
            one(i, steps.get(i).op());
        }
    }

    List<String> log() {
        return log;
    }

    /** Runs {@code steps} random operations; throws AssertionError with the log on an unexpected failure. */
    void run(int steps) {
        pids.add(b.createProcess("fuzz", 0, true, "fuzz").pid());
        for (int i = 0; i < steps; i++) {
            one(i, rnd.nextInt(OPS));
        }
    }

    private void one(int i, int op) {
        String desc = "op" + op;
        try {
            if (sabotage != null && sabotage.test(op)) {
                throw new IllegalStateException("sabotaged op " + op);
            }
            desc = step(op);
            log.add(desc + " ok");
            succeeded.merge(desc.split(" ")[0], 1, Integer::sum);
        } catch (LinuxException e) {
            log.add(desc + " -> " + e.errno() + " (" + e.call() + ")");
        } catch (Throwable t) {
            log.add(desc + " -> " + t);
            throw new AssertionError("seed " + seed + " (" + focus + ") failed at step " + i + ":\n  "
                    + String.join("\n  ", log), t);
        }
    }

    private int pid() {
        return pids.get(rnd.nextInt(pids.size()));
    }

    private long pages(int max) {
        return (1 + rnd.nextInt(max)) * Linux.PAGE_SIZE;
    }

    private long addrIn(int pid) {
        List<long[]> mine = maps.stream().filter(m -> m[0] == pid).toList();
        if (mine.isEmpty() || rnd.nextInt(20) == 0) {
            return rnd.nextInt(4) == 0 ? rnd.nextLong() : 0x10000L + rnd.nextInt(1 << 20) * Linux.PAGE_SIZE;
        }
        long[] m = mine.get(rnd.nextInt(mine.size()));
        long off = rnd.nextLong(Math.max(1, m[2] / Linux.PAGE_SIZE)) * Linux.PAGE_SIZE;
        return m[1] + off + (rnd.nextInt(30) == 0 ? 1 : 0);
    }

    private int[] uffd() {
        return uffds.isEmpty() ? new int[] {pid(), rnd.nextInt(8)} : uffds.get(rnd.nextInt(uffds.size()));
    }

    private final List<long[]> registered = new ArrayList<>(); // {pid, fd, start, len}

    /** A target for a resolving ioctl: mostly a page inside a registered range, with its uffd. */
    private long[] target() {
        if (!registered.isEmpty() && rnd.nextInt(8) != 0) {
            long[] r = registered.get(rnd.nextInt(registered.size()));
            long page = r[2] + rnd.nextLong(Math.max(1, r[3] / Linux.PAGE_SIZE)) * Linux.PAGE_SIZE;
            if (rnd.nextInt(4) == 0) {
                page &= ~(Linux.PMD_SIZE - 1);
            }
            return new long[] {r[0], r[1], page};
        }
        int[] u = uffd();
        return new long[] {u[0], u[1], addrIn(u[0])};
    }

    private long ioctlLen() {
        return rnd.nextInt(6) == 0 ? Linux.PMD_SIZE : pages(2);
    }

    private String step(int op) throws Exception {
        final int pid = pid();
        switch (op) {
            case 0, 1 -> {
                int kind = switch (focus) {
                    case ALL -> rnd.nextInt(4);
                    case ANON -> 0;
                    case SHMEM -> 1 + rnd.nextInt(2);
                    case HUGETLB -> rnd.nextBoolean() ? 2 : 3;
                };
                long small = pages(kind == 3 ? 1 : 16) * (kind == 3 ? 512 : 1);
                // now and then room for a 2 MiB-aligned block: a THP when the policy allows (drawn from its own
                // generator so that the other steps' parameters stay what they were)
                long len = kind <= 1 && thpRnd.nextInt(6) == 0 ? 2 * Linux.PMD_SIZE : small;
                int flags;
                int fd = -1;
                int owner = pid;
                if (kind == 0) {
                    flags = Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS;
                } else if (kind == 1) {
                    flags = Linux.MAP_SHARED | Linux.MAP_ANONYMOUS;
                } else if (kind == 2 && !memfds.isEmpty()) {
                    int[] m = memfds.get(rnd.nextInt(memfds.size()));
                    owner = m[0];
                    fd = m[1];
                    flags = rnd.nextBoolean() ? Linux.MAP_SHARED : Linux.MAP_PRIVATE;
                } else if (focus == Focus.SHMEM) {
                    flags = Linux.MAP_SHARED | Linux.MAP_ANONYMOUS; // no memfd yet: shared anonymous is shmem too
                } else {
                    flags = Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS | Linux.MAP_HUGETLB;
                }
                if (rnd.nextInt(10) == 0) {
                    flags |= Linux.MAP_POPULATE;
                }
                int p = owner;
                int f = fd;
                int fl = flags;
                long a = blocking(() -> b.mmap(p, 0, len, 3, fl, f, 0));
                maps.add(new long[] {p, a, len});
                return "mmap kind " + kind + " pid " + p + " -> " + Long.toHexString(a);
            }
            case 2 -> {
                long a = addrIn(pid);
                long len = pages(8);
                blocking(() -> {
                    b.munmap(pid, a, len);
                    return null;
                });
                return "munmap " + Long.toHexString(a);
            }
            case 3 -> {
                b.mprotect(pid, addrIn(pid), pages(8), rnd.nextInt(4));
                return "mprotect";
            }
            case 4 -> {
                long a = addrIn(pid);
                long len = pages(8);
                int fl = rnd.nextInt(4) == 0 ? Linux.MREMAP_MAYMOVE : Linux.MREMAP_MAYMOVE | rnd.nextInt(2);
                long nlen = pages(16);
                long r = blocking(() -> b.mremap(pid, a, len, nlen, fl, 0));
                maps.add(new long[] {pid, r, len});
                return "mremap -> " + Long.toHexString(r);
            }
            case 5, 6 -> {
                int[] advice = {Linux.MADV_DONTNEED, Linux.MADV_FREE, Linux.MADV_REMOVE, Linux.MADV_PAGEOUT,
                        Linux.MADV_COLD, Linux.MADV_POPULATE_READ, Linux.MADV_POPULATE_WRITE, Linux.MADV_GUARD_INSTALL,
                        Linux.MADV_GUARD_REMOVE, Linux.MADV_HUGEPAGE, Linux.MADV_COLLAPSE, 77};
                int adv = advice[rnd.nextInt(advice.length)];
                long a = addrIn(pid);
                long len = pages(8);
                blocking(() -> {
                    b.madvise(pid, a, len, adv);
                    return null;
                });
                return "madvise " + adv;
            }
            case 7 -> {
                int flags = switch (focus) {
                    case ALL, ANON -> rnd.nextInt(5) == 0 ? Linux.MFD_HUGETLB : 0;
                    case SHMEM -> 0;
                    case HUGETLB -> Linux.MFD_HUGETLB;
                };
                int fd = b.memfdCreate(pid, "f", flags);
                memfds.add(new int[] {pid, fd});
                b.ftruncate(pid, fd, (flags != 0 ? 2 : 1 + rnd.nextInt(16)) * (flags != 0 ? Linux.PMD_SIZE : Linux.PAGE_SIZE));
                return "memfd " + fd;
            }
            case 8 -> {
                if (memfds.isEmpty()) {
                    return "noop";
                }
                int[] m = memfds.get(rnd.nextInt(memfds.size()));
                if (rnd.nextBoolean()) {
                    b.ftruncate(m[0], m[1], rnd.nextInt(20) * Linux.PAGE_SIZE);
                } else {
                    b.fallocate(m[0], m[1], rnd.nextBoolean() ? 3 : 0, rnd.nextInt(8) * Linux.PAGE_SIZE, pages(4));
                }
                return "truncate/fallocate";
            }
            case 9 -> {
                if (pids.size() > 4) {
                    return "noop";
                }
                int child = blocking(() -> b.fork(pid)).pid();
                pids.add(child);
                for (long[] m : new ArrayList<>(maps)) {
                    if (m[0] == pid) {
                        maps.add(new long[] {child, m[1], m[2]});
                    }
                }
                return "fork " + pid + " -> " + child;
            }
            case 10 -> {
                if (pids.size() < 2) {
                    return "noop";
                }
                b.exit(pid);
                pids.remove((Integer) pid);
                return "exit " + pid;
            }
            case 11, 12 -> {
                int fd = b.userfaultfd(pid, Linux.O_NONBLOCK | (rnd.nextInt(4) == 0 ? Linux.UFFD_USER_MODE_ONLY : 0),
                        false);
                long feat = rnd.nextLong() & Linux.UFFD_API_FEATURES & ~Linux.UFFD_FEATURE_SIGBUS;
                if (rnd.nextInt(6) == 0) {
                    feat |= Linux.UFFD_FEATURE_SIGBUS;
                }
                b.uffdApi(pid, fd, Linux.UFFD_API, feat);
                uffds.add(new int[] {pid, fd});
                return "uffd " + fd + " features " + Long.toHexString(feat);
            }
            case 13, 14 -> {
                int[] u = uffd();
                List<long[]> mine = maps.stream().filter(m -> m[0] == u[0]).toList();
                long start;
                long len;
                if (!mine.isEmpty() && rnd.nextInt(6) != 0) {
                    long[] m = mine.get(rnd.nextInt(mine.size()));
                    start = m[1];
                    len = m[2];
                } else {
                    start = addrIn(u[0]);
                    len = pages(16);
                }
                int[] modes = {1, 2, 3, 3, 4, 5, 6, 7};
                long mode = modes[rnd.nextInt(modes.length)];
                b.uffdRegister(u[0], u[1], start, len, mode);
                registered.add(new long[] {u[0], u[1], start, len});
                return "register";
            }
            case 15 -> {
                int[] u = uffd();
                b.uffdUnregister(u[0], u[1], addrIn(u[0]), pages(16));
                return "unregister";
            }
            case 16 -> {
                long[] t = target();
                byte[] data = new byte[(int) ioctlLen()];
                rnd.nextBytes(data);
                b.uffdCopy((int) t[0], (int) t[1], t[2], data, rnd.nextInt(4));
                return "copy";
            }
            case 17 -> {
                long[] t = target();
                b.uffdZeropage((int) t[0], (int) t[1], t[2], ioctlLen(), rnd.nextInt(2));
                return "zeropage";
            }
            case 18, 19 -> {
                long[] t = target();
                b.uffdWriteprotect((int) t[0], (int) t[1], t[2], ioctlLen() * (1 + rnd.nextInt(4)), rnd.nextInt(3));
                return "writeprotect";
            }
            case 20 -> {
                long[] t = target();
                b.uffdContinue((int) t[0], (int) t[1], t[2], ioctlLen(), rnd.nextInt(3));
                return "continue";
            }
            case 21 -> {
                long[] t = target();
                b.uffdPoison((int) t[0], (int) t[1], t[2], ioctlLen(), rnd.nextInt(2));
                return "poison";
            }
            case 22 -> {
                long[] t = target();
                long src = addrIn((int) t[0]) & ~(Linux.PAGE_SIZE - 1);
                b.uffdMove((int) t[0], (int) t[1], t[2], src, pages(2), rnd.nextInt(4));
                return "move";
            }
            case 23 -> {
                long[] t = target();
                b.uffdWake((int) t[0], (int) t[1], t[2], pages(4));
                return "wake";
            }
            case 24, 25, 26 -> {
                boolean write = rnd.nextBoolean();
                AccessMode[] modes = AccessMode.values();
                AccessMode mode = modes[rnd.nextInt(modes.length)];
                byte[] data = write ? new byte[1 + rnd.nextInt(6000)] : null;
                var r = b.access(pid, addrIn(pid), write ? data.length : 1 + rnd.nextInt(6000), write, data, mode,
                        System.nanoTime());
                return "access " + (write ? "W " : "R ") + mode + " sig " + r.signal() + " errno " + r.errno();
            }
            case 27 -> {
                b.readPagemap(pid, addrIn(pid) & ~(Linux.PAGE_SIZE - 1), rnd.nextInt(64));
                long a = addrIn(pid) & ~(Linux.PAGE_SIZE - 1);
                b.pagemapScan(pid, new Pagemap.ScanArg(a, a + pages(64), rnd.nextInt(4), rnd.nextLong() & 0x1ff,
                        rnd.nextLong() & 0x1ff & -rnd.nextInt(2), rnd.nextInt(3) == 0 ? 0x1ff : 0, 0x1ff,
                        rnd.nextInt(8), rnd.nextInt(4)));
                return "pagemap";
            }
            case 28 -> {
                drainAll();
                return "read all uffds";
            }
            default -> {
                if (!uffds.isEmpty() && rnd.nextInt(4) == 0) {
                    int[] u = uffds.remove(rnd.nextInt(uffds.size()));
                    b.close(u[0], u[1]);
                    return "close uffd " + u[1];
                }
                return "noop";
            }
        }
    }

    /** A call that may block on an unread uffd event: run it aside and read every uffd until it returns. */
    private <T> T blocking(java.util.concurrent.Callable<T> call) throws Exception {
        CompletableFuture<T> f = new CompletableFuture<>();
        Thread t = Thread.ofVirtual().start(() -> {
            try {
                f.complete(call.call());
            } catch (Throwable e) {
                f.completeExceptionally(e);
            }
        });
        for (int i = 0; ; i++) {
            try {
                return f.get(i == 0 ? 2 : 5, TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                drainAll();
                if (i == 400) {
                    // still blocked on a fault nobody can resolve: kill the thread, as a fatal signal would
                    t.interrupt();
                }
                if (i > 2000) {
                    throw new AssertionError("operation still blocked after being interrupted");
                }
            } catch (ExecutionException e) {
                if (e.getCause() instanceof Exception ex) {
                    throw ex;
                }
                throw (Error) e.getCause();
            }
        }
    }

    /** Resolves a fault the way a simple handler would; failures (EEXIST, EAGAIN...) are fine. */
    private void resolve(int pid, int fd, io.uffdemu.server.mm.UffdMsg.Pagefault pf) {
        long page = pf.address() & ~(Linux.PAGE_SIZE - 1);
        try {
            if ((pf.flags() & Linux.UFFD_PAGEFAULT_FLAG_WP) != 0) {
                b.uffdWriteprotect(pid, fd, page, Linux.PAGE_SIZE, 0);
            } else if ((pf.flags() & Linux.UFFD_PAGEFAULT_FLAG_MINOR) != 0) {
                b.uffdContinue(pid, fd, page, Linux.PAGE_SIZE, 0);
            } else {
                b.uffdZeropage(pid, fd, page, Linux.PAGE_SIZE, 0);
            }
        } catch (LinuxException e) {
            try {
                long huge = pf.address() & ~(Linux.PMD_SIZE - 1);
                b.uffdCopy(pid, fd, huge, new byte[(int) Linux.PMD_SIZE], 0);
            } catch (LinuxException e2) {
                try {
                    b.uffdWake(pid, fd, page, Linux.PAGE_SIZE);
                } catch (LinuxException ignored) {
                    // the uffd is gone
                }
            }
        }
    }

    /** Reads every open uffd of every live process (installs FORK fds), non-blocking. */
    private void drainAll() throws InterruptedException {
        for (var p : b.processes()) {
            for (int fd : p.fds()) {
                try {
                    for (var m : b.uffdRead(p.pid(), fd, 64, 0)) {
                        if (m instanceof io.uffdemu.server.mm.UffdMsg.Fork fk) {
                            uffds.add(new int[] {p.pid(), fk.ufd()});
                        } else if (m instanceof io.uffdemu.server.mm.UffdMsg.Pagefault pf) {
                            resolve(p.pid(), fd, pf);
                        }
                    }
                } catch (LinuxException e) {
                    // not a uffd (ENOTTY) or not initialized (EINVAL)
                }
            }
        }
    }
}
