package io.uffdemu.server.mm;

import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;

/**
 * The page tables of one mm ({@code pgd_t *mm->pgd}). The PGD/P4D/PUD/PMD levels are folded into one
 * ordered map from the PMD index ({@code addr >> 21}) to a PTE table of 512 encoded {@link Pte} words, so
 * an unpopulated range of any size costs nothing and a walk over a range visits only populated tables.
 * Hugetlb leaves sit in the slot of the huge page's first 4 KiB page with {@link Pte#HUGE} set.
 *
 * <p>A PMD-mapped anonymous THP ({@code pmd_trans_huge()}, mm/huge_memory.c) keeps its 512 entries here too,
 * one per 4 KiB subpage, with {@link #PMD_TRANS_HUGE} in the table's extra slot: the PMD is one leaf as long
 * as the 512 entries change together. Any change to a subrange (a single {@link #set} that alters more than
 * the accessed/dirty bits, an {@link #update} over part of the table, a VMA boundary inside it) clears the
 * flag: that is {@code __split_huge_pmd()}, which leaves exactly the PTEs the split kernel table would hold.
 * A table that is absent is {@code pmd_none()}.
 *
 * <p>Tables that hold nothing but uffd-wp markers (WP_UNPOPULATED over empty anonymous memory, uffd-wp over
 * a file hole) are one shared, never-written array, copied on the first write to one of its entries; a
 * one-entry cache of the last table looked up saves the map walk for runs of accesses in one 2 MiB block.
 * Guarded by the kernel lock.
 */
public final class PageTable {
    private static final int PTRS_PER_PTE = 512;
    /** Index of the PMD-level word after the 512 PTEs of a table. */
    static final int PMD_SLOT = PTRS_PER_PTE;
    /** PMD-level word: the table is one PMD-mapped transparent huge page. */
    static final long PMD_TRANS_HUGE = 1;
    /** Bits a hardware-like update may change without splitting a huge PMD ({@code touch_pmd()}). */
    private static final long SPLIT_NEUTRAL = Pte.ACCESSED | Pte.DIRTY | Pte.SOFT_DIRTY;
    /**
     * Read-only outside this class, tables included: every change goes through the methods below (they keep
     * the walk cache and copy the shared all-markers table before writing).
     */
    final TreeMap<Long, long[]> tables = new TreeMap<>();
    /**
     * The memcg the tables are charged to (the owner task's; {@code __GFP_ACCOUNT} page-table pages), kept up to
     * date on every table added or dropped so that a charge never walks the memcg's tasks; null before the owner
     * exists and after it exited ({@link #uncharge}).
     */
    MemCgroup memcg;
    /**
     * One-entry walk cache: the PMD index and table of the last table found. A table stays in the map under
     * its key until {@link #dropTable} or {@link #freeEmptyTables} removes it, so only those invalidate it.
     */
    private long cachedKey = -1;
    private long[] cachedTable;

    /**
     * The PTE table whose 512 entries are all the uffd-wp marker ({@code PTE_MARKER_UFFD_WP}, no THP flag):
     * what {@code change_pte_range()} leaves in a table {@code change_pmd_prepare()} allocated for uffd-wp
     * over unpopulated anonymous memory (WP_UNPOPULATED) or a file hole. Every such table of every mm is this
     * one array, never written: writers take a private copy first ({@link #unshare}). The map still holds one
     * entry per table, so table counts (memcg page-table charge, {@code pmd_none()}) are the kernel's.
     */
    private static final long[] UFFD_WP_MARKERS = newTable();
    private static final long UFFD_WP_MARKER = Pte.marker(Pte.MARKER_UFFD_WP, false);

    static {
        Arrays.fill(UFFD_WP_MARKERS, 0, PTRS_PER_PTE, UFFD_WP_MARKER);
    }

    private static long[] newTable() {
        return new long[PTRS_PER_PTE + 1];
    }

    /** For the invariant checker: the shared all-markers table still holds only markers and no PMD flag. */
    static boolean sharedMarkerTableIntact() {
        for (int i = 0; i < PTRS_PER_PTE; i++) {
            if (UFFD_WP_MARKERS[i] != UFFD_WP_MARKER) {
                return false;
            }
        }
        return UFFD_WP_MARKERS[PMD_SLOT] == 0;
    }

    /** {@code pte_offset_map()}'s table lookup: the PTE table of PMD index {@code key}, or null. */
    private long[] table(long key) {
        if (key == cachedKey) {
            return cachedTable;
        }
        long[] t = tables.get(key);
        if (t != null) {
            cachedKey = key;
            cachedTable = t;
        }
        return t;
    }

    /** The table of {@code key} (t, found by {@link #table}) made safe to write: the shared one is copied. */
    private long[] unshare(long key, long[] t) {
        if (t != UFFD_WP_MARKERS) {
            return t;
        }
        long[] copy = t.clone();
        tables.put(key, copy); // replaces the value: no structural change to the map
        cachedKey = key;
        cachedTable = copy;
        return copy;
    }

    private long[] tableOrAlloc(long key) {
        long[] t = table(key);
        return t != null ? t : install(key, newTable());
    }

    /** {@code pmd_populate()}: t becomes the PTE table of PMD index {@code key} (which had none). */
    private long[] install(long key, long[] t) {
        if (tables.put(key, t) == null) {
            tablesChanged(1);
        }
        cachedKey = key;
        cachedTable = t;
        return t;
    }

    public long get(long addr) {
        long[] t = table(addr >>> 21);
        return t == null ? Pte.NONE : t[(int) ((addr >>> 12) & (PTRS_PER_PTE - 1))];
    }

    public void set(long addr, long pte) {
        long key = addr >>> 21;
        long[] t = table(key);
        if (t == null) {
            if (pte == Pte.NONE) {
                return;
            }
            t = tableOrAlloc(key);
        }
        int i = (int) ((addr >>> 12) & (PTRS_PER_PTE - 1));
        if (t[i] == pte) {
            return; // no change (and so no split)
        }
        t = unshare(key, t);
        if (t[PMD_SLOT] != 0 && ((t[i] ^ pte) & ~SPLIT_NEUTRAL) != 0) {
            t[PMD_SLOT] = 0; // __split_huge_pmd()
        }
        t[i] = pte;
    }

    /** Like {@link #set} but never splits: for changes the kernel applies to the whole huge PMD at once. */
    void setKeepHuge(long addr, long pte) {
        long[] t = table(addr >>> 21);
        if (t == null) {
            set(addr, pte);
            return;
        }
        unshare(addr >>> 21, t)[(int) ((addr >>> 12) & (PTRS_PER_PTE - 1))] = pte;
    }

    /** {@code pmd_none()}: no PTE table (and no huge leaf) for the 2 MiB block holding addr. */
    public boolean pmdNone(long addr) {
        return table(addr >>> 21) == null;
    }

    /** {@code pmd_trans_huge()}: the block holding addr is one PMD-mapped THP. */
    public boolean isTransHuge(long addr) {
        long[] t = table(addr >>> 21);
        return t != null && t[PMD_SLOT] != 0;
    }

    /** Marks the (fully populated) block holding addr as one PMD-mapped THP. */
    void setTransHuge(long addr) {
        long[] t = table(addr >>> 21);
        if (t != null) {
            unshare(addr >>> 21, t)[PMD_SLOT] = PMD_TRANS_HUGE;
        }
    }

    /** {@code pmd_clear()}: drops the whole PTE table of the block holding addr (its entries must be released). */
    void dropTable(long addr) {
        if (tables.remove(addr >>> 21) != null) {
            tablesChanged(-1);
        }
        if (cachedKey == addr >>> 21) {
            cachedKey = -1;
            cachedTable = null;
        }
    }

    /** {@code split_huge_pmd()} of the block holding addr, if it is huge. */
    void splitHuge(long addr) {
        long[] t = table(addr >>> 21);
        if (t != null && t[PMD_SLOT] != 0) {
            t[PMD_SLOT] = 0;
        }
    }

    /** Visitor over non-none entries in [start, end). */
    public interface Visitor {
        void visit(long addr, long pte);
    }

    /** Calls the visitor for every non-none entry in [start, end), in address order. The visitor may call set(). */
    public void forEach(long start, long end, Visitor v) {
        if (start >= end) {
            return;
        }
        Map<Long, long[]> sub = tables.subMap(start >>> 21, true, (end - 1) >>> 21, true);
        for (Map.Entry<Long, long[]> e : new java.util.ArrayList<>(sub.entrySet())) {
            long base = e.getKey() << 21;
            long[] t = e.getValue();
            int from = base < start ? (int) ((start - base) >>> 12) : 0;
            int to = base + (1L << 21) > end ? (int) ((end - base + 4095) >>> 12) : PTRS_PER_PTE;
            for (int i = from; i < to; i++) {
                if (t[i] != Pte.NONE) {
                    v.visit(base + ((long) i << 12), t[i]);
                    if (t == UFFD_WP_MARKERS) { // the visitor's set() may have replaced it with a copy: read that
                        long[] cur = table(e.getKey());
                        t = cur != null ? cur : t;
                    }
                }
            }
        }
    }

    /**
     * Rewrites every non-none entry in [start, end) in place with {@code op} (which must not touch this page
     * table): the bulk form of get/set used by change_protection-like walks.
     */
    public void update(long start, long end, java.util.function.LongUnaryOperator op) {
        if (start >= end) {
            return;
        }
        for (Map.Entry<Long, long[]> e : tables.subMap(start >>> 21, true, (end - 1) >>> 21, true).entrySet()) {
            long base = e.getKey() << 21;
            long[] t = e.getValue();
            int from = base < start ? (int) ((start - base) >>> 12) : 0;
            int to = base + (1L << 21) > end ? (int) ((end - base + 4095) >>> 12) : PTRS_PER_PTE;
            if ((from > 0 || to < PTRS_PER_PTE) && t[PMD_SLOT] != 0) {
                t[PMD_SLOT] = 0; // change_pmd_range(): a partial range splits the huge PMD
            }
            for (int i = from; i < to; i++) {
                if (t[i] != Pte.NONE) {
                    long n = op.applyAsLong(t[i]);
                    if (n != t[i]) {
                        if (t == UFFD_WP_MARKERS) {
                            t = unshare(e.getKey(), t);
                        }
                        t[i] = n;
                    }
                }
            }
        }
    }

    /**
     * Sets every none entry in [start, end), one per {@code step} bytes, to {@code value} (allocating tables):
     * {@code change_pte_range()} installing markers after {@code change_pmd_prepare()} allocated the table. A
     * whole absent table filled with the uffd-wp marker in 4 KiB steps becomes the shared all-markers table.
     */
    public void fillNone(long start, long end, long step, long value) {
        int stride = (int) Math.max(1, step >>> 12);
        boolean shareable = stride == 1 && value == UFFD_WP_MARKER;
        for (long a = start; a < end; ) {
            long key = a >>> 21;
            long tableEnd = Math.min(end, (key + 1) << 21);
            long[] t = table(key);
            if (t == null && shareable && a == key << 21 && tableEnd == (key + 1) << 21) {
                install(key, UFFD_WP_MARKERS);
                a = tableEnd;
                continue;
            }
            if (t == UFFD_WP_MARKERS) { // no none entry in it
                a = tableEnd;
                continue;
            }
            t = t != null ? t : install(key, newTable());
            for (int i = (int) ((a >>> 12) & (PTRS_PER_PTE - 1)); a < tableEnd; i += stride, a += (long) stride << 12) {
                if (t[i] == Pte.NONE) {
                    t[i] = value;
                }
            }
        }
    }

    /** Drops PTE tables left empty in [start, end) (free_pgtables / pt_reclaim). */
    public void freeEmptyTables(long start, long end) {
        if (start >= end) {
            return;
        }
        cachedKey = -1;
        cachedTable = null;
        int before = tables.size();
        tables.subMap(start >>> 21, true, (end - 1) >>> 21, true).entrySet().removeIf(e -> {
            long[] t = e.getValue();
            for (int i = 0; i < PTRS_PER_PTE; i++) {
                if (t[i] != Pte.NONE) {
                    return false;
                }
            }
            return true;
        });
        tablesChanged(tables.size() - before);
    }

    private void tablesChanged(long delta) {
        if (memcg != null && delta != 0) {
            memcg.chargePgtables(delta);
        }
    }

    /** The owner exited: its remaining tables stop counting toward its memcg. */
    void uncharge() {
        tablesChanged(-tables.size());
        memcg = null;
    }

    public int tableCount() {
        return tables.size();
    }
}
