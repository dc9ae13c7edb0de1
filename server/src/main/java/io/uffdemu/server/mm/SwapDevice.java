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
        if (counts.size() >= capacityPages) {
            return -1;
        }
        long slot = freeSlots.isEmpty() ? nextSlot++ : freeSlots.pop();
        contents.put(slot, page);
        counts.put(slot, 1);
        return slot;
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
            freeSlots.push(slot);
        } else {
            counts.put(slot, c - 1);
        }
    }

    public int count(long slot) {
        return counts.getOrDefault(slot, 0);
    }
}
