package io.uffdemu.server.mm;

/**
 * One hstate: the pool of huge pages of one size ({@code mm/hugetlb.c: struct hstate}). {@code nr_hugepages}
 * is set through the emulated sysctl; {@code resv} counts pages promised to mappings (reservations taken at
 * mmap time, {@code hugetlb_reserve_pages()}) and not yet faulted in. Guarded by the kernel lock.
 */
public final class HugetlbPool {
    final long pageSize;
    final int order;
    long nrHugepages;
    long free;
    long resv;

    HugetlbPool(long pageSize) {
        this.pageSize = pageSize;
        this.order = Long.numberOfTrailingZeros(pageSize) - Linux.PAGE_SHIFT;
    }

    public long pageSize() {
        return pageSize;
    }

    public long nrHugepages() {
        return nrHugepages;
    }

    public long freeHugepages() {
        return free;
    }

    public long resvHugepages() {
        return resv;
    }

    /** Available for new reservations or unreserved faults. */
    long available() {
        return free - resv;
    }

    /** Sets nr_hugepages; the pool cannot shrink below the pages in use. */
    void setNr(long nr) {
        long inUse = nrHugepages - free;
        long newNr = Math.max(nr, inUse);
        free = newNr - inUse;
        nrHugepages = newNr;
    }
}
