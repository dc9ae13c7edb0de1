package io.uffdemu.server.mm;

import java.util.Map;
import java.util.TreeMap;

/**
 * The page tables of one mm ({@code pgd_t *mm->pgd}). The PGD/P4D/PUD/PMD levels are folded into one
 * ordered map from the PMD index ({@code addr >> 21}) to a PTE table of 512 encoded {@link Pte} words, so
 * an unpopulated range of any size costs nothing and a walk over a range visits only populated tables.
 * Hugetlb leaves sit in the slot of the huge page's first 4 KiB page with {@link Pte#HUGE} set.
 * Guarded by the kernel lock.
 */
public final class PageTable {
    private static final int PTRS_PER_PTE = 512;
    final TreeMap<Long, long[]> tables = new TreeMap<>();

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
            t = new long[PTRS_PER_PTE];
            tables.put(key, t);
        }
        t[(int) ((addr >>> 12) & (PTRS_PER_PTE - 1))] = pte;
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
            long[] t = tables.computeIfAbsent(key, k -> new long[PTRS_PER_PTE]);
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
            for (long p : e.getValue()) {
                if (p != Pte.NONE) {
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
