package io.uffdemu.server.mm;

/**
 * A mapping: analogue of {@code struct vm_area_struct} ({@code include/linux/mm_types.h}). Mutable, guarded
 * by the kernel lock; split and merged by {@link MmStruct}.
 *
 * <p>Memory type: private anonymous when {@link #inode} is null; otherwise a shmem or hugetlbfs file (a
 * MAP_SHARED anonymous mapping is backed by an internal shmem inode, as {@code shmem_zero_setup()} does).
 * {@link #shared} is VM_SHARED. {@link #uffdFlags} holds VM_UFFD_MISSING / VM_UFFD_WP / VM_UFFD_MINOR (the
 * UFFDIO_REGISTER_MODE_* bits); {@link #uffd} is {@code vm_userfaultfd_ctx}: non-null iff a mode bit is set.
 */
public final class Vma {
    final MmStruct mm;
    long start;
    long end;
    int prot;
    final boolean shared;
    /** VM_MAYWRITE: a shared mapping of a read-only fd lacks it. */
    final boolean mayWrite;
    final Inode inode;
    /** File offset of {@link #start}, in bytes. */
    long offset;
    final boolean hugetlb;
    /** Page size of the mapping: 4 KiB, or the huge page size for hugetlb. */
    final long pageSize;
    UserfaultfdCtx uffd;
    int uffdFlags;
    /** VM_HUGEPAGE (MADV_HUGEPAGE). */
    boolean hugepageAdvice;
    /** VM_NOHUGEPAGE (MADV_NOHUGEPAGE). */
    boolean nohugepageAdvice;
    /** MAP_NORESERVE hugetlb mapping. */
    final boolean noreserve;
    /** Private hugetlb reservation left (pages promised and not yet faulted in). */
    long privateResv;
    /**
     * A private hugetlb mapping that owns its reservation (HPAGE_RESV_OWNER): the memcg its resv_map is charged to
     * (hugetlb.rsvd, the VMA's whole length until {@code hugetlb_vm_op_close()}); null otherwise.
     */
    MemCgroup resvMemcg;

    Vma(MmStruct mm, long start, long end, int prot, boolean shared, boolean mayWrite, Inode inode, long offset,
            boolean noreserve) {
        this.mm = mm;
        this.start = start;
        this.end = end;
        this.prot = prot;
        this.shared = shared;
        this.mayWrite = mayWrite;
        this.inode = inode;
        this.offset = offset;
        this.hugetlb = inode != null && inode.hugetlb;
        this.pageSize = hugetlb ? inode.pageSize : Linux.PAGE_SIZE;
        this.noreserve = noreserve;
    }

    Vma copyFor(MmStruct other) {
        Vma v = new Vma(other, start, end, prot, shared, mayWrite, inode, offset, noreserve);
        v.uffd = uffd;
        v.uffdFlags = uffdFlags;
        v.hugepageAdvice = hugepageAdvice;
        v.nohugepageAdvice = nohugepageAdvice;
        return v;
    }

    public boolean isAnonymous() {
        return inode == null;
    }

    public boolean isShmem() {
        return inode != null && !inode.hugetlb;
    }

    public boolean isHugetlb() {
        return hugetlb;
    }

    /** File page index (in units of the inode page size) of the page at {@code addr}. */
    long pgoff(long addr) {
        return (offset + (addr - start)) / pageSize;
    }

    boolean uffdMissing() {
        return (uffdFlags & Linux.UFFDIO_REGISTER_MODE_MISSING) != 0;
    }

    /** {@code userfaultfd_wp(vma)}. */
    boolean uffdWp() {
        return (uffdFlags & Linux.UFFDIO_REGISTER_MODE_WP) != 0;
    }

    boolean uffdMinor() {
        return (uffdFlags & Linux.UFFDIO_REGISTER_MODE_MINOR) != 0;
    }

    /** {@code userfaultfd_wp_async(vma)}. */
    boolean uffdWpAsync() {
        return uffdWp() && uffd != null && (uffd.features & Linux.UFFD_FEATURE_WP_ASYNC) != 0;
    }

    /** {@code userfaultfd_wp_use_markers()}: file-backed wp always, anon with WP_UNPOPULATED. */
    boolean uffdWpUseMarkers() {
        if (!uffdWp()) {
            return false;
        }
        if (inode != null && shared) {
            return true;
        }
        if (hugetlb || isShmem()) {
            return true;
        }
        return (uffd.features & Linux.UFFD_FEATURE_WP_UNPOPULATED) != 0;
    }

    /** {@code vma_is_accessible()}: any of VM_READ, VM_WRITE, VM_EXEC. */
    boolean isAccessible() {
        return (prot & (Linux.PROT_READ | Linux.PROT_WRITE | Linux.PROT_EXEC)) != 0;
    }

    boolean canRead() {
        return (prot & Linux.PROT_READ) != 0;
    }

    boolean canWrite() {
        return (prot & Linux.PROT_WRITE) != 0;
    }

    public long start() {
        return start;
    }

    public long end() {
        return end;
    }

    public int prot() {
        return prot;
    }

    public boolean shared() {
        return shared;
    }

    public long offset() {
        return offset;
    }

    public long pageSize() {
        return pageSize;
    }

    public int uffdFlags() {
        return uffdFlags;
    }

    public Inode inode() {
        return inode;
    }

    @Override
    public String toString() {
        return String.format("%x-%x prot=%d %s uffd=%d", start, end, prot, shared ? "s" : "p", uffdFlags);
    }
}
