package io.uffdemu.server.backend;

import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.AccessResult;
import io.uffdemu.server.mm.Pagemap;
import io.uffdemu.server.mm.UffdFdinfo;
import io.uffdemu.server.mm.UffdMsg;
import io.uffdemu.server.mm.Userfaultfd;
import java.util.List;
import java.util.Map;

/**
 * The backend SPI: everything the v1 API can ask of a memory manager, in the kernel's vocabulary. Two
 * implementations: {@code emulated} (the core in {@code io.uffdemu.server.mm}) and {@code linux} (the real
 * kernel through FFM). Adapters (gRPC, tests, the conformance suite) speak only this interface.
 *
 * <p>Common contract for every method:
 * <ul>
 *   <li>Preconditions: none beyond the argument types; bad input is the backend's to reject.</li>
 *   <li>Postconditions: either the call returns the kernel's result, or it throws
 *       {@link io.uffdemu.server.mm.LinuxException} carrying the errno the kernel gives for that input (plus the
 *       bytes done for partial ioctls). Unknown pid: ESRCH. Unknown fd: EBADF. Operations the backend cannot
 *       perform: ENOSYS with a reason (mapped to UNIMPLEMENTED).</li>
 *   <li>Blocking calls (access, uffdRead, and syscalls that raise uffd events) honour the deadline, given
 *       as {@link System#nanoTime()} based nanos or {@link Long#MAX_VALUE}, and thread interruption.</li>
 * </ul>
 */
public interface MemoryBackend extends AutoCloseable {
    /** "emulated" or "linux". */
    String name();

    BackendStatus status();

    ProcessInfo createProcess(String name, int uid, boolean capSysPtrace, String owner);

    /** fork(2); returns the child. Blocks until raised FORK events are read. */
    ProcessInfo fork(int pid);

    void exit(int pid);

    List<ProcessInfo> processes();

    ProcessInfo process(int pid);

    /** /proc/PID/maps. */
    List<VmaInfo> maps(int pid);

    long[] readPagemap(int pid, long start, int pages);

    Pagemap.ScanResult pagemapScan(int pid, Pagemap.ScanArg arg);

    /** A load or store by a thread of the process; blocks while a userfaultfd handles faults. */
    AccessResult access(int pid, long addr, int len, boolean write, byte[] data, AccessMode mode, long deadlineNanos)
            throws InterruptedException;

    long mmap(int pid, long addr, long len, int prot, int flags, int fd, long offset);

    void munmap(int pid, long addr, long len);

    long mremap(int pid, long oldAddr, long oldLen, long newLen, int flags, long newAddr);

    void mprotect(int pid, long addr, long len, int prot);

    void madvise(int pid, long addr, long len, int advice);

    int memfdCreate(int pid, String name, int flags);

    void ftruncate(int pid, int fd, long length);

    void fallocate(int pid, int fd, int mode, long offset, long len);

    byte[] pread(int pid, int fd, long offset, int len);

    long pwrite(int pid, int fd, long offset, byte[] data);

    void close(int pid, int fd);

    /** pidfd_getfd(2): duplicates another process's fd into {@code pid}'s table. */
    default int pidfdGetfd(int pid, int targetPid, int targetFd) {
        throw new io.uffdemu.server.mm.LinuxException(io.uffdemu.server.mm.Errno.ENOSYS, "pidfd_getfd", 0,
                "not supported by this backend");
    }

    /**
     * A counted reference to the memfd behind {@code fd}, kept while the file is in flight (a cross-tenant grant):
     * EBADF when not open, EINVAL when not a memfd. Release with {@link #memfdPut}.
     */
    default io.uffdemu.server.mm.OpenFile memfdGet(int pid, int fd) {
        throw new io.uffdemu.server.mm.LinuxException(io.uffdemu.server.mm.Errno.ENOSYS, "fget", 0,
                "memfd grants are not supported by this backend");
    }

    /** Installs a file from {@link #memfdGet} in {@code pid}'s fd table (receive_fd); returns the fd. */
    default int memfdInstall(int pid, io.uffdemu.server.mm.OpenFile file) {
        throw new io.uffdemu.server.mm.LinuxException(io.uffdemu.server.mm.Errno.ENOSYS, "receive_fd", 0,
                "memfd grants are not supported by this backend");
    }

    /** Drops a reference from {@link #memfdGet}. */
    default void memfdPut(io.uffdemu.server.mm.OpenFile file) {
    }

    /** Closes {@code fd} of {@code pid} if it still refers to {@code file}; false otherwise (or process gone). */
    default boolean closeIfSame(int pid, int fd, io.uffdemu.server.mm.OpenFile file) {
        return false;
    }

    /** userfaultfd(2) (or /dev/userfaultfd when {@code dev}); the returned fd still needs {@link #uffdApi}. */
    int userfaultfd(int pid, int flags, boolean dev);

    Userfaultfd.ApiResult uffdApi(int pid, int fd, long api, long features);

    long uffdRegister(int pid, int fd, long start, long len, long mode);

    void uffdUnregister(int pid, int fd, long start, long len);

    long uffdCopy(int pid, int fd, long dst, byte[] src, long mode);

    /**
     * UFFDIO_COPY of each op, in order, each exactly as {@link #uffdCopy} would run it alone, reporting its bytes or
     * its {@link io.uffdemu.server.mm.LinuxException} to {@code outcome} (a failing op does not stop the others).
     * Any other exception stops the batch and propagates; the ops after it do not run. This default runs
     * {@link #uffdCopy} per op (on a copy of the op's bytes); the emulated backend runs the ops under one
     * acquisition of its lock. An op's source buffer is read from its position to its limit and left unchanged.
     */
    default void uffdCopyBatch(List<Userfaultfd.CopyOp> ops, Userfaultfd.CopyOutcome outcome) {
        copyEach(ops, outcome, op -> {
            byte[] src = new byte[op.src().remaining()];
            op.src().get(op.src().position(), src);
            return uffdCopy(op.pid(), op.fd(), op.dst(), src, op.mode());
        });
    }

    /**
     * Runs {@code copy} on each op in order, as {@link #uffdCopyBatch} defines it: an op's bytes or its
     * {@link io.uffdemu.server.mm.LinuxException} go to {@code outcome} and the next op runs; any other exception
     * propagates. For backends that apply the ops one by one.
     */
    static void copyEach(List<Userfaultfd.CopyOp> ops, Userfaultfd.CopyOutcome outcome,
            java.util.function.ToLongFunction<Userfaultfd.CopyOp> copy) {
        for (int i = 0; i < ops.size(); i++) {
            long n;
            try {
                n = copy.applyAsLong(ops.get(i));
            } catch (io.uffdemu.server.mm.LinuxException e) {
                outcome.failed(i, e);
                continue;
            }
            outcome.copied(i, n);
        }
    }

    long uffdZeropage(int pid, int fd, long start, long len, long mode);

    long uffdContinue(int pid, int fd, long start, long len, long mode);

    void uffdWriteprotect(int pid, int fd, long start, long len, long mode);

    void uffdWake(int pid, int fd, long start, long len);

    long uffdPoison(int pid, int fd, long start, long len, long mode);

    long uffdMove(int pid, int fd, long dst, long src, long len, long mode);

    /**
     * Whether a resolution (uffdCopy, uffdCopyBatch, uffdZeropage, uffdContinue, uffdWriteprotect, uffdWake,
     * uffdPoison, uffdMove) may wait without bound, e.g. on a lock that a call waiting for its uffd event to be read
     * holds. When false, a Handle stream runs resolutions on the call's own thread; when true, on a thread of its
     * own, so that the stream's cancellation is not stuck behind them. Not a call: answers without touching state.
     */
    default boolean resolutionsMayBlock() {
        return true;
    }

    /** read(2) of up to {@code max} messages; empty when none arrived before the deadline (0 = don't wait). */
    List<UffdMsg> uffdRead(int pid, int fd, int max, long deadlineNanos) throws InterruptedException;

    /**
     * {@code /proc/PID/fdinfo/FD} of a userfaultfd plus the ranges registered through it. Read-only.
     * Postconditions: ESRCH for no such process, EBADF for no such fd, ENOTTY when the fd is not a userfaultfd;
     * ranges are disjoint, page aligned and in address order; {@code pendingFaults <= totalFaults}. A backend
     * that cannot know a field reports 0 and says so in its Javadoc.
     */
    default UffdFdinfo.Description uffdDescribe(int pid, int fd) {
        throw new io.uffdemu.server.mm.LinuxException(io.uffdemu.server.mm.Errno.ENOSYS, "fdinfo", 0,
                "not supported by this backend");
    }

    /** {@link #uffdDescribe} of every userfaultfd of {@code pid}, by fd. ESRCH for no such process. */
    default List<UffdFdinfo.Description> uffdList(int pid) {
        List<UffdFdinfo.Description> out = new java.util.ArrayList<>();
        for (int fd : process(pid).fds()) {
            try {
                out.add(uffdDescribe(pid, fd));
            } catch (io.uffdemu.server.mm.LinuxException e) {
                if (e.errno() != io.uffdemu.server.mm.Errno.ENOTTY && e.errno() != io.uffdemu.server.mm.Errno.EBADF) {
                    throw e; // ENOTTY: another file; EBADF: closed meanwhile
                }
            }
        }
        return out;
    }

    String sysctl(String name);

    void setSysctl(String name, String value);

    Map<String, Long> meminfo();

    @Override
    default void close() {
    }
}
