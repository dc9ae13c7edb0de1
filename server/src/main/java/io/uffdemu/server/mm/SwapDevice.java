package io.uffdemu.server.mm;

import java.util.HashMap;
import java.util.Map;

/**
 * An emulated swap device: analogue of a {@code swap_info_struct} with its swap map ({@code mm/swapfile.c}).
 * Slots hold page contents and a swap count (how many PTEs or page-cache entries refer to the slot).
 * Guarded by the kernel lock.
 */
public final class SwapDevice {
    private final long capacityPages;
    private final Map<Long, byte[]> contents = new HashMap<>();
    private final Map<Long, Integer> counts = new HashMap<>();
    /** The memcg each slot is charged to ({@code swap_cgroup}); absent for uncharged slots. */
    private final Map<Long, MemCgroup> owners = new HashMap<>();
    private long nextSlot = 1;
    private final java.util.ArrayDeque<Long> freeSlots = new java.util.ArrayDeque<>();

    public SwapDevice(long capacityBytes) {
        this.capacityPages = capacityBytes / Linux.PAGE_SIZE;
    }

    public long capacityPages() {
        return capacityPages;
    }

    public long usedPages() {
        return counts.size();
    }

    /** {@code folio_alloc_swap()} + writeout: a new slot with count 1; -1 when swap is full or absent. */
    public long swapOut(byte[] page) {
        return swapOut(page, null);
    }

    /**
     * {@code folio_alloc_swap()} with {@code mem_cgroup_try_charge_swap()}: the slot is charged to {@code memcg}
     * (the folio's); -1 when swap is full or the memcg is at its {@code memory.swap.max}.
     */
    public long swapOut(byte[] page, MemCgroup memcg) {
        if (counts.size() >= capacityPages) {
            return -1;
        }
        if (memcg != null && !memcg.tryChargeSwap()) {
            return -1;
        }
        long slot = freeSlots.isEmpty() ? nextSlot++ : freeSlots.pop();
        if (memcg != null) {
            owners.put(slot, memcg);
        }
        contents.put(slot, page);
        counts.put(slot, 1);
        return slot;
    }

    /** The memcg of every charged slot (for the invariant checker). */
    void forEachCharged(java.util.function.Consumer<MemCgroup> v) {
        owners.values().forEach(v);
    }

    public byte[] read(long slot) {
        byte[] b = contents.get(slot);
        if (b == null) {
            throw new IllegalStateException("read of free swap slot " + slot);
        }
        return b;
    }

    /** {@code swap_duplicate()}. */
    public void dup(long slot) {
        counts.merge(slot, 1, Integer::sum);
    }

    /** {@code swap_free()}. */
    public void free(long slot) {
        Integer c = counts.get(slot);
        if (c == null) {
            throw new IllegalStateException("free of free swap slot " + slot);
        }
        if (c == 1) {
            counts.remove(slot);
            contents.remove(slot);
            MemCgroup cg = owners.remove(slot);
            if (cg != null) {
                cg.unchargeSwap();
            }
            freeSlots.push(slot);
        } else {
            counts.put(slot, c - 1);
        }
    }

    public int count(long slot) {
        return counts.getOrDefault(slot, 0);
    }
}
