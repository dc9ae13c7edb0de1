/**
 * The emulation core: a model of the Linux 6.18 memory manager with userfaultfd, free of Spring, gRPC and
 * protobuf. Entry points are named after syscalls and ioctls; errors are errnos ({@link
 * io.uffdemu.server.mm.LinuxException}).
 *
 * <h2>Linux first</h2>
 * A process owns an {@code mm_struct}: a tree of VMAs (each a range with protections, flags and, for file
 * mappings, an inode and offset) and page tables whose entries (PTEs) say, per page, where the page is: present
 * in a physical frame, swapped out (a swap entry), not there at all ({@code pte_none}), or a <em>PTE marker</em>:
 * a non-present entry that a fault treats like none but that still carries information. Since 5.19 uffd-wp
 * keeps its "write-protected" bit in a marker when a file-backed PTE is zapped, so protection survives
 * MADV_DONTNEED, hole punching and swap-out. Protection is per PTE (per mapping), never per page: two mappings
 * of one shmem page can differ.
 *
 * <p>A userfaultfd context is registered on VMAs in MISSING, WP and/or MINOR mode. A fault the mode covers
 * queues a message on the uffd and parks the faulting thread until a handler resolves the page (COPY,
 * ZEROPAGE, CONTINUE, WRITEPROTECT, MOVE, POISON) and wakes it. Layout changes (fork, mremap, madvise
 * REMOVE, munmap) become events that block the changing thread until read; while one is in flight the
 * filling ioctls fail with EAGAIN.
 *
 * <h2>Kernel to emulator mapping</h2>
 * <table>
 * <caption>kernel structures and their emulator types</caption>
 * <tr><th>kernel</th><th>here</th><th>notes</th></tr>
 * <tr><td>{@code struct mm_struct}</td><td>{@link io.uffdemu.server.mm.MmStruct}</td><td>VMA tree + page table + rss counters</td></tr>
 * <tr><td>{@code struct vm_area_struct}</td><td>{@link io.uffdemu.server.mm.Vma}</td><td>VM_SHARED, VM_MAYWRITE, VM_UFFD_* as {@code uffdFlags}, {@code vm_userfaultfd_ctx} as {@code uffd}</td></tr>
 * <tr><td>{@code pgd/p4d/pud/pmd/pte}</td><td>{@link io.uffdemu.server.mm.PageTable}</td><td>upper levels folded into an ordered map of 512-entry PTE tables; all-uffd-wp-marker tables shared copy-on-write</td></tr>
 * <tr><td>{@code pte_t}, swap entries, PTE markers</td><td>{@link io.uffdemu.server.mm.Pte}</td><td>one encoded {@code long}; markers UFFD_WP / POISONED / GUARD</td></tr>
 * <tr><td>{@code struct page} / {@code folio}, buddy allocator</td><td>{@link io.uffdemu.server.mm.FramePool}</td><td>refcount, mapcount, flags per frame; contents in off-heap slabs, allocated on first write</td></tr>
 * <tr><td>{@code struct address_space} (shmem, hugetlbfs)</td><td>{@link io.uffdemu.server.mm.Inode}</td><td>page cache index → frame or swap slot; {@code i_mmap} list</td></tr>
 * <tr><td>{@code struct hstate}</td><td>{@link io.uffdemu.server.mm.HugetlbPool}</td><td>nr_hugepages, free, reserved</td></tr>
 * <tr><td>{@code swap_info_struct}</td><td>{@link io.uffdemu.server.mm.SwapDevice}</td><td>slots with swap counts</td></tr>
 * <tr><td>{@code struct mem_cgroup}, {@code page_counter}, hugetlb cgroup</td><td>{@link io.uffdemu.server.mm.MemCgroup}</td><td>mm/memcontrol.c: one per tenant under a root; frames ({@code folio->memcg_data} in FramePool), swap slots and page tables charged; reclaim of the memcg's own anon pages before ENOMEM / SIGBUS; per-tenant object counts</td></tr>
 * <tr><td>{@code struct task_struct} + {@code files_struct}</td><td>{@link io.uffdemu.server.mm.Task}</td><td>pid, credentials (uid, CAP_SYS_PTRACE), fd table</td></tr>
 * <tr><td>{@code struct file}</td><td>{@link io.uffdemu.server.mm.OpenFile}</td><td>memfd or userfaultfd, shared by dup'd fds</td></tr>
 * <tr><td>{@code struct userfaultfd_ctx}</td><td>{@link io.uffdemu.server.mm.UserfaultfdCtx}</td><td>features, pending/waiting faults, events, mmap_changing</td></tr>
 * <tr><td>{@code struct uffd_msg}</td><td>{@link io.uffdemu.server.mm.UffdMsg}</td><td>sealed: Pagefault, Fork, Remap, Remove, Unmap</td></tr>
 * <tr><td>{@code handle_mm_fault()}, {@code handle_userfault()}</td><td>{@link io.uffdemu.server.mm.Faults}</td><td>mm/memory.c, mm/shmem.c, mm/hugetlb.c, fs/userfaultfd.c</td></tr>
 * <tr><td>mmap, munmap, mremap, mprotect, madvise, fork</td><td>{@link io.uffdemu.server.mm.VmOps}</td><td>mm/mmap.c, mm/vma.c, mm/mremap.c, mm/mprotect.c, mm/madvise.c</td></tr>
 * <tr><td>UFFDIO_* ioctls, read(2), release</td><td>{@link io.uffdemu.server.mm.Userfaultfd}</td><td>fs/userfaultfd.c, mm/userfaultfd.c</td></tr>
 * <tr><td>release and config (UFFD_API_FEATURES, range ioctls, vma_can_userfault(), CONFIG_PTE_MARKER_UFFD_WP)</td><td>{@link io.uffdemu.server.mm.KernelProfile}</td><td>include/uapi/linux/userfaultfd.h, include/linux/userfaultfd_k.h, fs/userfaultfd.c</td></tr>
 * <tr><td>/proc/PID/pagemap, PAGEMAP_SCAN</td><td>{@link io.uffdemu.server.mm.Pagemap}</td><td>fs/proc/task_mmu.c</td></tr>
 * </table>
 *
 * <h2>Locking</h2>
 * One lock ({@code Kernel.lock}) guards all of the core: it stands for {@code mmap_lock}, the page-table
 * locks, the page-cache locks and the uffd ctx locks. Methods named {@code ...Locked} need it held. No thread
 * blocks while holding it: waiting for a userfault or for an event to be read happens after releasing it, and
 * the fault is retried from scratch afterwards, as the kernel does with {@code VM_FAULT_RETRY}.
 *
 * <h2>Invariants</h2>
 * Checked by {@code InvariantChecker} when {@code Kernel.Config.checkInvariants} is on: VMAs page aligned and
 * disjoint; a VMA has a uffd ctx iff it has a uffd mode bit; every non-none PTE lies in a VMA; rss counters equal
 * what the page tables map; each frame's mapcount equals the PTEs mapping it; hugetlb pools consistent; every
 * write to a uffd-wp PTE produced a WP message or a WP_ASYNC clear (the wp-write ledger, see
 * {@code Faults.faultLocked}); each memcg's memory / hugetlb / swap counters equal the frames and swap slots
 * charged to it and below it; the shared all-markers PTE table was never written.
 */
package io.uffdemu.server.mm;
