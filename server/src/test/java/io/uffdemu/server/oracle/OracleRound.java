package io.uffdemu.server.oracle;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.conformance.MemType;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.AccessResult;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.UffdMsg;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * One round of the uffd-wp oracle, in the manner of the seed patch series' {@code uffd-test}: a mapping of
 * {@code n} pages of one memory type gets a random prefault (none / read / write), is registered WP (plus
 * MISSING at random), then sees a random sequence of write-protect, un-protect, MADV_DONTNEED, MADV_PAGEOUT and
 * MADV_REMOVE on single pages, and finally a shuffled list of reads and writes, each run on its own thread
 * while this thread plays the handler (WP fault: un-protect; MISSING fault: UFFDIO_COPY, with MODE_WP at
 * random).
 *
 * <p>A {@link Page} model of each page (PTE none / present / swap, wp bit or marker, zero page, the content
 * of the private page or of the page cache) gives, for every access, the expected message list, SIGBUS, and
 * the data a read returns; pagemap's P/S/W bits are checked after the zaps and at the end. The model follows
 * the reference ({@code uffd-semantics.md} §4, §5.2, §6), the kernel being the final judge: the native
 * backend runs the same rounds against it. A write that lands on a page the model holds write-protected
 * without the handler having seen its WP message is reported as DATA CORRUPTION.
 */
final class OracleRound {
    enum Kind { NONE, PRESENT, SWAP }

    /** The model of one page. */
    static final class Page {
        Kind pte = Kind.NONE;
        /** uffd-wp armed: the bit of a present or swap PTE, or (pte NONE) a wp marker. */
        boolean wp;
        /** anon: the PTE maps the shared zero page. */
        boolean zero;
        /** anon: the private page exists (present non-zero, or swap); file: the page cache holds the page. */
        boolean has;
        /** file: the cached page is dirty (written through a PTE, or by COPY); reclaim drops clean ones. */
        boolean dirty;
        int head;
        int tail;

        @Override
        public String toString() {
            return pte + (wp ? "+wp" : "") + (zero ? " zero" : "") + (has && !dirty ? " clean" : "")
                    + (has ? " data=" + hex(head) + "/" + hex(tail)
                    : "");
        }
    }

    /** What one access is expected to do. */
    record Expect(List<Long> flags, boolean sigbus, int head, int tail, List<Boolean> copyWp, List<Integer> copyVal) {
    }

    static final long OP_TIMEOUT_MS = 5000;
    static final long WP_FLAGS = Linux.UFFD_PAGEFAULT_FLAG_WRITE | Linux.UFFD_PAGEFAULT_FLAG_WP;

    final MemoryBackend b;
    final MemType type;
    final SplittableRandom rnd;
    final boolean swapOn;
    final int n;
    final long ps;
    final List<String> log = new ArrayList<>();
    final List<String> mismatches = new ArrayList<>();
    final Map<String, Integer> stats;
    private final Page[] pages;
    private int pid;
    private int uffd;
    private long base;
    private boolean missing;
    private boolean sigbus;
    private boolean wpUnpopulated;
    private int nextVal = 1;

    /**
     * Whether the backend is the real kernel: MADV_PAGEOUT is then best effort (a folio still in a per-CPU LRU
     * batch is not isolated, so not reclaimed) and pagemap tells whether it happened; and no SIGBUS-feature
     * rounds (the native backend predicts SIGBUS instead of taking it, see {@code LinuxBackend}).
     */
    final boolean kernel;
    /**
     * SIGBUS-feature rounds on the native backend too (its SIGBUS is a prediction, see above): on for anon and
     * shmem (shmem page-cache residency comes from mincore()), off for hugetlb, where the backend refuses what it
     * cannot predict; {@code -Duffdemu.oracle.nativeSigbus=false} turns them off.
     */
    static final boolean NATIVE_SIGBUS = Boolean.parseBoolean(System.getProperty("uffdemu.oracle.nativeSigbus",
            "true"));

    OracleRound(MemoryBackend b, MemType type, long seed, boolean swapOn, int n, Map<String, Integer> stats,
            boolean kernel) {
        this.kernel = kernel;
        this.b = b;
        this.type = type;
        this.rnd = new SplittableRandom(seed);
        this.swapOn = swapOn;
        this.n = n;
        this.ps = type.pageSize();
        this.stats = stats;
        this.pages = new Page[n];
        for (int i = 0; i < n; i++) {
            pages[i] = new Page();
        }
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    private int val() {
        int v = nextVal;
        nextVal = nextVal % 250 + 1;
        return v;
    }

    private void mismatch(String what) {
        mismatches.add(what);
        log.add("  !! " + what);
    }

    private void count(String k) {
        stats.merge(k, 1, Integer::sum);
    }

    // ------------------------------------------------------------------ the round

    void run() throws Exception {
        pid = b.createProcess("oracle", 0, true, "oracle").pid();
        try {
            body();
        } finally {
            try {
                if (base != 0) {
                    b.munmap(pid, base, n * ps);
                }
                if (uffd > 0) {
                    b.close(pid, uffd);
                }
            } catch (LinuxException e) {
                log.add("cleanup: " + e.getMessage());
            }
            try {
                b.exit(pid);
            } catch (LinuxException e) {
                // gone already
            }
        }
    }

    private void body() throws Exception {
        long len = n * ps;
        if (type.anon()) {
            base = b.mmap(pid, 0, len, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS,
                    -1, 0);
        } else {
            int fd = b.memfdCreate(pid, "oracle", Linux.MFD_CLOEXEC | (type.hugetlb() ? Linux.MFD_HUGETLB : 0));
            b.ftruncate(pid, fd, len);
            base = b.mmap(pid, 0, len, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED, fd, 0);
            b.close(pid, fd); // the mapping keeps the file; munmap at the end frees its (huge) pages
        }
        // 1. prefault, before any registration: no messages possible
        for (int i = 0; i < n; i++) {
            int kind = rnd.nextInt(3);
            if (kind == 1) {
                log.add("prefault " + i + " read");
                plainAccess(i, false, 0);
                Page p = pages[i];
                p.pte = Kind.PRESENT;
                if (type.anon()) {
                    p.zero = true;
                } else {
                    p.has = true;
                }
            } else if (kind == 2) {
                int v = val();
                log.add("prefault " + i + " write " + hex(v));
                plainAccess(i, true, v);
                Page p = pages[i];
                p.pte = Kind.PRESENT;
                p.has = true;
                p.dirty = true;
                p.head = v;
                p.tail = 0;
            }
        }
        // 2. uffd, features, registration
        missing = rnd.nextBoolean();
        sigbus = rnd.nextInt(5) == 0 && (!kernel || (NATIVE_SIGBUS && !type.hugetlb()));
        wpUnpopulated = rnd.nextBoolean();
        long features = (sigbus ? Linux.UFFD_FEATURE_SIGBUS : 0) | (wpUnpopulated ? Linux.UFFD_FEATURE_WP_UNPOPULATED
                : 0) | (type.anon() ? 0 : Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
        uffd = b.userfaultfd(pid, Linux.O_CLOEXEC | Linux.O_NONBLOCK, false);
        b.uffdApi(pid, uffd, Linux.UFFD_API, features);
        long mode = Linux.UFFDIO_REGISTER_MODE_WP | (missing ? Linux.UFFDIO_REGISTER_MODE_MISSING : 0);
        b.uffdRegister(pid, uffd, base, len, mode);
        log.add("uffd features=" + hex(features) + " register mode=" + mode);
        // 3. random wp / un-wp / zaps
        int ops = n + rnd.nextInt(2 * n);
        for (int j = 0; j < ops; j++) {
            int i = rnd.nextInt(n);
            int op = rnd.nextInt(8);
            switch (op) {
                case 0, 1, 2 -> writeprotect(i, true);
                case 3 -> writeprotect(i, false);
                case 4, 5 -> dontneed(i);
                case 6 -> pageout(i);
                default -> remove(i);
            }
        }
        checkPagemap("after zaps");
        // 4. accesses: 1..3 per page, shuffled; then a final read of every page
        List<int[]> accesses = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int k = 1 + rnd.nextInt(3);
            for (int j = 0; j < k; j++) {
                accesses.add(new int[] {i, rnd.nextInt(2)});
            }
        }
        for (int j = accesses.size() - 1; j > 0; j--) {
            int o = rnd.nextInt(j + 1);
            int[] t = accesses.get(j);
            accesses.set(j, accesses.get(o));
            accesses.set(o, t);
        }
        for (int i = 0; i < n; i++) {
            accesses.add(new int[] {i, 0});
        }
        for (int[] a : accesses) {
            access(a[0], a[1] == 1);
        }
        checkPagemap("at the end");
    }

    // ------------------------------------------------------------------ operations and their model

    private long addr(int i) {
        return base + i * ps;
    }

    private void plainAccess(int i, boolean write, int v) throws InterruptedException {
        AccessResult r = b.access(pid, addr(i), write ? 8 : 1, write, write ? fill(v, 8) : null, AccessMode.USER,
                System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(OP_TIMEOUT_MS));
        if (r.signal() != 0 || r.errno() != null) {
            mismatch("prefault of page " + i + " failed: sig " + r.signal() + " errno " + r.errno());
        }
    }

    static byte[] fill(int v, int len) {
        byte[] d = new byte[len];
        Arrays.fill(d, (byte) v);
        return d;
    }

    private String outcome(Runnable r) {
        try {
            r.run();
            return "OK";
        } catch (LinuxException e) {
            return e.errno().name();
        }
    }

    private void expectOutcome(String what, String actual, String expected) {
        log.add(what + ": " + actual + (actual.equals(expected) ? "" : " (expected " + expected + ")"));
        if (!actual.equals(expected)) {
            mismatch(what + ": expected " + expected + " but was " + actual);
        }
    }

    private void writeprotect(int i, boolean on) {
        Page p = pages[i];
        String r = outcome(() -> b.uffdWriteprotect(pid, uffd, addr(i), ps, on ? Linux.UFFDIO_WRITEPROTECT_MODE_WP
                : 0));
        expectOutcome((on ? "WP " : "UNWP ") + i + " [" + p + "]", r, "OK");
        if (!on) {
            p.wp = false;
        } else if (p.pte != Kind.NONE || !type.anon() || wpUnpopulated) {
            p.wp = true; // present or swap: the bit; none: a marker (file memory, or anon with WP_UNPOPULATED)
        }
        count(on ? "op wp" : "op unwp");
    }

    private void dontneed(int i) {
        Page p = pages[i];
        String r = outcome(() -> b.madvise(pid, addr(i), ps, Linux.MADV_DONTNEED));
        expectOutcome("DONTNEED " + i + " [" + p + "]", r, "OK");
        p.pte = Kind.NONE;
        p.zero = false;
        if (type.anon()) {
            // "Zap on anonymous always means dropping everything": the page and any wp state
            p.wp = false;
            p.has = false;
        }
        // file memory: the page cache keeps the page, a wp PTE leaves a marker
        count("op dontneed");
    }

    private void pageout(int i) {
        Page p = pages[i];
        String r = outcome(() -> b.madvise(pid, addr(i), ps, Linux.MADV_PAGEOUT));
        if (type.hugetlb()) {
            expectOutcome("PAGEOUT " + i + " [" + p + "]", r, "EINVAL");
            return;
        }
        expectOutcome("PAGEOUT " + i + " [" + p + "]", r, "OK");
        if (type.anon()) {
            if (swapOn && p.pte == Kind.PRESENT && !p.zero) {
                p.pte = Kind.SWAP; // a swap PTE keeping the wp bit
            }
        } else if (p.pte == Kind.PRESENT && kernel && (b.readPagemap(pid, addr(i), 1)[0] & Linux.PM_PRESENT) != 0) {
            log.add("  (the kernel did not reclaim page " + i + " this time)");
            count("op pageout not done");
        } else if (p.pte == Kind.PRESENT) {
            // shrink_folio_list() unmaps the shmem page (a wp PTE leaves a marker) with or without swap; a dirty
            // page is written to swap or, without swap, stays in the cache; a clean one is freed: a hole now
            p.pte = Kind.NONE;
            if (!p.dirty) {
                p.has = false;
            }
        }
        count("op pageout");
    }

    private void remove(int i) {
        Page p = pages[i];
        String r = outcome(() -> b.madvise(pid, addr(i), ps, Linux.MADV_REMOVE));
        if (type.anon()) {
            expectOutcome("REMOVE " + i + " [" + p + "]", r, "EINVAL");
            return;
        }
        expectOutcome("REMOVE " + i + " [" + p + "]", r, "OK");
        // a hole in the file; the wp marker is kept on 6.18 (reference §6.1)
        p.pte = Kind.NONE;
        p.has = false;
        p.dirty = false;
        count("op remove");
    }

    /** pagemap P/S/W per page against the model. */
    private void checkPagemap(String when) {
        long[] pm = new long[n];
        for (int i = 0; i < n; i++) {
            pm[i] = b.readPagemap(pid, addr(i), 1)[0];
        }
        StringBuilder exp = new StringBuilder();
        StringBuilder act = new StringBuilder();
        for (int i = 0; i < n; i++) {
            Page p = pages[i];
            boolean marker = p.pte == Kind.NONE && p.wp;
            exp.append(p.pte == Kind.PRESENT ? 'P' : '-')
                    .append(p.pte == Kind.SWAP || (marker && !type.hugetlb()) ? 'S' : '-')
                    .append(p.wp && (p.pte != Kind.NONE || marker) ? 'W' : '-').append(' ');
            act.append((pm[i] & Linux.PM_PRESENT) != 0 ? 'P' : '-').append((pm[i] & Linux.PM_SWAP) != 0 ? 'S' : '-')
                    .append((pm[i] & Linux.PM_UFFD_WP) != 0 ? 'W' : '-').append(' ');
        }
        log.add("pagemap " + when + ": " + act.toString().trim());
        if (!exp.toString().equals(act.toString())) {
            mismatch("pagemap " + when + ": expected " + exp.toString().trim() + " but was " + act.toString().trim());
        }
    }

    /**
     * The expected behaviour of one access, following the handler this round plays. Updates the model to the
     * state after the access.
     */
    private Expect model(int i, boolean write, int v) {
        Page p = pages[i];
        List<Long> flags = new ArrayList<>();
        List<Boolean> copyWp = new ArrayList<>();
        List<Integer> copyVal = new ArrayList<>();
        long w = write ? Linux.UFFD_PAGEFAULT_FLAG_WRITE : 0;
        for (int guard = 0; guard < 8; guard++) {
            if (p.pte == Kind.SWAP) {
                p.pte = Kind.PRESENT; // do_swap_page(): the swap-wp bit becomes the PTE's wp bit
                continue;
            }
            if (p.pte == Kind.NONE) {
                boolean hole = type.anon() || !p.has;
                if (hole && missing) {
                    if (sigbus) {
                        return new Expect(flags, true, 0, 0, copyWp, copyVal);
                    }
                    flags.add(w); // MISSING: the handler copies a whole page, with MODE_WP at random
                    boolean cwp = rnd.nextInt(3) == 0;
                    int c = val();
                    copyWp.add(cwp);
                    copyVal.add(c);
                    p.pte = Kind.PRESENT;
                    p.wp = cwp;
                    p.zero = false;
                    p.has = true;
                    p.dirty = true;
                    p.head = c;
                    p.tail = c;
                    continue;
                }
                // filled by the kernel: the zero page (anon read), a new zeroed page (anon write, file hole), or the
                // cached page; a wp marker's protection carries over to the new PTE
                p.pte = Kind.PRESENT;
                if (type.anon()) {
                    p.zero = !write;
                    p.has = write;
                    p.head = 0;
                    p.tail = 0;
                } else if (!p.has) {
                    p.has = true;
                    p.dirty = false; // a write landing below makes it dirty
                    p.head = 0;
                    p.tail = 0;
                }
                continue;
            }
            // present
            if (!write) {
                return p.zero ? new Expect(flags, false, 0, 0, copyWp, copyVal)
                        : new Expect(flags, false, p.head, p.tail, copyWp, copyVal);
            }
            if (p.wp) {
                if (sigbus) {
                    return new Expect(flags, true, 0, 0, copyWp, copyVal);
                }
                flags.add(WP_FLAGS);
                p.wp = false; // the handler un-protects
                continue;
            }
            if (p.zero) {
                p.zero = false;
                p.has = true;
                p.tail = 0;
            }
            p.head = v;
            p.dirty = true;
            return new Expect(flags, false, v, p.tail, copyWp, copyVal);
        }
        throw new AssertionError("model loops on page " + i);
    }

    // ------------------------------------------------------------------ one access with the handler

    private void access(int i, boolean write) throws Exception {
        Page before = pages[i];
        String state = before.toString();
        boolean wasWp = before.wp;
        int v = write ? val() : 0;
        Expect e = model(i, write, v);
        long a = addr(i);
        CompletableFuture<AccessResult> f = new CompletableFuture<>();
        Thread.ofVirtual().name("oracle-access").start(() -> {
            try {
                f.complete(b.access(pid, a, write ? 8 : 16, write, write ? fill(v, 8) : null, AccessMode.USER,
                        System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(OP_TIMEOUT_MS)));
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        List<Long> seen = new ArrayList<>();
        Deque<Boolean> copyWp = new ArrayDeque<>(e.copyWp());
        Deque<Integer> copyVal = new ArrayDeque<>(e.copyVal());
        AccessResult r = null;
        String failure = null;
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(OP_TIMEOUT_MS + 1000);
        while (true) {
            List<UffdMsg> msgs = read(0);
            if (msgs.isEmpty() && !f.isDone()) {
                try {
                    f.get(1, TimeUnit.MILLISECONDS); // the access finishes, or blocks on a fault: a message to read
                } catch (TimeoutException | ExecutionException ex) {
                    // looked at below
                }
                msgs = read(0);
            }
            for (UffdMsg m : msgs) {
                if (!(m instanceof UffdMsg.Pagefault pf)) {
                    failure = "unexpected event " + m;
                    continue;
                }
                seen.add(pf.flags());
                count((pf.flags() & Linux.UFFD_PAGEFAULT_FLAG_WP) != 0 ? "msg WP" : "msg MISSING");
                if (pf.address() != a) {
                    failure = "message address " + hex(pf.address() - base) + " for page " + i;
                }
                resolve(pf, copyWp, copyVal);
            }
            if (msgs.isEmpty() && f.isDone()) {
                if (!read(0).isEmpty()) {
                    failure = "message after the access completed";
                }
                try {
                    r = f.get();
                } catch (ExecutionException ex) {
                    failure = "access threw " + ex.getCause();
                }
                break;
            }
            if (System.nanoTime() > deadline || seen.size() > 8) {
                failure = seen.size() > 8 ? "too many messages" : "access stuck";
                try {
                    r = f.get(OP_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                } catch (TimeoutException | ExecutionException ex) {
                    // reported below
                }
                break;
            }
        }
        String actual = describe(seen, r);
        String expected = describe(e.flags(), null) + (e.sigbus() ? "SIGBUS" : write ? "ok" : "ok " + hex(e.head()) + "/" + hex(e.tail()));
        String label = (write ? "write " + hex(v) : "read") + " " + i + " [" + state + "]";
        log.add(label + ": " + actual + (actual.equals(expected) ? "" : "   EXPECTED " + expected));
        count(write ? "access write" : "access read");
        if (failure != null) {
            mismatch(label + ": " + failure);
        }
        if (!actual.equals(expected)) {
            boolean corruption = write && wasWp && e.flags().contains(WP_FLAGS) && !seen.contains(WP_FLAGS) && r != null && r.signal() == 0;
            mismatch((corruption ? "DATA CORRUPTION (wp page written without a WP message): " : "") + label
                    + ": expected " + expected + " but was " + actual);
        }
    }

    private static String describe(List<Long> flags, AccessResult r) {
        StringBuilder sb = new StringBuilder("msgs=[");
        for (int j = 0; j < flags.size(); j++) {
            sb.append(j > 0 ? "," : "").append(flags.get(j) == 0 ? "MISSING" : flags.get(j) == 1 ? "MISSING|W"
                    : flags.get(j) == 3 ? "WP|W" : "flags" + flags.get(j));
        }
        sb.append("] ");
        if (r == null) {
            return sb.toString();
        }
        if (r.signal() != 0) {
            return sb.append(r.signal() == Linux.SIGBUS ? "SIGBUS" : "SIG" + r.signal()).toString();
        }
        if (r.errno() != null) {
            return sb.append(r.errno()).toString();
        }
        if (r.data() == null) {
            return sb.append("ok").toString();
        }
        return sb.append("ok ").append(hex(r.data()[0] & 0xff)).append('/').append(hex(r.data()[8] & 0xff)).toString();
    }

    private List<UffdMsg> read(long waitMs) throws InterruptedException {
        try {
            return b.uffdRead(pid, uffd, 16, waitMs == 0 ? 0 : System.nanoTime()
                    + TimeUnit.MILLISECONDS.toNanos(waitMs));
        } catch (LinuxException e) {
            if (e.errno() == Errno.EAGAIN) {
                return List.of();
            }
            throw e;
        }
    }

    /** The handler: WP → un-protect (wakes); MISSING → COPY of the model's page, with MODE_WP as scripted. */
    private void resolve(UffdMsg.Pagefault pf, Deque<Boolean> copyWp, Deque<Integer> copyVal) {
        long page = pf.address() & ~(ps - 1);
        if ((pf.flags() & Linux.UFFD_PAGEFAULT_FLAG_WP) != 0) {
            String r = outcome(() -> b.uffdWriteprotect(pid, uffd, page, ps, 0));
            if (!r.equals("OK")) {
                mismatch("handler un-WP " + hex(page - base) + ": " + r);
            }
            return;
        }
        boolean wp = copyWp.isEmpty() ? false : copyWp.poll();
        int c = copyVal.isEmpty() ? 0xee : copyVal.poll();
        String r = outcome(() -> b.uffdCopy(pid, uffd, page, fill(c, (int) ps), wp ? Linux.UFFDIO_COPY_MODE_WP : 0));
        if (!r.equals("OK")) {
            mismatch("handler COPY " + hex(page - base) + ": " + r);
            try {
                b.uffdWake(pid, uffd, page, ps);
            } catch (LinuxException ex) {
                // reported above
            }
        }
    }

    /** For the report: stats keys sorted. */
    static Map<String, Integer> newStats() {
        return new TreeMap<>();
    }
}
