package io.uffdemu.server.backend.emulated;

import io.uffdemu.server.backend.BackendStatus;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.ProcessInfo;
import io.uffdemu.server.backend.VmaInfo;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.AccessResult;
import io.uffdemu.server.mm.Kernel;
import io.uffdemu.server.mm.KernelProfile;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.Linux;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.MemCgroup;
import io.uffdemu.server.mm.Pagemap;
import io.uffdemu.server.mm.Task;
import io.uffdemu.server.mm.UffdMsg;
import io.uffdemu.server.mm.Userfaultfd;
import io.uffdemu.server.mm.Vma;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** The emulated backend: adapts the kernel model in {@code io.uffdemu.server.mm} to the SPI. */
public final class EmulatedBackend implements MemoryBackend {
    private final Kernel kernel;
    private volatile MemCgroup.Limits tenantLimits = MemCgroup.Limits.UNLIMITED;

    public EmulatedBackend(Kernel.Config config) {
        this.kernel = new Kernel(config);
    }

    /**
     * Memory cgroups for tenants: each owner tag gets its own child memcg of the root with {@code perTenant}
     * limits (applied when the tenant's first process is created); the root memcg gets {@code global}.
     */
    public EmulatedBackend withMemcgLimits(MemCgroup.Limits perTenant, MemCgroup.Limits global) {
        this.tenantLimits = perTenant;
        kernel.setMemcgLimits(kernel.rootMemcg(), global);
        return this;
    }

    /** The memcg of an owner tag (tenant), created on first use. */
    public MemCgroup memcgOf(String owner) {
        return kernel.memcg(owner, tenantLimits);
    }

    /**
     * Runs a call that may allocate frames: an ENOMEM / ENOSPC that a memcg's limit caused (not the machine's
     * exhaustion) leaves as a quota failure, so the edge can say RESOURCE_EXHAUSTED for the tenant's limit.
     */
    private <T> T charged(java.util.function.Supplier<T> call) {
        try {
            return call.get();
        } catch (LinuxException e) {
            throw quotaAware(e);
        }
    }

    /** {@code e}, re-marked as a quota failure when this thread's last charge was refused by a memcg limit. */
    private LinuxException quotaAware(LinuxException e) {
        if (!e.isQuota() && kernel.lastChargeRefusal() != null) {
            if (e.errno() == Errno.ENOMEM || e.errno() == Errno.ENOSPC) {
                return e.asQuota();
            }
            if (e.errno() == Errno.EFAULT) { // GUP (MADV_POPULATE_*) on VM_FAULT_OOM: -ENOMEM
                return LinuxException.quota(Errno.ENOMEM, e.call(), "tenant memory limit (memcg) reached");
            }
        }
        return e;
    }

    private void chargedRun(Runnable call) {
        charged(() -> {
            call.run();
            return null;
        });
    }

    public Kernel kernel() {
        return kernel;
    }

    @Override
    public String name() {
        return "emulated";
    }

    /** Resolutions only take the kernel lock, which no call holds while it waits (faults and events drop it). */
    @Override
    public boolean resolutionsMayBlock() {
        return false;
    }

    @Override
    public BackendStatus status() {
        KernelProfile p = kernel.profile();
        return new BackendStatus("emulated", true, "", p.apiFeatures(), p.apiIoctls() | p.rangeIoctls(),
                p.release());
    }

    @Override
    public ProcessInfo createProcess(String name, int uid, boolean capSysPtrace, String owner) {
        return info(kernel.createProcess(name, uid, capSysPtrace, owner, owner == null ? null : memcgOf(owner)));
    }

    /** Under the kernel lock: another thread (a syscall resumed after its uffd event was read) may change the mm. */
    private ProcessInfo info(Task t) {
        return kernel.locked(() -> {
            var mm = t.mm();
            return new ProcessInfo(t.pid(), t.name(), t.uid(), t.capSysPtrace(), t.parentPid(),
                    mm.rssAnonPages() * Linux.PAGE_SIZE, mm.rssShmemPages() * Linux.PAGE_SIZE,
                    mm.swapEntries() * Linux.PAGE_SIZE, mm.vmaList().size(),
                    t.fdNumbers().stream().sorted().toList(), t.owner());
        });
    }

    @Override
    public ProcessInfo fork(int pid) {
        return info(charged(() -> kernel.fork(pid)));
    }

    @Override
    public void exit(int pid) {
        kernel.exit(pid);
    }

    @Override
    public List<ProcessInfo> processes() {
        return kernel.tasks().stream().map(this::info).toList();
    }

    @Override
    public ProcessInfo process(int pid) {
        return info(kernel.task(pid));
    }

    @Override
    public List<VmaInfo> maps(int pid) {
        List<VmaInfo> out = new ArrayList<>();
        for (Vma v : kernel.maps(pid)) {
            String perms = ((v.prot() & Linux.PROT_READ) != 0 ? "r" : "-")
                    + ((v.prot() & Linux.PROT_WRITE) != 0 ? "w" : "-")
                    + ((v.prot() & Linux.PROT_EXEC) != 0 ? "x" : "-") + (v.shared() ? "s" : "p");
            VmaInfo.MemoryType type = v.isAnonymous() ? VmaInfo.MemoryType.ANON
                    : v.isHugetlb() ? VmaInfo.MemoryType.HUGETLB : VmaInfo.MemoryType.SHMEM;
            String path = v.inode() == null ? "" : v.inode().path();
            // show_map_vma(): the offset column is the file offset, 0 for an anonymous VMA (whose vm_pgoff is its address)
            out.add(new VmaInfo(v.start(), v.end(), perms, v.isAnonymous() ? 0 : v.offset(), path, type, v.uffdFlags(),
                    v.pageSize()));
        }
        return out;
    }

    @Override
    public long[] readPagemap(int pid, long start, int pages) {
        return kernel.pagemap.read(pid, start, pages);
    }

    @Override
    public Pagemap.ScanResult pagemapScan(int pid, Pagemap.ScanArg arg) {
        return kernel.pagemap.scan(pid, arg);
    }

    @Override
    public AccessResult access(int pid, long addr, int len, boolean write, byte[] data, AccessMode mode,
            long deadlineNanos) throws InterruptedException {
        return kernel.faults.access(pid, addr, len, write, data, mode, deadlineNanos);
    }

    @Override
    public long mmap(int pid, long addr, long len, int prot, int flags, int fd, long offset) {
        return charged(() -> kernel.vm.mmap(pid, addr, len, prot, flags, fd, offset));
    }

    @Override
    public void munmap(int pid, long addr, long len) {
        kernel.vm.munmap(pid, addr, len);
    }

    @Override
    public long mremap(int pid, long oldAddr, long oldLen, long newLen, int flags, long newAddr) {
        return charged(() -> kernel.vm.mremap(pid, oldAddr, oldLen, newLen, flags, newAddr));
    }

    @Override
    public void mprotect(int pid, long addr, long len, int prot) {
        kernel.vm.mprotect(pid, addr, len, prot);
    }

    @Override
    public void madvise(int pid, long addr, long len, int advice) {
        if (advice == Linux.MADV_GUARD_INSTALL) {
            kernel.checkPgtableRoom(pid, len, "madvise"); // guard markers need page tables for the whole range
        }
        chargedRun(() -> kernel.vm.madvise(pid, addr, len, advice));
    }

    @Override
    public int memfdCreate(int pid, String name, int flags) {
        return kernel.memfdCreate(pid, name, flags);
    }

    @Override
    public void ftruncate(int pid, int fd, long length) {
        kernel.ftruncate(pid, fd, length);
    }

    @Override
    public void fallocate(int pid, int fd, int mode, long offset, long len) {
        chargedRun(() -> kernel.fallocate(pid, fd, mode, offset, len));
    }

    @Override
    public byte[] pread(int pid, int fd, long offset, int len) {
        return kernel.pread(pid, fd, offset, len);
    }

    @Override
    public long pwrite(int pid, int fd, long offset, byte[] data) {
        return charged(() -> kernel.pwrite(pid, fd, offset, data));
    }

    @Override
    public void close(int pid, int fd) {
        kernel.close(pid, fd);
    }

    @Override
    public int pidfdGetfd(int pid, int targetPid, int targetFd) {
        return kernel.pidfdGetfd(pid, targetPid, targetFd);
    }

    @Override
    public io.uffdemu.server.mm.OpenFile memfdGet(int pid, int fd) {
        return kernel.fgetMemfd(pid, fd, "GrantMemfd");
    }

    @Override
    public int memfdInstall(int pid, io.uffdemu.server.mm.OpenFile file) {
        return kernel.receiveFd(pid, file, "AcceptMemfdGrant");
    }

    @Override
    public void memfdPut(io.uffdemu.server.mm.OpenFile file) {
        kernel.fput(file);
    }

    @Override
    public boolean closeIfSame(int pid, int fd, io.uffdemu.server.mm.OpenFile file) {
        return kernel.closeIfSame(pid, fd, file);
    }

    @Override
    public int userfaultfd(int pid, int flags, boolean dev) {
        return kernel.uffd.userfaultfd(pid, flags, dev);
    }

    @Override
    public Userfaultfd.ApiResult uffdApi(int pid, int fd, long api, long features) {
        return kernel.uffd.api(pid, fd, api, features);
    }

    @Override
    public long uffdRegister(int pid, int fd, long start, long len, long mode) {
        return kernel.uffd.register(pid, fd, start, len, mode);
    }

    @Override
    public void uffdUnregister(int pid, int fd, long start, long len) {
        kernel.uffd.unregister(pid, fd, start, len);
    }

    @Override
    public long uffdCopy(int pid, int fd, long dst, byte[] src, long mode) {
        return charged(() -> kernel.uffd.copy(pid, fd, dst, src, mode));
    }

    /** The ops under one acquisition of the kernel lock ({@link Userfaultfd#copyBatch}), each as uffdCopy. */
    @Override
    public void uffdCopyBatch(List<Userfaultfd.CopyOp> ops, Userfaultfd.CopyOutcome outcome) {
        kernel.uffd.copyBatch(ops, new Userfaultfd.CopyOutcome() {
            @Override
            public void copied(int index, long bytes) {
                outcome.copied(index, bytes);
            }

            @Override
            public void failed(int index, LinuxException e) {
                outcome.failed(index, quotaAware(e)); // still under the lock: the op's own charge refusal
            }
        });
    }

    @Override
    public long uffdZeropage(int pid, int fd, long start, long len, long mode) {
        return charged(() -> kernel.uffd.zeropage(pid, fd, start, len, mode));
    }

    @Override
    public long uffdContinue(int pid, int fd, long start, long len, long mode) {
        return charged(() -> kernel.uffd.continue_(pid, fd, start, len, mode));
    }

    @Override
    public void uffdWriteprotect(int pid, int fd, long start, long len, long mode) {
        kernel.uffd.writeprotect(pid, fd, start, len, mode);
    }

    @Override
    public void uffdWake(int pid, int fd, long start, long len) {
        kernel.uffd.wake(pid, fd, start, len);
    }

    @Override
    public long uffdPoison(int pid, int fd, long start, long len, long mode) {
        return kernel.uffd.poison(pid, fd, start, len, mode);
    }

    @Override
    public long uffdMove(int pid, int fd, long dst, long src, long len, long mode) {
        return charged(() -> kernel.uffd.move(pid, fd, dst, src, len, mode));
    }

    @Override
    public List<UffdMsg> uffdRead(int pid, int fd, int max, long deadlineNanos) throws InterruptedException {
        return kernel.uffd.read(pid, fd, max, deadlineNanos);
    }

    @Override
    public io.uffdemu.server.mm.UffdFdinfo.Description uffdDescribe(int pid, int fd) {
        return io.uffdemu.server.mm.UffdFdinfo.describe(kernel, pid, fd);
    }

    @Override
    public List<io.uffdemu.server.mm.UffdFdinfo.Description> uffdList(int pid) {
        return io.uffdemu.server.mm.UffdFdinfo.list(kernel, pid);
    }

    @Override
    public String sysctl(String name) {
        return kernel.sysctl(name);
    }

    @Override
    public void setSysctl(String name, String value) {
        kernel.setSysctl(name, value);
    }

    @Override
    public Map<String, Long> meminfo() {
        return kernel.meminfo();
    }
}
