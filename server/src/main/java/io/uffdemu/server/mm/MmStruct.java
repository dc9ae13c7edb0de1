package io.uffdemu.server.mm;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * An address space: analogue of {@code struct mm_struct} ({@code include/linux/mm_types.h}) with its VMA
 * tree ({@code mm/vma.c}) and page tables. Guarded by the kernel lock (our {@code mmap_lock} and
 * {@code page_table_lock} are one lock, see {@link Kernel}).
 *
 * <p>Invariants (checked by {@link InvariantChecker}): VMAs are page aligned, non-overlapping and keyed by
 * start; every non-none PTE lies inside a VMA; the rss counters equal what the page tables map.
 */
public final class MmStruct {
    final TreeMap<Long, Vma> vmas = new TreeMap<>();
    final PageTable pt = new PageTable();
    /** For {@code vma_adjust_trans_huge()} on file-backed huge PMDs (a split zaps them); set at creation. */
    VmOps vm;
    /** Set at exit_mmap(): uffd calls on a ctx of this mm then fail with ESRCH / ENOMEM. */
    boolean dead;
    /** The owning task (for fd installation of FORK events and pid reporting). */
    Task owner;
    /** mm_counter MM_ANONPAGES / MM_SHMEMPAGES / MM_SWAPENTS, in 4 KiB pages. Mutated only by rss*(). */
    long rssAnon;
    long rssShmem;
    long swapEnts;

    /** {@code vma_lookup()}: the VMA containing addr, or null. */
    public Vma findVma(long addr) {
        Map.Entry<Long, Vma> e = vmas.floorEntry(addr);
        if (e == null || e.getValue().end <= addr) {
            return null;
        }
        return e.getValue();
    }

    /** VMAs intersecting [start, end), in order. */
    List<Vma> vmasIn(long start, long end) {
        List<Vma> out = new ArrayList<>();
        Map.Entry<Long, Vma> first = vmas.floorEntry(start);
        Long from = first != null && first.getValue().end > start ? first.getKey() : start;
        for (Vma v : vmas.subMap(from, true, end, false).values()) {
            if (v.end > start) {
                out.add(v);
            }
        }
        return out;
    }

    /** Splits so that a VMA boundary exists at addr ({@code split_vma()}). Returns the VMA starting at addr, if any. */
    Vma splitAt(long addr) {
        Vma v = findVma(addr);
        if (v == null || v.start == addr) {
            return v;
        }
        if (owner != null) {
            owner.memcg.checkMapCount("split_vma"); // __split_vma(): ENOMEM at vm.max_map_count
        }
        Vma tail = new Vma(this, addr, v.end, v.prot, v.shared, v.mayWrite, v.inode, v.offset + (addr - v.start),
                v.noreserve);
        tail.uffd = v.uffd;
        tail.uffdFlags = v.uffdFlags;
        tail.hugepageAdvice = v.hugepageAdvice;
        tail.nohugepageAdvice = v.nohugepageAdvice;
        if ((addr & (Linux.PMD_SIZE - 1)) != 0 && pt.isTransHuge(addr)) {
            // vma_adjust_trans_huge(): a huge PMD straddling the new boundary is split (a file one is zapped)
            if (v.isAnonymous() || vm == null) {
                pt.splitHuge(addr);
            } else {
                vm.zapHugePmdLocked(v, addr & ~(Linux.PMD_SIZE - 1));
            }
        }
        if (v.hugetlb && !v.shared) {
            long tailPages = (v.end - addr) / v.pageSize;
            long moved = Math.min(v.privateResv, tailPages);
            tail.privateResv = moved;
            v.privateResv -= moved;
            tail.resvMemcg = v.resvMemcg; // hugetlb_vm_op_open(): both halves share the resv_map and its charge
        }
        v.end = addr;
        vmas.put(addr, tail);
        if (v.inode != null) {
            v.inode.mappings.add(tail);
            v.inode.refs++;
        }
        return tail;
    }

    /** Splits at start and end so that [start, end) is covered by whole VMAs; returns them. */
    List<Vma> splitRange(long start, long end) {
        splitAt(start);
        splitAt(end);
        return vmasIn(start, end);
    }

    /** {@code vma_merge()} of compatible neighbours around [start, end). */
    void mergeAround(long start, long end) {
        Map.Entry<Long, Vma> e = vmas.floorEntry(start > 0 ? start - 1 : 0);
        Long key = e == null ? vmas.ceilingKey(start) : e.getKey();
        while (key != null && key <= end) {
            Vma v = vmas.get(key);
            Map.Entry<Long, Vma> nextE = vmas.higherEntry(key);
            if (nextE == null) {
                break;
            }
            Vma n = nextE.getValue();
            if (canMerge(v, n)) {
                vmas.remove(n.start);
                v.end = n.end;
                v.privateResv += n.privateResv;
                if (n.inode != null) {
                    n.inode.mappings.remove(n);
                    n.inode.refs--;
                }
                continue;
            }
            key = nextE.getKey();
        }
    }

    /**
     * is_mergeable_vma() and can_merge_remove_vma(): a merge that would remove a VMA whose vm_ops has a
     * close hook is refused, and hugetlb VMAs have one (hugetlb_vm_op_close), so split hugetlb VMAs stay split.
     * vm_pgoff must continue across the boundary for anonymous VMAs too (their pgoff is the address they were
     * mapped at: a VMA moved by mremap keeps its old one). The anon_vma compatibility check is not modelled.
     */
    private static boolean canMerge(Vma a, Vma b) {
        return a.end == b.start && !a.hugetlb && !b.hugetlb && a.prot == b.prot && a.shared == b.shared && a.mayWrite == b.mayWrite
                && a.inode == b.inode && a.uffd == b.uffd && a.uffdFlags == b.uffdFlags
                && a.hugepageAdvice == b.hugepageAdvice && a.nohugepageAdvice == b.nohugepageAdvice && a.noreserve == b.noreserve
                && a.offset + (a.end - a.start) == b.offset;
    }

    void rssAdd(Vma v, long pfnFlags, long pages) {
        if ((pfnFlags & FramePool.PG_ANON) != 0) {
            rssAnon += pages;
        } else {
            rssShmem += pages;
        }
    }

    public long rssAnonPages() {
        return rssAnon;
    }

    public long rssShmemPages() {
        return rssShmem;
    }

    public long swapEntries() {
        return swapEnts;
    }

    public List<Vma> vmaList() {
        return new ArrayList<>(vmas.values());
    }

    public PageTable pageTable() {
        return pt;
    }
}
