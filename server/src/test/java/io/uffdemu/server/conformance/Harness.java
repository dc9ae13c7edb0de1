package io.uffdemu.server.conformance;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.AccessResult;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.UffdMsg;
import io.uffdemu.server.mm.Userfaultfd;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.zip.CRC32;

/**
 * Runs one scenario against one {@link MemoryBackend} and records its canonical trace: each call's result or
 * errno, each uffd message (event, flags, address relative to a named mapping), data read back as a short
 * hash, and pagemap flag bits (P present, S swap, W uffd-wp, F file, X exclusive; PFN and swap offset masked).
 * Absolute addresses never enter the trace, so traces of two backends compare line by line.
 *
 * <p>{@code expect} checks encode the reference's [O] outcome; a failed check is collected (not thrown) so the
 * trace stays complete.
 */
public final class Harness implements AutoCloseable {
    /** A backend said ENOSYS: the scenario cannot run there. */
    public static final class NotSupported extends RuntimeException {
        NotSupported(String what) {
            super(what, null, false, false);
        }
    }

    static final long OP_TIMEOUT_MS = 3000;
    static final long QUIET_MS = 150;

    final MemoryBackend b;
    final int pid;
    final MemType type;
    final List<String> trace = new ArrayList<>();
    final List<String> mismatches = new ArrayList<>();
    private final Map<String, long[]> names = new LinkedHashMap<>();
    private final List<Op> ops = new ArrayList<>();
    private char nextName = 'A';
    /** memfd of the last file mapping made by {@link #map}. */
    int memfd = -1;

    Harness(MemoryBackend b, MemType type) {
        this.b = b;
        this.type = type == null ? MemType.ANON : type;
        this.pid = b.createProcess("conformance", 0, true, "conformance").pid();
    }

    long ps() {
        return type.pageSize();
    }

    // ------------------------------------------------------------------ trace

    void log(String line) {
        trace.add(line);
    }

    /** Records {@code label: outcome} and returns the outcome. */
    String call(String label, Callable<?> c) {
        String out = outcome(c);
        log(label + ": " + out);
        return out;
    }

    /** Like {@link #call} and checks the outcome. */
    String call(String label, String expected, Callable<?> c) {
        String out = call(label, c);
        expect(label, out, expected);
        return out;
    }

    void expect(String what, String actual, String expected) {
        if (!expected.equals(actual)) {
            mismatches.add(what + ": expected <" + expected + "> but was <" + actual + ">");
        }
    }

    String outcome(Callable<?> c) {
        try {
            return format(c.call());
        } catch (LinuxException e) {
            if (e.errno() == Errno.ENOSYS) {
                throw new NotSupported(e.getMessage());
            }
            return e.errno().name() + (e.bytesDone() != 0 ? " done=0x" + Long.toHexString(e.bytesDone()) : "");
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    String format(Object o) {
        if (o == null) {
            return "OK";
        }
        if (o instanceof Long l) {
            return "0x" + Long.toHexString(l);
        }
        if (o instanceof Integer) {
            return "OK";
        }
        if (o instanceof Userfaultfd.ApiResult a) {
            return "features=0x" + Long.toHexString(a.features()) + " ioctls=0x" + Long.toHexString(a.ioctls());
        }
        if (o instanceof AccessResult r) {
            if (r.signal() != 0) {
                return (r.signal() == Linux.SIGBUS ? "SIGBUS" : r.signal() == Linux.SIGSEGV ? "SIGSEGV"
                        : "SIG" + r.signal()) + "/" + r.siCode() + " at " + rel(r.faultAddr());
            }
            if (r.errno() != null) {
                return r.errno().name();
            }
            return r.data() == null ? "ok" : "ok " + hash(r.data());
        }
        if (o instanceof String s) {
            return s;
        }
        return o.toString();
    }

    static String hash(byte[] data) {
        boolean same = true;
        for (byte x : data) {
            same &= x == data[0];
        }
        if (data.length > 0 && same) {
            return String.format("%02x*%d", data[0] & 0xff, data.length);
        }
        CRC32 crc = new CRC32();
        crc.update(data);
        return String.format("crc=%08x/%d", crc.getValue(), data.length);
    }

    /** {@code A+0x1000} for an address inside (or at the end of) a named mapping. */
    String rel(long addr) {
        String best = null;
        long bestBase = 0;
        for (Map.Entry<String, long[]> e : names.entrySet()) {
            long base = e.getValue()[0];
            long len = e.getValue()[1];
            if (addr >= base && addr <= base + len && (best == null || base >= bestBase)) {
                best = e.getKey();
                bestBase = base;
            }
        }
        return best == null ? "?" : best + "+0x" + Long.toHexString(addr - bestBase);
    }

    /** An exclusive end address, named after the mapping that holds the byte before it. */
    String relEnd(long end) {
        String r = rel(end - 1);
        if (r.equals("?")) {
            return r;
        }
        int plus = r.indexOf("+0x");
        return r.substring(0, plus) + "+0x" + Long.toHexString(Long.parseLong(r.substring(plus + 3), 16) + 1);
    }

    void name(String n, long base, long len) {
        names.put(n, new long[] {base, len});
    }

    String msg(UffdMsg m) {
        return switch (m) {
            case UffdMsg.Pagefault pf -> "PF flags=" + pf.flags() + " " + rel(pf.address());
            case UffdMsg.Remove r -> "REMOVE " + rel(r.start()) + ".." + relEnd(r.end());
            case UffdMsg.Unmap u -> "UNMAP " + rel(u.start()) + ".." + relEnd(u.end());
            case UffdMsg.Remap r -> "REMAP " + rel(r.from()) + "->" + rel(r.to()) + " len=0x"
                    + Long.toHexString(r.len());
            case UffdMsg.Fork f -> "FORK";
        };
    }

    // ------------------------------------------------------------------ memory

    /** Maps {@code n} pages (of the type's page size) of the scenario's memory type; names it A, B, ... */
    long map(int n) {
        return map(type, n);
    }

    long map(MemType t, int n) {
        long len = n * t.pageSize();
        long addr;
        if (t.anon()) {
            addr = b.mmap(pid, 0, len, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS,
                    -1, 0);
        } else {
            int fd = b.memfdCreate(pid, "conf", Linux.MFD_CLOEXEC | (t.hugetlb ? Linux.MFD_HUGETLB : 0));
            b.ftruncate(pid, fd, len);
            memfd = fd;
            addr = b.mmap(pid, 0, len, Linux.PROT_READ | Linux.PROT_WRITE,
                    t.shared ? Linux.MAP_SHARED : Linux.MAP_PRIVATE, fd, 0);
        }
        String n0 = String.valueOf(nextName++);
        name(n0, addr, len);
        return addr;
    }

    /** A second mapping of the last memfd (an alias), shared. */
    long alias(int n) {
        long len = n * ps();
        long addr = b.mmap(pid, 0, len, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED, memfd, 0);
        name(String.valueOf(nextName++), addr, len);
        return addr;
    }

    /** Writes {@code val} into the first byte of each of {@code n} pages from {@code addr}, waiting. */
    void populate(long addr, int n, int val) {
        for (int j = 0; j < n; j++) {
            int i = j;
            String r = outcome(() -> b.access(pid, addr + i * ps(), 1, true, new byte[] {(byte) (val + i)},
                    AccessMode.USER, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(OP_TIMEOUT_MS)));
            if (!"ok".equals(r)) {
                log("populate " + rel(addr + i * ps()) + ": " + r);
            }
        }
    }

    /** Pagemap letters of {@code n} pages (one sample per page of the type's size). */
    String pm(long addr, int n) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            long e = b.readPagemap(pid, addr + i * ps(), 1)[0];
            if (i > 0) {
                sb.append(' ');
            }
            sb.append((e & Linux.PM_PRESENT) != 0 ? 'P' : '-');
            sb.append((e & Linux.PM_SWAP) != 0 ? 'S' : '-');
            sb.append((e & Linux.PM_UFFD_WP) != 0 ? 'W' : '-');
            sb.append((e & Linux.PM_FILE) != 0 ? 'F' : '-');
            sb.append((e & Linux.PM_MMAP_EXCLUSIVE) != 0 ? 'X' : '-');
            if ((e & Linux.PM_GUARD_REGION) != 0) {
                sb.append('G');
            }
        }
        return sb.toString();
    }

    String pm(String label, long addr, int n) {
        String s = pm(addr, n);
        log("pm " + label + ": " + s);
        return s;
    }

    /** Logs the pagemap and checks the P/S/W/F letters (the exclusive letter is not checked). */
    void pmExpect(String label, long addr, int n, String expected) {
        String s = pm(label, addr, n);
        StringBuilder stripped = new StringBuilder();
        for (String one : s.split(" ")) {
            if (stripped.length() > 0) {
                stripped.append(' ');
            }
            stripped.append(one, 0, 4);
        }
        expect("pm " + label, stripped.toString(), expected);
    }

    /** Reads {@code len} bytes from addr (on a thread, bounded) and logs a hash. */
    String readData(String label, long addr, int len) {
        Op op = async("read " + label, () -> b.access(pid, addr, len, false, null, AccessMode.USER,
                System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(OP_TIMEOUT_MS)));
        String r = op.result();
        log("data " + label + ": " + r);
        return r;
    }

    /** Logs the VMAs overlapping [start, end): bounds relative to the named mappings, perms, uffd mode bits. */
    void maps(String label, long start, long end) {
        StringBuilder sb = new StringBuilder();
        for (var v : b.maps(pid)) {
            if (v.end() <= start || v.start() >= end) {
                continue;
            }
            if (sb.length() > 0) {
                sb.append(", ");
            }
            sb.append(rel(Math.max(v.start(), start))).append("..").append(relEnd(Math.min(v.end(), end))).append(' ')
                    .append(v.perms()).append(" uffd=").append(v.uffdFlags());
        }
        log("maps " + label + ": " + sb);
    }

    // ------------------------------------------------------------------ uffd

    int uffd(long features) {
        int fd = b.userfaultfd(pid, Linux.O_CLOEXEC | Linux.O_NONBLOCK, false);
        call("API(0x" + Long.toHexString(features) + ")", () -> b.uffdApi(pid, fd, Linux.UFFD_API, features));
        return fd;
    }

    String register(int u, long start, long len, long mode) {
        return call("REGISTER " + rel(start) + " len=0x" + Long.toHexString(len) + " mode=" + mode,
                () -> b.uffdRegister(pid, u, start, len, mode));
    }

    String wp(int u, long start, long len, boolean on) {
        return call((on ? "WP " : "UNWP ") + rel(start) + " len=0x" + Long.toHexString(len),
                () -> {
                    b.uffdWriteprotect(pid, u, start, len, on ? Linux.UFFDIO_WRITEPROTECT_MODE_WP : 0);
                    return null;
                });
    }

    byte[] fill(int val, long len) {
        byte[] d = new byte[(int) len];
        java.util.Arrays.fill(d, (byte) val);
        return d;
    }

    /** Reads messages until none arrive for {@link #QUIET_MS}; logs them. */
    List<UffdMsg> drain(int u) {
        List<UffdMsg> all = new ArrayList<>();
        while (true) {
            List<UffdMsg> got = readMsgs(u, QUIET_MS);
            if (got.isEmpty()) {
                break;
            }
            all.addAll(got);
        }
        log("msgs: " + (all.isEmpty() ? "none" : String.join(", ", all.stream().map(this::msg).toList())));
        return all;
    }

    List<UffdMsg> readMsgs(int u, long waitMs) {
        try {
            return b.uffdRead(pid, u, 16, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(waitMs));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeException(e);
        } catch (LinuxException e) {
            if (e.errno() == Errno.EAGAIN) {
                return List.of();
            }
            throw e;
        }
    }

    // ------------------------------------------------------------------ asynchronous operations

    /** An operation running on its own (virtual) thread: a faulting access, or a syscall that may block. */
    final class Op {
        final String label;
        final CompletableFuture<String> f = new CompletableFuture<>();

        Op(String label) {
            this.label = label;
        }

        boolean done() {
            return f.isDone();
        }

        /** The outcome, or "blocked" when still running after {@code ms}. */
        String result(long ms) {
            try {
                return f.get(ms, TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                return "blocked";
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return "interrupted";
            } catch (java.util.concurrent.ExecutionException e) {
                if (e.getCause() instanceof NotSupported ns) {
                    throw ns;
                }
                return "exception " + e.getCause();
            }
        }

        String result() {
            return result(OP_TIMEOUT_MS + 1000);
        }

        /** Logs {@code label: outcome-or-blocked} after a short settle time. */
        String state() {
            String r = result(QUIET_MS);
            log(label + ": " + r);
            return r;
        }

        String finish() {
            String r = result();
            log(label + ": " + r);
            return r;
        }
    }

    /**
     * Waits (up to {@link #OP_TIMEOUT_MS}) until {@code n} faults are raised on uffd {@code u} (fdinfo "total":
     * unread plus read and unresolved), so that what follows does not race threads still on their way.
     */
    void awaitFaults(int u, int n) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(OP_TIMEOUT_MS);
        while (b.uffdDescribe(pid, u).totalFaults() < n && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
    }

    Op async(String label, Callable<?> c) {
        Op op = new Op(label);
        ops.add(op);
        Thread.ofVirtual().name("conf-" + label).start(() -> {
            try {
                op.f.complete(outcome(c));
            } catch (Throwable t) {
                op.f.completeExceptionally(t);
            }
        });
        return op;
    }

    Op write(long addr, int val) {
        return async("write " + rel(addr), () -> b.access(pid, addr, 1, true, new byte[] {(byte) val},
                AccessMode.USER, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(OP_TIMEOUT_MS)));
    }

    Op read(long addr) {
        return async("read " + rel(addr), () -> b.access(pid, addr, 1, false, null, AccessMode.USER,
                System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(OP_TIMEOUT_MS)));
    }

    Op access(long addr, boolean write, AccessMode mode) {
        return async((write ? "write " : "read ") + mode + " " + rel(addr), () -> b.access(pid, addr, 1, write,
                write ? new byte[] {7} : null, mode,
                System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(OP_TIMEOUT_MS)));
    }

    /**
     * Waits until {@code op} finishes or a message arrives on {@code u}. Logs the messages (and returns them)
     * or the op's outcome (and returns an empty list).
     */
    List<UffdMsg> settle(Op op, int u) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(OP_TIMEOUT_MS);
        while (System.nanoTime() < deadline) {
            List<UffdMsg> got = readMsgs(u, 50);
            if (!got.isEmpty()) {
                for (UffdMsg m : got) {
                    log("msg " + msg(m));
                }
                return got;
            }
            if (op.done()) {
                got = readMsgs(u, 0);
                if (!got.isEmpty()) {
                    for (UffdMsg m : got) {
                        log("msg " + msg(m));
                    }
                    return got;
                }
                log(op.label + ": " + op.result(0));
                return List.of();
            }
        }
        log(op.label + ": stuck");
        return List.of();
    }

    /**
     * The selftests' handler: runs {@code op}, resolving each fault it raises (WP: un-protect; MINOR: CONTINUE;
     * MISSING: COPY of 0x5a bytes), until the op completes. Everything goes to the trace.
     */
    String handle(Op op, int u) {
        for (int round = 0; round < 6; round++) {
            List<UffdMsg> got = settle(op, u);
            if (got.isEmpty()) {
                return op.done() ? op.result(0) : "stuck";
            }
            for (UffdMsg m : got) {
                if (m instanceof UffdMsg.Pagefault pf) {
                    long page = pf.address() & ~(ps() - 1);
                    if ((pf.flags() & Linux.UFFD_PAGEFAULT_FLAG_WP) != 0) {
                        wp(u, page, ps(), false);
                    } else if ((pf.flags() & Linux.UFFD_PAGEFAULT_FLAG_MINOR) != 0) {
                        call("CONTINUE " + rel(page), () -> b.uffdContinue(pid, u, page, ps(), 0));
                    } else {
                        call("COPY " + rel(page), () -> b.uffdCopy(pid, u, page, fill(0x5a, ps()), 0));
                    }
                }
            }
        }
        return "too many faults";
    }

    /** Writes one byte at addr through the handler; returns the messages' flags joined ("3", "none", "1,3"). */
    String writeHandled(int u, long addr, int val) {
        int before = trace.size();
        Op op = write(addr, val);
        handle(op, u);
        StringBuilder flags = new StringBuilder();
        for (String l : trace.subList(before, trace.size())) {
            if (l.startsWith("msg PF flags=")) {
                if (flags.length() > 0) {
                    flags.append(',');
                }
                flags.append(l, "msg PF flags=".length(), l.indexOf(' ', "msg PF flags=".length()));
            }
        }
        return flags.length() == 0 ? "none" : flags.toString();
    }

    @Override
    public void close() {
        try {
            b.exit(pid);
        } catch (LinuxException e) {
            // already gone
        }
        for (Op op : ops) {
            op.result(OP_TIMEOUT_MS + 2000);
        }
    }
}
