package io.uffdemu.server.mm;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeMap;

/**
 * A memfd (or MAP_SHARED anonymous) file: analogue of the shmem / hugetlbfs {@code struct inode} with its
 * {@code address_space} ({@code mm/shmem.c}, {@code fs/hugetlbfs/inode.c}).
 *
 * <p>{@link #cache} is the page cache: file page index (in units of {@link #pageSize}) to an entry that is
 * either a frame number ({@code >= 0}) or a swapped-out shmem page ({@code -slot - 1}). {@link #mappings} is
 * {@code i_mmap}: every VMA, in any process, that maps this file. Guarded by the kernel lock.
 */
public final class Inode {
    final long ino;
    final String name;
    /** 4 KiB for shmem, the huge page size for hugetlbfs. */
    final long pageSize;
    final boolean hugetlb;
    /** i_size in bytes. */
    long size;
    final TreeMap<Long, Long> cache = new TreeMap<>();
    final List<Vma> mappings = new ArrayList<>();
    /** hugetlbfs resv_map: indices with a reserved (not yet allocated) huge page. */
    final Set<Long> reserved = new HashSet<>();
    /**
     * The hugetlb.rsvd charges of the resv_map's regions ({@code file_region->reservation_counter}): index to the
     * memcg whose mmap reserved it. Unlike {@link #reserved}, an entry stays when a fault consumes the reservation
     * and goes only with the region ({@code region_del()}: truncate, hole punch, eviction).
     */
    final TreeMap<Long, MemCgroup> resvCharged = new TreeMap<>();
    /** Open file descriptions + mappings referring to this inode. */
    int refs;
    /** MAP_SHARED|MAP_ANONYMOUS backing object: not reachable through any fd. */
    final boolean anonShared;

    Inode(long ino, String name, long pageSize, boolean hugetlb, boolean anonShared) {
        this.ino = ino;
        this.name = name;
        this.pageSize = pageSize;
        this.hugetlb = hugetlb;
        this.anonShared = anonShared;
    }

    static boolean isSwapEntry(long entry) {
        return entry < 0;
    }

    static long swapSlot(long entry) {
        return -entry - 1;
    }

    static long swapEntry(long slot) {
        return -slot - 1;
    }

    public String path() {
        if (anonShared) {
            return hugetlb ? "/anon_hugepage (deleted)" : "/dev/zero (deleted)";
        }
        return "/memfd:" + name + " (deleted)";
    }

    public long ino() {
        return ino;
    }
}
