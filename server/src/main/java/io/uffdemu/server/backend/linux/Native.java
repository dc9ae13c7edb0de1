package io.uffdemu.server.backend.linux;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.LinuxException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;

/**
 * The thin, syscall-named translation layer: one FFM downcall per libc function, errno captured at the call
 * ({@link Linker.Option#captureCallState}), and every failure thrown as a {@link LinuxException} naming the
 * syscall or ioctl. No JNI, no C. Downcalls run in the {@code _thread_in_native} state, so a thread blocked here
 * (in a userfault, or in a syscall waiting for a uffd event to be read) never holds up a JVM safepoint.
 *
 * <p>Callers must have checked {@link LinuxAvailability#isAvailable()}; the handles are created lazily on first
 * use of this class.
 */
final class Native {
    private Native() {
    }

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final long ERRNO_OFFSET = CAPTURE.byteOffset(groupElement("errno"));
    private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");

    private static MethodHandle h(String name, FunctionDescriptor fd, Linker.Option... extra) {
        Linker.Option[] opts = new Linker.Option[extra.length + 1];
        opts[0] = ERRNO;
        System.arraycopy(extra, 0, opts, 1, extra.length);
        MemorySegment sym = LINKER.defaultLookup().find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("libc symbol not found: " + name));
        return LINKER.downcallHandle(sym, fd, opts);
    }

    private static final MethodHandle SYSCALL1 = h("syscall",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG), Linker.Option.firstVariadicArg(1));
    private static final MethodHandle IOCTL_PTR = h("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle IOCTL_LONG = h("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle OPEN = h("open",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle CLOSE = h("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle READ = h("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle WRITE = h("write",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle PREAD = h("pread",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle PWRITE = h("pwrite",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle MMAP = h("mmap",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MUNMAP = h("munmap", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle MREMAP = h("mremap",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_LONG),
            Linker.Option.firstVariadicArg(4));
    private static final MethodHandle MPROTECT = h("mprotect",
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT));
    private static final MethodHandle MADVISE = h("madvise",
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT));
    private static final MethodHandle MINCORE = h("mincore",
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS));
    private static final MethodHandle MEMFD_CREATE = h("memfd_create",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle FALLOCATE = h("fallocate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle FTRUNCATE = h("ftruncate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle POLL = h("poll", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle PIPE2 = h("pipe2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle PROCESS_VM_READV = h("process_vm_readv",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle PROCESS_VM_WRITEV = h("process_vm_writev",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle UNAME = h("uname", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle MEMCPY = LINKER.downcallHandle(
            LINKER.defaultLookup().find("memcpy").orElseThrow(),
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG));

    static final int O_RDONLY = 0, O_RDWR = 2, O_CLOEXEC = 0x80000, O_NONBLOCK = 0x800;
    static final int EINTR = 4, EAGAIN = 11;

    static Errno errno(int n) {
        Errno e = Errno.of(n);
        return e == null ? Errno.EINVAL : e;
    }

    static LinuxException fail(String call, int errno, long bytesDone) {
        Errno e = Errno.of(errno);
        return e != null ? new LinuxException(e, call, bytesDone)
                : new LinuxException(Errno.EINVAL, call, bytesDone, "errno " + errno + " has no Errno constant");
    }

    private static int errnoOf(MemorySegment st) {
        return st.get(JAVA_INT, ERRNO_OFFSET);
    }

    private static MemorySegment state(Arena a) {
        return a.allocate(CAPTURE);
    }

    /**
     * The capture state of a hot call (read(2) and ioctl of every resolution, pread of pagemap, poll) from the
     * {@link Scratch} pool: an {@code Arena} per call was a malloc, a zeroing and a free on every fault. The state
     * is written by the call before it is read, so it needs no clearing.
     */
    private static MemorySegment state(Scratch a) {
        return a.segment().asSlice(0, CAPTURE.byteSize());
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            throw r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        throw new IllegalStateException(t);
    }

    // ------------------------------------------------------------------ raw calls returning -errno style

    /** syscall(nr, a1); returns the result or throws. */
    static long syscall(String call, long nr, long a1) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            long r = (long) SYSCALL1.invokeExact(st, nr, a1);
            if (r == -1) {
                throw fail(call, errnoOf(st), 0);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** ioctl(fd, req, arg); returns the result or -errno (the caller decides how to report). */
    static int ioctlRaw(int fd, long req, MemorySegment arg) {
        try (Scratch a = Scratch.of(CAPTURE.byteSize())) {
            MemorySegment st = state(a);
            int r = (int) IOCTL_PTR.invokeExact(st, fd, req, arg);
            return r == -1 ? -errnoOf(st) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int ioctl(String call, int fd, long req, MemorySegment arg) {
        int r = ioctlRaw(fd, req, arg);
        if (r < 0) {
            throw fail(call, -r, 0);
        }
        return r;
    }

    static int ioctl(String call, int fd, long req, long arg) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            int r = (int) IOCTL_LONG.invokeExact(st, fd, req, arg);
            if (r == -1) {
                throw fail(call, errnoOf(st), 0);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int open(String path, int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            int r = (int) OPEN.invokeExact(st, a.allocateFrom(path), flags, 0);
            if (r == -1) {
                throw fail("open", errnoOf(st), 0);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void close(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            int r = (int) CLOSE.invokeExact(st, fd);
            if (r == -1) {
                throw fail("close", errnoOf(st), 0);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** read(2); returns bytes or -errno. */
    static long readRaw(int fd, long buf, long len) {
        try (Scratch a = Scratch.of(CAPTURE.byteSize())) {
            MemorySegment st = state(a);
            long r = (long) READ.invokeExact(st, fd, MemorySegment.ofAddress(buf), len);
            return r == -1 ? -errnoOf(st) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** write(2); returns bytes or -errno. */
    static long writeRaw(int fd, long buf, long len) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            long r = (long) WRITE.invokeExact(st, fd, MemorySegment.ofAddress(buf), len);
            return r == -1 ? -errnoOf(st) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pread(2); returns bytes or -errno. */
    static long preadRaw(int fd, long buf, long len, long off) {
        try (Scratch a = Scratch.of(CAPTURE.byteSize())) {
            MemorySegment st = state(a);
            long r = (long) PREAD.invokeExact(st, fd, MemorySegment.ofAddress(buf), len, off);
            return r == -1 ? -errnoOf(st) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pwrite(2); returns bytes or -errno. */
    static long pwriteRaw(int fd, long buf, long len, long off) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            long r = (long) PWRITE.invokeExact(st, fd, MemorySegment.ofAddress(buf), len, off);
            return r == -1 ? -errnoOf(st) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static long mmap(long addr, long len, int prot, int flags, int fd, long off) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            long r = (long) MMAP.invokeExact(st, addr, len, prot, flags, fd, off);
            if (r == -1) {
                throw fail("mmap", errnoOf(st), 0);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void munmap(long addr, long len) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            int r = (int) MUNMAP.invokeExact(st, addr, len);
            if (r == -1) {
                throw fail("munmap", errnoOf(st), 0);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static long mremap(long old, long oldLen, long newLen, int flags, long newAddr) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            long r = (long) MREMAP.invokeExact(st, old, oldLen, newLen, flags, newAddr);
            if (r == -1) {
                throw fail("mremap", errnoOf(st), 0);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void mprotect(long addr, long len, int prot) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            int r = (int) MPROTECT.invokeExact(st, addr, len, prot);
            if (r == -1) {
                throw fail("mprotect", errnoOf(st), 0);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void madvise(long addr, long len, int advice) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            int r = (int) MADVISE.invokeExact(st, addr, len, advice);
            if (r == -1) {
                throw fail("madvise", errnoOf(st), 0);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * mincore(2) over {@code pages} 4 KiB pages from {@code addr}: for a file mapping, whether each page is in
     * the page cache (mapped here or not); one byte per page, bit 0.
     */
    static byte[] mincore(long addr, int pages) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            MemorySegment vec = a.allocate(Math.max(1, pages));
            int r = (int) MINCORE.invokeExact(st, addr, (long) pages * 4096L, vec);
            if (r == -1) {
                throw fail("mincore", errnoOf(st), 0);
            }
            return vec.asSlice(0, pages).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int memfdCreate(String name, int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            int r = (int) MEMFD_CREATE.invokeExact(st, a.allocateFrom(name), flags);
            if (r == -1) {
                throw fail("memfd_create", errnoOf(st), 0);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void fallocate(int fd, int mode, long off, long len) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            int r = (int) FALLOCATE.invokeExact(st, fd, mode, off, len);
            if (r == -1) {
                throw fail("fallocate", errnoOf(st), 0);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void ftruncate(int fd, long len) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            int r = (int) FTRUNCATE.invokeExact(st, fd, len);
            if (r == -1) {
                throw fail("ftruncate", errnoOf(st), 0);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** poll(2) on one fd; returns revents (0 on timeout, EINTR counts as timeout). */
    static int poll1(int fd, short events, int timeoutMs) {
        try (Scratch a = Scratch.of(64 + Uapi.POLLFD.byteSize())) {
            MemorySegment st = state(a);
            MemorySegment p = a.segment().asSlice(64, Uapi.POLLFD.byteSize());
            p.set(JAVA_INT, Uapi.off(Uapi.POLLFD, "fd"), fd);
            p.set(java.lang.foreign.ValueLayout.JAVA_SHORT, Uapi.off(Uapi.POLLFD, "events"), events);
            int r = (int) POLL.invokeExact(st, p, 1L, timeoutMs);
            if (r == -1) {
                int e = errnoOf(st);
                if (e == EINTR) {
                    return 0;
                }
                throw fail("poll", e, 0);
            }
            return r == 0 ? 0 : p.get(java.lang.foreign.ValueLayout.JAVA_SHORT, Uapi.off(Uapi.POLLFD, "revents"));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pipe2(2); returns {read end, write end}. */
    static int[] pipe2(int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            MemorySegment fds = a.allocate(JAVA_INT, 2);
            int r = (int) PIPE2.invokeExact(st, fds, flags);
            if (r == -1) {
                throw fail("pipe2", errnoOf(st), 0);
            }
            return new int[] {fds.getAtIndex(JAVA_INT, 0), fds.getAtIndex(JAVA_INT, 1)};
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** process_vm_readv / writev on one local and one remote iovec; returns bytes or -errno. */
    static long processVm(boolean write, int pid, long local, long remote, long len) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            MemorySegment l = a.allocate(Uapi.IOVEC);
            MemorySegment r = a.allocate(Uapi.IOVEC);
            l.set(JAVA_LONG, 0, local);
            l.set(JAVA_LONG, 8, len);
            r.set(JAVA_LONG, 0, remote);
            r.set(JAVA_LONG, 8, len);
            long n = write ? (long) PROCESS_VM_WRITEV.invokeExact(st, pid, l, 1L, r, 1L, 0L)
                    : (long) PROCESS_VM_READV.invokeExact(st, pid, l, 1L, r, 1L, 0L);
            return n == -1 ? -errnoOf(st) : n;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** uname(2) release string. */
    static String unameRelease() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = state(a);
            MemorySegment u = a.allocate(Uapi.UTSNAME_SIZE);
            int r = (int) UNAME.invokeExact(st, u);
            if (r == -1) {
                throw fail("uname", errnoOf(st), 0);
            }
            return u.getString(Uapi.UTSNAME_RELEASE);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * memcpy(3) between raw addresses, in the native thread state: the copy may block in a userfault for as long
     * as the handler takes without stopping the JVM at a safepoint. The caller must have proven that the copy
     * cannot raise SIGSEGV/SIGBUS.
     */
    static void memcpy(long dst, long src, long len) {
        try {
            long ignored = (long) MEMCPY.invokeExact(dst, src, len);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
