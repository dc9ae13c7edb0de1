package io.uffdemu.server.config;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.uffdemu.server.backend.BackendStatus;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.ProcessInfo;
import io.uffdemu.server.backend.VmaInfo;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.AccessResult;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.OpenFile;
import io.uffdemu.server.mm.Pagemap;
import io.uffdemu.server.mm.UffdFdinfo;
import io.uffdemu.server.mm.UffdMsg;
import io.uffdemu.server.mm.Userfaultfd;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The backend as the server sees it when metrics are on ({@link BackendMetrics#instrument}): every call goes
 * straight to the wrapped backend, and each uffd method (every {@code uffd*} method but {@code uffdRead}) counts
 * its result in {@code uffdemu.ioctls{ioctl, result}}: {@code ok} when it returns, the errno's name when it throws
 * a {@link LinuxException}; any other exception passes through uncounted. {@code uffdCopyBatch} counts each of
 * its ops as the UFFDIO_COPY it is. An explicit delegate rather than a
 * {@link java.lang.reflect.Proxy}: no {@code Method.invoke} and boxed arguments on the access and COPY paths
 * (docs/benchmarks.md item 11). {@code InstrumentedBackendTest} fails when a method of {@link MemoryBackend} is
 * not overridden here, default methods included (the backends override those).
 */
final class InstrumentedBackend implements MemoryBackend {
    private final MemoryBackend backend;
    private final IoctlMeters api;
    private final IoctlMeters register;
    private final IoctlMeters unregister;
    private final IoctlMeters copy;
    private final IoctlMeters zeropage;
    private final IoctlMeters cont;
    private final IoctlMeters writeprotect;
    private final IoctlMeters wake;
    private final IoctlMeters poison;
    private final IoctlMeters move;
    private final IoctlMeters describe;
    private final IoctlMeters list;

    InstrumentedBackend(MemoryBackend backend, MeterRegistry registry) {
        this.backend = backend;
        api = new IoctlMeters(registry, "uffdApi");
        register = new IoctlMeters(registry, "uffdRegister");
        unregister = new IoctlMeters(registry, "uffdUnregister");
        copy = new IoctlMeters(registry, "uffdCopy");
        zeropage = new IoctlMeters(registry, "uffdZeropage");
        cont = new IoctlMeters(registry, "uffdContinue");
        writeprotect = new IoctlMeters(registry, "uffdWriteprotect");
        wake = new IoctlMeters(registry, "uffdWake");
        poison = new IoctlMeters(registry, "uffdPoison");
        move = new IoctlMeters(registry, "uffdMove");
        describe = new IoctlMeters(registry, "uffdDescribe");
        list = new IoctlMeters(registry, "uffdList");
    }

    /** The wrapped backend. */
    MemoryBackend delegate() {
        return backend;
    }

    @Override
    public String name() {
        return backend.name();
    }

    @Override
    public BackendStatus status() {
        return backend.status();
    }

    @Override
    public boolean resolutionsMayBlock() {
        return backend.resolutionsMayBlock();
    }

    @Override
    public ProcessInfo createProcess(String name, int uid, boolean capSysPtrace, String owner) {
        return backend.createProcess(name, uid, capSysPtrace, owner);
    }

    @Override
    public ProcessInfo fork(int pid) {
        return backend.fork(pid);
    }

    @Override
    public void exit(int pid) {
        backend.exit(pid);
    }

    @Override
    public List<ProcessInfo> processes() {
        return backend.processes();
    }

    @Override
    public ProcessInfo process(int pid) {
        return backend.process(pid);
    }

    @Override
    public List<VmaInfo> maps(int pid) {
        return backend.maps(pid);
    }

    @Override
    public long[] readPagemap(int pid, long start, int pages) {
        return backend.readPagemap(pid, start, pages);
    }

    @Override
    public Pagemap.ScanResult pagemapScan(int pid, Pagemap.ScanArg arg) {
        return backend.pagemapScan(pid, arg);
    }

    @Override
    public AccessResult access(int pid, long addr, int len, boolean write, byte[] data, AccessMode mode,
            long deadlineNanos) throws InterruptedException {
        return backend.access(pid, addr, len, write, data, mode, deadlineNanos);
    }

    @Override
    public long mmap(int pid, long addr, long len, int prot, int flags, int fd, long offset) {
        return backend.mmap(pid, addr, len, prot, flags, fd, offset);
    }

    @Override
    public void munmap(int pid, long addr, long len) {
        backend.munmap(pid, addr, len);
    }

    @Override
    public long mremap(int pid, long oldAddr, long oldLen, long newLen, int flags, long newAddr) {
        return backend.mremap(pid, oldAddr, oldLen, newLen, flags, newAddr);
    }

    @Override
    public void mprotect(int pid, long addr, long len, int prot) {
        backend.mprotect(pid, addr, len, prot);
    }

    @Override
    public void madvise(int pid, long addr, long len, int advice) {
        backend.madvise(pid, addr, len, advice);
    }

    @Override
    public int memfdCreate(int pid, String name, int flags) {
        return backend.memfdCreate(pid, name, flags);
    }

    @Override
    public void ftruncate(int pid, int fd, long length) {
        backend.ftruncate(pid, fd, length);
    }

    @Override
    public void fallocate(int pid, int fd, int mode, long offset, long len) {
        backend.fallocate(pid, fd, mode, offset, len);
    }

    @Override
    public byte[] pread(int pid, int fd, long offset, int len) {
        return backend.pread(pid, fd, offset, len);
    }

    @Override
    public long pwrite(int pid, int fd, long offset, byte[] data) {
        return backend.pwrite(pid, fd, offset, data);
    }

    @Override
    public void close(int pid, int fd) {
        backend.close(pid, fd);
    }

    @Override
    public int pidfdGetfd(int pid, int targetPid, int targetFd) {
        return backend.pidfdGetfd(pid, targetPid, targetFd);
    }

    @Override
    public OpenFile memfdGet(int pid, int fd) {
        return backend.memfdGet(pid, fd);
    }

    @Override
    public int memfdInstall(int pid, OpenFile file) {
        return backend.memfdInstall(pid, file);
    }

    @Override
    public void memfdPut(OpenFile file) {
        backend.memfdPut(file);
    }

    @Override
    public boolean closeIfSame(int pid, int fd, OpenFile file) {
        return backend.closeIfSame(pid, fd, file);
    }

    @Override
    public int userfaultfd(int pid, int flags, boolean dev) {
        return backend.userfaultfd(pid, flags, dev);
    }

    @Override
    public Userfaultfd.ApiResult uffdApi(int pid, int fd, long apiVersion, long features) {
        Userfaultfd.ApiResult r;
        try {
            r = backend.uffdApi(pid, fd, apiVersion, features);
        } catch (LinuxException e) {
            throw api.failed(e);
        }
        api.ok();
        return r;
    }

    @Override
    public long uffdRegister(int pid, int fd, long start, long len, long mode) {
        long r;
        try {
            r = backend.uffdRegister(pid, fd, start, len, mode);
        } catch (LinuxException e) {
            throw register.failed(e);
        }
        register.ok();
        return r;
    }

    @Override
    public void uffdUnregister(int pid, int fd, long start, long len) {
        try {
            backend.uffdUnregister(pid, fd, start, len);
        } catch (LinuxException e) {
            throw unregister.failed(e);
        }
        unregister.ok();
    }

    @Override
    public long uffdCopy(int pid, int fd, long dst, byte[] src, long mode) {
        long r;
        try {
            r = backend.uffdCopy(pid, fd, dst, src, mode);
        } catch (LinuxException e) {
            throw copy.failed(e);
        }
        copy.ok();
        return r;
    }

    /** Counted per op, as UFFDIO_COPY, the way the ops would be counted through {@link #uffdCopy} one by one. */
    @Override
    public void uffdCopyBatch(List<Userfaultfd.CopyOp> ops, Userfaultfd.CopyOutcome outcome) {
        backend.uffdCopyBatch(ops, new Userfaultfd.CopyOutcome() {
            @Override
            public void copied(int index, long bytes) {
                copy.ok();
                outcome.copied(index, bytes);
            }

            @Override
            public void failed(int index, LinuxException e) {
                outcome.failed(index, copy.failed(e));
            }
        });
    }

    @Override
    public long uffdZeropage(int pid, int fd, long start, long len, long mode) {
        long r;
        try {
            r = backend.uffdZeropage(pid, fd, start, len, mode);
        } catch (LinuxException e) {
            throw zeropage.failed(e);
        }
        zeropage.ok();
        return r;
    }

    @Override
    public long uffdContinue(int pid, int fd, long start, long len, long mode) {
        long r;
        try {
            r = backend.uffdContinue(pid, fd, start, len, mode);
        } catch (LinuxException e) {
            throw cont.failed(e);
        }
        cont.ok();
        return r;
    }

    @Override
    public void uffdWriteprotect(int pid, int fd, long start, long len, long mode) {
        try {
            backend.uffdWriteprotect(pid, fd, start, len, mode);
        } catch (LinuxException e) {
            throw writeprotect.failed(e);
        }
        writeprotect.ok();
    }

    @Override
    public void uffdWake(int pid, int fd, long start, long len) {
        try {
            backend.uffdWake(pid, fd, start, len);
        } catch (LinuxException e) {
            throw wake.failed(e);
        }
        wake.ok();
    }

    @Override
    public long uffdPoison(int pid, int fd, long start, long len, long mode) {
        long r;
        try {
            r = backend.uffdPoison(pid, fd, start, len, mode);
        } catch (LinuxException e) {
            throw poison.failed(e);
        }
        poison.ok();
        return r;
    }

    @Override
    public long uffdMove(int pid, int fd, long dst, long src, long len, long mode) {
        long r;
        try {
            r = backend.uffdMove(pid, fd, dst, src, len, mode);
        } catch (LinuxException e) {
            throw move.failed(e);
        }
        move.ok();
        return r;
    }

    /** Not an ioctl: read(2) is not counted. */
    @Override
    public List<UffdMsg> uffdRead(int pid, int fd, int max, long deadlineNanos) throws InterruptedException {
        return backend.uffdRead(pid, fd, max, deadlineNanos);
    }

    /** Counted like the ioctls (ioctl tag {@code uffdDescribe}), as every {@code uffd*} method but uffdRead is. */
    @Override
    public UffdFdinfo.Description uffdDescribe(int pid, int fd) {
        UffdFdinfo.Description r;
        try {
            r = backend.uffdDescribe(pid, fd);
        } catch (LinuxException e) {
            throw describe.failed(e);
        }
        describe.ok();
        return r;
    }

    /** Counted like the ioctls (ioctl tag {@code uffdList}); the backend's own list, not one describe per fd here. */
    @Override
    public List<UffdFdinfo.Description> uffdList(int pid) {
        List<UffdFdinfo.Description> r;
        try {
            r = backend.uffdList(pid);
        } catch (LinuxException e) {
            throw list.failed(e);
        }
        list.ok();
        return r;
    }

    @Override
    public String sysctl(String name) {
        return backend.sysctl(name);
    }

    @Override
    public void setSysctl(String name, String value) {
        backend.setSysctl(name, value);
    }

    @Override
    public Map<String, Long> meminfo() {
        return backend.meminfo();
    }

    @Override
    public void close() {
        backend.close();
    }

    @Override
    public String toString() {
        return backend.toString();
    }

    /** The uffdemu.ioctls counters of one ioctl, registered on first use (a result never seen has no meter). */
    static final class IoctlMeters {
        private final MeterRegistry registry;
        private final String ioctl;
        private volatile Counter ok;
        private final Map<Errno, Counter> errors = new ConcurrentHashMap<>();

        IoctlMeters(MeterRegistry registry, String method) {
            this.registry = registry;
            this.ioctl = BackendMetrics.ioctlName(method);
        }

        void ok() {
            Counter c = ok;
            if (c == null) {
                c = counter("ok");
                ok = c;
            }
            c.increment();
        }

        /** Counts {@code e} under its errno and returns it, for the caller to rethrow. */
        LinuxException failed(LinuxException e) {
            errors.computeIfAbsent(e.errno(), x -> counter(x.name())).increment();
            return e;
        }

        private Counter counter(String result) {
            // register() returns the meter already registered under the same name and tags
            return Counter.builder("uffdemu.ioctls").description("uffd ioctls by name and result (ok or errno)")
                    .tag("ioctl", ioctl).tag("result", result).register(registry);
        }
    }
}
