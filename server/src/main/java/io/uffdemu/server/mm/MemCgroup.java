package io.uffdemu.server.mm;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * A memory cgroup: analogue of {@code struct mem_cgroup} ({@code mm/memcontrol.c}) with its page counters
 * ({@code mm/page_counter.c}) for {@code memory.max}, {@code memory.swap.max} and the hugetlb controller's
 * {@code hugetlb.<size>.max} and {@code hugetlb.<size>.rsvd.max} ({@code mm/hugetlb_cgroup.c}). Guarded by the
 * kernel lock.
 *
 * <h2>Linux first</h2>
 * Every folio is charged to one memcg when it is allocated for a process ({@code mem_cgroup_charge()} from the
 * fault path, {@code shmem_get_folio()}, {@code mfill_atomic_pte_copy()}), and uncharged when its last reference
 * goes ({@code mem_cgroup_uncharge()} from {@code __folio_put()}). A charge walks the hierarchy up to the root
 * ({@code page_counter_try_charge()}); when a level would go over its {@code max}, {@code try_charge_memcg()}
 * first reclaims that memcg's own pages ({@code try_to_free_mem_cgroup_pages()}, anonymous pages go to swap if
 * {@code memory.swap.max} allows) and only then fails: a page fault gets {@code VM_FAULT_OOM} (here SIGBUS, as
 * for machine-wide exhaustion), a syscall or UFFDIO_COPY gets ENOMEM. A swap slot is charged to the memcg of the
 * folio written to it ({@code mem_cgroup_try_charge_swap()}) and uncharged when the slot is freed.
 *
 * <p>The hugetlb controller has two counters per huge page size. {@code hugetlb.<size>.current} (limit
 * {@code .max}) counts huge pages allocated, charged by {@code alloc_hugetlb_folio()} and uncharged when the folio
 * is freed. {@code hugetlb.<size>.rsvd.current} (limit {@code .rsvd.max}) counts reservations: charged when
 * {@code hugetlb_reserve_pages()} reserves at mmap time (ENOMEM from mmap over the limit) and uncharged only when
 * the reservation goes: for a private mapping with its VMA ({@code hugetlb_vm_op_close()}, the whole length,
 * faulted or not), for a shared one with the file's region ({@code region_del()} on truncate, hole punch or
 * eviction). Consuming a reservation at fault does not uncharge it, so a faulted reserved page counts in both; a
 * page allocated without a reservation (MAP_NORESERVE, a fork child's private mapping, a hole not reserved) is
 * charged to rsvd at fault instead ({@code deferred_reserve}), on the folio, until the folio is freed.
 *
 * <h2>Here</h2>
 * One memcg per tenant, a child of the machine's root memcg whose limits are the global ones. Frames record
 * their memcg ({@code folio->memcg_data}) in {@link FramePool}; the memcg charged is the one of the task whose
 * syscall or fault is running ({@code current}), set by {@link Kernel#taskLocked}. Reclaim for a memcg over its
 * limit runs in {@link VmOps} at the allocation points that already reclaim for the machine
 * ({@code allocAnonLocked}, {@code allocCachePageLocked}) and, proactively, on syscall entry when the margin is
 * below one reclaim batch (as {@code memory.high} reclaim on return to user space does).
 *
 * <p>The same object also carries the per-tenant object counts that the kernel spreads over other limits and
 * controllers: VMAs ({@code vm.max_map_count}, ENOMEM), userfaultfds (RLIMIT_NOFILE, EMFILE), registered uffd
 * ranges (ENOMEM), queued userfaults and threads blocked in them (EAGAIN). Most counts are recomputed from the
 * live objects (tasks and ctxs of the memcg) when asked. The two that every page allocation or userfault asks for,
 * page-table pages and queued userfaults / blocked threads, are kept as they change ({@link PageTable},
 * {@link UserfaultfdCtx#countUserfaults}) so that asking costs O(depth), not a walk of the memcg's processes;
 * the invariant checker compares them with the walks. All of it is guarded by the kernel lock.
 */
public final class MemCgroup {
    /**
     * The limits of one memcg; {@link Long#MAX_VALUE} / {@link Integer#MAX_VALUE} = {@code max} (unlimited).
     *
     * @param memoryMax         memory.max, bytes of resident memory (anon, shmem, page cache, THP subpages)
     * @param swapMax           memory.swap.max, bytes of swap
     * @param hugetlbMax        hugetlb.*.max summed over huge page sizes, bytes
     * @param hugetlbRsvdMax    hugetlb.*.rsvd.max summed over huge page sizes, bytes (reservations; ENOMEM)
     * @param maxMapCount       VMAs over all processes (vm.max_map_count per memcg): ENOMEM
     * @param maxUffds          open userfaultfd contexts: EMFILE
     * @param maxRegistered     VMAs registered with a userfaultfd: ENOMEM
     * @param maxPendingFaults  userfaults queued and not yet read: EAGAIN
     * @param maxBlockedThreads threads parked in a userfault (pending or read, not woken): EAGAIN
     */
    public record Limits(long memoryMax, long swapMax, long hugetlbMax, long hugetlbRsvdMax, int maxMapCount,
            int maxUffds, int maxRegistered, int maxPendingFaults, int maxBlockedThreads) {
        public static final Limits UNLIMITED = new Limits(Long.MAX_VALUE, Long.MAX_VALUE, Long.MAX_VALUE,
                Long.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE,
                Integer.MAX_VALUE);

        public Limits {
            if (memoryMax < 0 || swapMax < 0 || hugetlbMax < 0 || hugetlbRsvdMax < 0 || maxMapCount < 0
                    || maxUffds < 0 || maxRegistered < 0 || maxPendingFaults < 0 || maxBlockedThreads < 0) {
                throw new IllegalArgumentException("memcg limits must not be negative");
            }
        }

        long memoryMaxPages() {
            return memoryMax / Linux.PAGE_SIZE;
        }

        long swapMaxPages() {
            return swapMax / Linux.PAGE_SIZE;
        }
    }

    /** SWAP_CLUSTER_MAX: pages reclaimed per attempt. */
    static final int RECLAIM_BATCH = 32;

    final String name;
    final MemCgroup parent;
    Limits limits;
    /** page_counter usage of memory.current, in 4 KiB pages. Mutated only by charge/uncharge. */
    long memoryPages;
    /** memory.swap.current, in slots (4 KiB pages). */
    long swapPages;
    /** hugetlb.*.current, in bytes. */
    long hugetlbBytes;
    /** hugetlb.*.rsvd.current, in bytes: reservations held plus folios allocated without one. */
    long hugetlbRsvdBytes;
    /** memory.events: {@code max} (a charge hit the limit) and {@code oom} (it still failed after reclaim). */
    long eventsMax;
    long eventsOom;
    final Set<Task> tasks = new LinkedHashSet<>();
    final Set<UserfaultfdCtx> uffds = Collections.newSetFromMap(new IdentityHashMap<>());
    final List<MemCgroup> children = new ArrayList<>();

    MemCgroup(String name, MemCgroup parent, Limits limits) {
        this.name = name;
        this.parent = parent;
        this.limits = limits == null ? Limits.UNLIMITED : limits;
        if (parent != null) {
            parent.children.add(this);
        }
    }

    // ------------------------------------------------------------------ page counters

    /**
     * Page-table pages of the memcg's processes and its descendants' ({@code mm_pgtables_bytes()}): the kernel
     * allocates them with {@code __GFP_ACCOUNT}, so they count toward memory.max. Kept by {@link PageTable} as
     * tables come and go ({@link #chargePgtables}), so a charge costs O(depth), not a walk of the memcg's tasks
     * (which made every page allocation O(processes of the tenant)). Only memcgs with a memory limit report it
     * (0 otherwise, as before: the unlimited root's usage is its frames).
     */
    long pgtablePages() {
        return limits.memoryMax() == Long.MAX_VALUE ? 0 : pgtables;
    }

    /** Page-table pages of this memcg's tasks and its descendants', whatever the limit ({@link #pgtablePages}). */
    private long pgtables;

    /** {@code delta} page-table pages added (or dropped, negative) by a task of this memcg: here and every ancestor. */
    void chargePgtables(long delta) {
        for (MemCgroup c = this; c != null; c = c.parent) {
            c.pgtables += delta;
        }
    }

    /** Debug ({@link InvariantChecker}): the page-table pages counted, against a walk of the tasks' tables. */
    void checkPgtables() {
        long n = 0;
        for (Task t : allTasks()) {
            if (t.mm.pt.memcg != t.memcg) {
                throw new IllegalStateException("pid " + t.pid + ": page tables charged to "
                        + (t.mm.pt.memcg == null ? "no memcg" : t.mm.pt.memcg.name) + ", its memcg is " + t.memcg.name);
            }
            n += t.mm.pt.tableCount();
        }
        if (n != pgtables) {
            throw new IllegalStateException("memcg " + name + ": " + pgtables + " page-table pages counted, its tasks"
                    + " hold " + n);
        }
    }

    /**
     * Page tables may use at most half of memory.max: beyond, calls that grow them fail with ENOMEM (the kernel's
     * memcg would OOM). Ordinary mappings need one table page per 512 pages; only sparse or zero-page-only use
     * (MAP_POPULATE of a read-only terabyte, UFFDIO_ZEROPAGE or WP_UNPOPULATED over huge ranges) gets here.
     */
    void checkPgtableRoom(long moreTables, String call) {
        for (MemCgroup c = this; c != null; c = c.parent) {
            if (c.limits.memoryMax() != Long.MAX_VALUE
                    && c.pgtablePages() + moreTables > c.limits.memoryMaxPages() / 2) {
                throw LinuxException.quota(Errno.ENOMEM, call, "memcg " + c.name
                        + ": page tables would exceed half of memory.max");
            }
        }
    }

    /** page_counter_try_charge() of memory: every level up to the root must stay within its max. */
    boolean tryChargeMemory(long pages) {
        for (MemCgroup c = this; c != null; c = c.parent) {
            if (c.memoryPages + c.pgtablePages() + pages > c.limits.memoryMaxPages()) {
                c.eventsMax++;
                return false;
            }
        }
        for (MemCgroup c = this; c != null; c = c.parent) {
            c.memoryPages += pages;
        }
        return true;
    }

    void unchargeMemory(long pages) {
        for (MemCgroup c = this; c != null; c = c.parent) {
            c.memoryPages -= pages;
        }
    }

    /**
     * page_counter_try_charge() of hugetlb.*.current ({@code hugetlb_cgroup_charge_cgroup()}) or, with
     * {@code rsvd}, of hugetlb.*.rsvd.current ({@code hugetlb_cgroup_charge_cgroup_rsvd()}); a refusal of either
     * counts an events max ({@code hugetlb_event(HUGETLB_MAX)}).
     */
    boolean tryChargeHugetlb(long bytes, boolean rsvd) {
        for (MemCgroup c = this; c != null; c = c.parent) {
            if ((rsvd ? c.hugetlbRsvdBytes : c.hugetlbBytes) + bytes
                    > (rsvd ? c.limits.hugetlbRsvdMax() : c.limits.hugetlbMax())) {
                c.eventsMax++;
                return false;
            }
        }
        for (MemCgroup c = this; c != null; c = c.parent) {
            if (rsvd) {
                c.hugetlbRsvdBytes += bytes;
            } else {
                c.hugetlbBytes += bytes;
            }
        }
        return true;
    }

    void unchargeHugetlb(long bytes, boolean rsvd) {
        for (MemCgroup c = this; c != null; c = c.parent) {
            if (rsvd) {
                c.hugetlbRsvdBytes -= bytes;
            } else {
                c.hugetlbBytes -= bytes;
            }
        }
    }

    /**
     * The rsvd charge of a reservation ({@code hugetlb_reserve_pages()} →
     * {@code hugetlb_cgroup_charge_cgroup_rsvd()}): over hugetlb.*.rsvd.max the mmap fails with ENOMEM, marked as
     * the tenant's quota.
     */
    void chargeHugetlbReservation(long bytes, String call) {
        if (!tryChargeHugetlb(bytes, true)) {
            throw LinuxException.quota(Errno.ENOMEM, call, "memcg " + name + ": hugetlb reservation limit ("
                    + limits.hugetlbRsvdMax() + " bytes, hugetlb.rsvd.max) reached");
        }
    }

    /** mem_cgroup_try_charge_swap() of one slot. */
    boolean tryChargeSwap() {
        for (MemCgroup c = this; c != null; c = c.parent) {
            if (c.swapPages + 1 > c.limits.swapMaxPages()) {
                return false;
            }
        }
        for (MemCgroup c = this; c != null; c = c.parent) {
            c.swapPages++;
        }
        return true;
    }

    void unchargeSwap() {
        for (MemCgroup c = this; c != null; c = c.parent) {
            c.swapPages--;
        }
    }

    /** mem_cgroup_margin(): pages that can still be charged here without reclaim. */
    long marginPages() {
        long m = Long.MAX_VALUE;
        for (MemCgroup c = this; c != null; c = c.parent) {
            m = Math.min(m, c.limits.memoryMaxPages() - c.memoryPages - c.pgtablePages());
        }
        return Math.max(0, m);
    }

    /** Swap slots that can still be charged here. */
    long swapMarginPages() {
        long m = Long.MAX_VALUE;
        for (MemCgroup c = this; c != null; c = c.parent) {
            m = Math.min(m, c.limits.swapMaxPages() - c.swapPages);
        }
        return Math.max(0, m);
    }

    /** True when {@code this} is {@code c} or below it. */
    boolean isDescendantOf(MemCgroup c) {
        for (MemCgroup x = this; x != null; x = x.parent) {
            if (x == c) {
                return true;
            }
        }
        return false;
    }

    // ------------------------------------------------------------------ object counts

    /** Tasks of this memcg and of its descendants. */
    List<Task> allTasks() {
        List<Task> out = new ArrayList<>(tasks);
        for (MemCgroup ch : children) {
            out.addAll(ch.allTasks());
        }
        return out;
    }

    private List<UserfaultfdCtx> allUffds() {
        List<UserfaultfdCtx> out = new ArrayList<>(uffds);
        for (MemCgroup ch : children) {
            out.addAll(ch.allUffds());
        }
        return out;
    }

    /** VMAs of every process of the memcg (the sum of their {@code mm->map_count}). */
    public long mapCount() {
        long n = 0;
        for (Task t : allTasks()) {
            n += t.mm.vmas.size();
        }
        return n;
    }

    public long uffdCount() {
        return allUffds().size();
    }

    /** VMAs with a userfaultfd context. */
    public long registeredCount() {
        long n = 0;
        for (Task t : allTasks()) {
            for (Vma v : t.mm.vmas.values()) {
                if (v.uffd != null) {
                    n++;
                }
            }
        }
        return n;
    }

    /**
     * Userfaults queued and not read, in this memcg and its descendants: kept as faults are queued, read and woken
     * ({@link #countUserfaults}), since it is checked on every userfault and a walk of the memcg's uffds made that
     * check O(uffds of the tenant). Caller holds the kernel lock (as for every count here).
     */
    public long pendingFaults() {
        return pendingFaultCount;
    }

    /** Threads parked in a userfault, read or not, in this memcg and its descendants (see {@link #pendingFaults}). */
    public long blockedThreads() {
        return blockedThreadCount;
    }

    private long pendingFaultCount;
    private long blockedThreadCount;

    /** Faults of a uffd of this memcg changed: here and in every ancestor. */
    void countUserfaults(long pending, long blocked) {
        for (MemCgroup c = this; c != null; c = c.parent) {
            c.pendingFaultCount += pending;
            c.blockedThreadCount += blocked;
        }
    }

    /** Debug ({@link InvariantChecker}): the userfault counters against a walk of the memcg's uffds. */
    void checkUserfaultCounts() {
        if (pendingFaultsByWalk() != pendingFaultCount || blockedThreadsByWalk() != blockedThreadCount) {
            throw new IllegalStateException("memcg " + name + ": " + pendingFaultCount + " pending faults and "
                    + blockedThreadCount + " blocked threads counted, its uffds hold " + pendingFaultsByWalk() + " and "
                    + blockedThreadsByWalk());
        }
    }

    private long pendingFaultsByWalk() {
        long n = 0;
        for (UserfaultfdCtx c : uffds) {
            n += c.pending.size();
        }
        for (MemCgroup ch : children) {
            n += ch.pendingFaultsByWalk();
        }
        return n;
    }

    private long blockedThreadsByWalk() {
        long n = 0;
        for (UserfaultfdCtx c : uffds) {
            n += c.pending.size() + c.waiting.size();
        }
        for (MemCgroup ch : children) {
            n += ch.blockedThreadsByWalk();
        }
        return n;
    }

    /** vm.max_map_count: a new VMA (mmap, split) when the memcg (or an ancestor) is at its limit gives ENOMEM. */
    void checkMapCount(String call) {
        for (MemCgroup c = this; c != null; c = c.parent) {
            if (c.mapCount() >= c.limits.maxMapCount()) {
                throw LinuxException.quota(Errno.ENOMEM, call, "memcg " + c.name + ": mapping limit ("
                        + c.limits.maxMapCount() + ") reached");
            }
        }
    }

    void checkUffdRoom(String call) {
        for (MemCgroup c = this; c != null; c = c.parent) {
            if (c.uffdCount() >= c.limits.maxUffds()) {
                throw LinuxException.quota(Errno.EMFILE, call, "memcg " + c.name + ": userfaultfd limit ("
                        + c.limits.maxUffds() + ") reached");
            }
        }
    }

    /** Before registering {@code adding} more VMAs with a uffd. */
    void checkRegisteredRoom(long adding, String call) {
        for (MemCgroup c = this; c != null; c = c.parent) {
            // registered VMAs are a subset of all VMAs: the walk is needed only when the cheap bound is too high
            if (c.mapCount() + adding > c.limits.maxRegistered()
                    && c.registeredCount() + adding > c.limits.maxRegistered()) {
                throw LinuxException.quota(Errno.ENOMEM, call, "memcg " + c.name + ": registered range limit ("
                        + c.limits.maxRegistered() + ") reached");
            }
        }
    }

    /** Before a userfault is queued: the pending-fault and blocked-thread limits. */
    void checkUserfaultRoom(String call) {
        for (MemCgroup c = this; c != null; c = c.parent) {
            if (c.pendingFaults() >= c.limits.maxPendingFaults()) {
                throw LinuxException.quota(Errno.EAGAIN, call, "memcg " + c.name + ": pending userfault limit ("
                        + c.limits.maxPendingFaults() + ") reached");
            }
            if (c.blockedThreads() >= c.limits.maxBlockedThreads()) {
                throw LinuxException.quota(Errno.EAGAIN, call, "memcg " + c.name + ": blocked thread limit ("
                        + c.limits.maxBlockedThreads() + ") reached");
            }
        }
    }

    // ------------------------------------------------------------------ accessors

    public String name() {
        return name;
    }

    public Limits limits() {
        return limits;
    }

    /** memory.current in bytes: charged frames plus page tables. */
    public long memoryCurrent() {
        return (memoryPages + pgtablePages()) * Linux.PAGE_SIZE;
    }

    /** memory.swap.current in bytes. */
    public long swapCurrent() {
        return swapPages * Linux.PAGE_SIZE;
    }

    /** hugetlb.*.current summed, in bytes. */
    public long hugetlbCurrent() {
        return hugetlbBytes;
    }

    /** hugetlb.*.rsvd.current summed, in bytes. */
    public long hugetlbRsvdCurrent() {
        return hugetlbRsvdBytes;
    }

    /** memory.events max. */
    public long eventsMax() {
        return eventsMax;
    }

    /** memory.events oom. */
    public long eventsOom() {
        return eventsOom;
    }
}
