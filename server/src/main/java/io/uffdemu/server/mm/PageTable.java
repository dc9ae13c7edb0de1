package io.uffdemu.server.mm;

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
    final TreeMap<Long, long[]> tables = new TreeMap<>();

    private static long[] newTable() {
        return new long[PTRS_PER_PTE + 1];
    }

    public long get(long addr) {
        long[] t = tables.get(addr >>> 21);
        return t == null ? Pte.NONE : t[(int) ((addr >>> 12) & (PTRS_PER_PTE - 1))];
    }

    public void set(long addr, long pte) {
        long key = addr >>> 21;
        long[] t = tables.get(key);
        if (t == null) {
            if (pte == Pte.NONE) {
                return;
            }
            t = newTable();
            tables.put(key, t);
        }
        int i = (int) ((addr >>> 12) & (PTRS_PER_PTE - 1));
        if (t[PMD_SLOT] != 0 && ((t[i] ^ pte) & ~SPLIT_NEUTRAL) != 0) {
            t[PMD_SLOT] = 0; // __split_huge_pmd()
        }
        t[i] = pte;
    }

    /** Like {@link #set} but never splits: for changes the kernel applies to the whole huge PMD at once. */
    void setKeepHuge(long addr, long pte) {
        long[] t = tables.get(addr >>> 21);
        if (t == null) {
            set(addr, pte);
            return;
        }
        t[(int) ((addr >>> 12) & (PTRS_PER_PTE - 1))] = pte;
    }

    /** {@code pmd_none()}: no PTE table (and no huge leaf) for the 2 MiB block holding addr. */
    public boolean pmdNone(long addr) {
        return !tables.containsKey(addr >>> 21);
    }

    /** {@code pmd_trans_huge()}: the block holding addr is one PMD-mapped THP. */
    public boolean isTransHuge(long addr) {
        long[] t = tables.get(addr >>> 21);
        return t != null && t[PMD_SLOT] != 0;
    }

    /** Marks the (fully populated) block holding addr as one PMD-mapped THP. */
    void setTransHuge(long addr) {
        long[] t = tables.get(addr >>> 21);
        if (t != null) {
            t[PMD_SLOT] = PMD_TRANS_HUGE;
        }
    }

    /** {@code pmd_clear()}: drops the whole PTE table of the block holding addr (its entries must be released). */
    void dropTable(long addr) {
        tables.remove(addr >>> 21);
    }

    /** {@code split_huge_pmd()} of the block holding addr, if it is huge. */
    void splitHuge(long addr) {
        long[] t = tables.get(addr >>> 21);
        if (t != null) {
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
            if (from > 0 || to < PTRS_PER_PTE) {
                t[PMD_SLOT] = 0; // change_pmd_range(): a partial range splits the huge PMD
            }
            for (int i = from; i < to; i++) {
                if (t[i] != Pte.NONE) {
                    t[i] = op.applyAsLong(t[i]);
                }
            }
        }
    }

    /** Sets every none entry in [start, end), one per {@code step} bytes, to {@code value} (allocating tables). */
    public void fillNone(long start, long end, long step, long value) {
        int stride = (int) Math.max(1, step >>> 12);
        for (long a = start; a < end; ) {
            long key = a >>> 21;
            long[] t = tables.computeIfAbsent(key, k -> newTable());
            long tableEnd = Math.min(end, (key + 1) << 21);
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
        tables.subMap(start >>> 21, true, (end - 1) >>> 21, true).entrySet().removeIf(e -> {
            long[] t = e.getValue();
            for (int i = 0; i < PTRS_PER_PTE; i++) {
                if (t[i] != Pte.NONE) {
                    return false;
                }
            }
            return true;
        });
    }

    public int tableCount() {
        return tables.size();
    }
}
