package io.uffdemu.server.conformance;

import io.uffdemu.server.mm.Linux;

/** The memory types of the selftests' {@code mem_types}: how a scenario's mapping is created. */
public enum MemType {
    ANON(false, false, false),
    SHMEM(true, true, false),
    SHMEM_PRIVATE(true, false, false),
    HUGETLB(true, true, true),
    HUGETLB_PRIVATE(true, false, true);

    final boolean file;
    final boolean shared;
    final boolean hugetlb;

    MemType(boolean file, boolean shared, boolean hugetlb) {
        this.file = file;
        this.shared = shared;
        this.hugetlb = hugetlb;
    }

    public long pageSize() {
        return hugetlb ? Linux.PMD_SIZE : Linux.PAGE_SIZE;
    }

    public boolean anon() {
        return !file;
    }

    public boolean shmem() {
        return file && !hugetlb;
    }

    public boolean hugetlb() {
        return hugetlb;
    }

    public boolean shared() {
        return shared;
    }

    public static final java.util.Set<MemType> ALL = java.util.EnumSet.allOf(MemType.class);
    public static final java.util.Set<MemType> ANON_ONLY = java.util.EnumSet.of(ANON);
    public static final java.util.Set<MemType> FILE = java.util.EnumSet.of(SHMEM, SHMEM_PRIVATE, HUGETLB,
            HUGETLB_PRIVATE);
    public static final java.util.Set<MemType> SHARED_FILE = java.util.EnumSet.of(SHMEM, HUGETLB);
    public static final java.util.Set<MemType> MAIN = java.util.EnumSet.of(ANON, SHMEM, HUGETLB);
}
