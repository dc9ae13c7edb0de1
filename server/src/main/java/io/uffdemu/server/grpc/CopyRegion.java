package io.uffdemu.server.grpc;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import com.google.protobuf.ByteString;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.LinuxException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.util.HexFormat;

/**
 * A Handle stream's copy region ({@code HandleAttach.copy_region_bytes}): a memfd of this server (mm/memfd.c)
 * that a handler on the same host opens through {@code /proc/<pid>/fd/<fd>}, maps and writes COPY sources into,
 * then names them by offset ({@code CopyRequest.region_src / region_len}) instead of sending the bytes through
 * protobuf, HTTP/2 and two sockets. It is what UFFDIO_COPY's {@code src} is in the kernel: memory of the handler
 * that the kernel reads.
 *
 * <p>Safety: the memfd is sealed with {@code F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL}, and its size and seals
 * are checked after sealing and before it is mapped (another process of this uid could open it between
 * memfd_create and the seals), so no client can truncate it under this server's mapping (a read past the end
 * would be SIGBUS). What a client writes while the server copies is its own business, as with the kernel's src.
 * The header's first {@link #NONCE_BYTES} bytes hold a random nonce that the client checks, so that a client on
 * another host or in another pid namespace, which opens some other file by that path, notices and sends data
 * instead. The next {@link #NONCE_BYTES} must then hold the nonce's complement, written by the client once it
 * has mapped the region ({@link #proven}): until then every region source is EFAULT, so a client that never
 * mapped the region (a remote one) cannot make this server read, and so allocate, the region's pages. The
 * mapping is unmapped only once no resolution uses it ({@link #acquire} / {@link #release}).
 *
 * <p>When its stream ends, a region the client had mapped is {@link #retire retired} into the
 * {@link CopyRegionPool} instead, for that client to ask back on its next stream: {@link #renew} gives it a new
 * nonce and clears the proof, so the next stream proves its mapping again before any source is read.
 */
final class CopyRegion {
    /** Bytes before the first source: the nonce's page. */
    static final long HEADER = 4096;
    static final int NONCE_BYTES = 16;

    private static final int MFD_CLOEXEC = 1;
    private static final int MFD_ALLOW_SEALING = 2;
    private static final int F_ADD_SEALS = 1033;
    private static final int F_GET_SEALS = 1034;
    private static final int F_SEAL_SEAL = 1;
    private static final int F_SEAL_SHRINK = 2;
    private static final int F_SEAL_GROW = 4;
    private static final SecureRandom RANDOM = new SecureRandom();

    private final int fd;
    private final String name;
    /** Replaced when the region is given again ({@link #renew}). */
    private volatile byte[] nonce;
    private final long bytes;
    private final Arena arena;
    private final MemorySegment map;
    private int users;
    private boolean closed;
    /** Set by {@link #retire}: takes the region once no resolution uses it (null: unmap it then). */
    private java.util.function.Consumer<CopyRegion> whenIdle;
    /**
     * Times it was given again ({@link #renew}): the generation of its current holder. A stream holds the region
     * with the generation it was given it at ({@link #generation}), and {@link #acquire} and {@link #retire}
     * refuse an older one, so that a stream that ended cannot use or give back the region its successor holds.
     */
    private int renewals;
    /** The client wrote the nonce's complement after it: it has the region mapped. */
    private volatile boolean proven;

    private CopyRegion(int fd, String name, byte[] nonce, long bytes, Arena arena, MemorySegment map) {
        this.fd = fd;
        this.name = name;
        this.nonce = nonce;
        this.bytes = bytes;
        this.arena = arena;
        this.map = map;
    }

    /**
     * Sizes a region: {@code asked} capped at {@code max}, rounded down to whole pages, plus the header; 0 = none
     * (nothing asked, regions off, or less than a page).
     */
    static long size(long asked, long max) {
        if (asked <= 0 || max <= 0) {
            return 0;
        }
        long data = Math.min(asked, max) & -HEADER;
        return data == 0 ? 0 : HEADER + data;
    }

    /**
     * Makes a region of {@code size} bytes ({@link #size}). Throws IOException when this host cannot (no memfd,
     * no libc, out of memory): the stream then goes on without one.
     */
    static CopyRegion create(long size) throws IOException {
        if (size <= HEADER) {
            throw new IllegalArgumentException("region size " + size);
        }
        byte[] nonce = new byte[NONCE_BYTES];
        RANDOM.nextBytes(nonce);
        String name = "uffdemu-copy-region-" + HexFormat.of().formatHex(nonce);
        int fd;
        try (Arena a = Arena.ofConfined()) {
            fd = (int) Libc.MEMFD_CREATE.invokeExact(a.allocateFrom(name), MFD_CLOEXEC | MFD_ALLOW_SEALING);
        } catch (Throwable t) {
            throw new IOException("memfd_create: " + t, t);
        }
        if (fd < 0) {
            throw new IOException("memfd_create failed");
        }
        boolean ok = false;
        Arena arena = null;
        try {
            int r;
            int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
            try {
                r = (int) Libc.FTRUNCATE.invokeExact(fd, size);
                if (r == 0) {
                    r = (int) Libc.FCNTL.invokeExact(fd, F_ADD_SEALS, seals);
                }
                if (r == 0) {
                    int got = (int) Libc.FCNTL.invokeExact(fd, F_GET_SEALS, 0);
                    r = got >= 0 && (got & seals) == seals ? 0 : -1;
                }
            } catch (Throwable t) {
                throw new IOException("ftruncate / F_ADD_SEALS: " + t, t);
            }
            if (r != 0) {
                throw new IOException("ftruncate or F_ADD_SEALS failed on the copy region's memfd");
            }
            arena = Arena.ofShared();
            MemorySegment map;
            try (FileChannel ch = FileChannel.open(Path.of("/proc/self/fd/" + fd), StandardOpenOption.READ,
                    StandardOpenOption.WRITE)) {
                // sealed now: the size it has is the size it keeps (someone could have truncated it before)
                if (ch.size() != size) {
                    throw new IOException("the copy region's memfd has " + ch.size() + " bytes, not " + size);
                }
                ch.write(ByteBuffer.wrap(nonce), 0);
                map = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            }
            ok = true;
            return new CopyRegion(fd, name, nonce, size, arena, map);
        } finally {
            if (!ok) {
                if (arena != null) {
                    arena.close();
                }
                closeFd(fd);
            }
        }
    }

    /** What the client is told ({@code HandleResponse.copy_region}). */
    io.uffdemu.api.v1.CopyRegion info() {
        byte[] nonce = this.nonce;
        return io.uffdemu.api.v1.CopyRegion.newBuilder().setServerPid((int) ProcessHandle.current().pid())
                .setFd(fd).setBytes(bytes).setName(name).setNonce(ByteString.copyFrom(nonce)).setDataOffset(HEADER)
                .build();
    }

    long bytes() {
        return bytes;
    }

    String name() {
        return name;
    }

    /** The current generation (see {@link #renewals}): what a stream given the region now holds it by. */
    synchronized int generation() {
        return renewals;
    }

    /** Whether this is the region named {@code name} whose nonce is {@code nonce} now (in constant time). */
    boolean matches(String name, byte[] nonce) {
        return this.name.equals(name) && java.security.MessageDigest.isEqual(this.nonce, nonce);
    }

    /**
     * The COPY source {@code [src, src + len)}: a read-only view of the region (not a copy). EFAULT when the range
     * is not inside the sources' part of the region, as the kernel's UFFDIO_COPY answers a src it cannot read.
     * Only between {@link #acquire} and {@link #release}.
     */
    ByteBuffer source(long src, long len) {
        if (!proven()) {
            throw new LinuxException(Errno.EFAULT, "UFFDIO_COPY", 0,
                    "the copy region is not mapped by the client (no nonce complement in its header)");
        }
        if (src < HEADER || len <= 0 || src > bytes || len > bytes - src) {
            throw new LinuxException(Errno.EFAULT, "UFFDIO_COPY", 0,
                    "region_src " + src + " + region_len " + len + " is outside the copy region [" + HEADER + ", "
                            + bytes + ")");
        }
        return map.asSlice(src, len).asByteBuffer();
    }

    /**
     * Whether the client proved it mapped the region: bytes [16, 32) hold the nonce's complement (checked until
     * they do, then remembered). Only between {@link #acquire} and {@link #release}.
     */
    boolean proven() {
        if (proven) {
            return true;
        }
        byte[] nonce = this.nonce;
        for (int i = 0; i < NONCE_BYTES; i++) {
            if (map.get(java.lang.foreign.ValueLayout.JAVA_BYTE, NONCE_BYTES + i) != (byte) ~nonce[i]) {
                return false;
            }
        }
        proven = true;
        return true;
    }

    /**
     * A resolution of the stream that holds the region at {@code generation} starts using the mapping; false once
     * that stream retired it, or the region went to another stream since (then it must not).
     */
    synchronized boolean acquire(int generation) {
        if (closed || renewals != generation) {
            return false;
        }
        users++;
        return true;
    }

    /** {@link #acquire(int)} for the current generation (tests). */
    synchronized boolean acquire() {
        return acquire(renewals);
    }

    /** The resolution is done with it; the last one out after {@link #close} or {@link #retire} lets it go. */
    void release() {
        boolean idle;
        synchronized (this) {
            users--;
            idle = closed && users == 0;
        }
        if (idle) {
            idle();
        }
    }

    /** The stream that holds it now ended: unmapped now, or by the last resolution still using it. */
    void close() {
        retire(generation(), null);
    }

    /**
     * The stream that holds it at {@code generation} ended: once no resolution uses it, handed to {@code whenIdle}
     * (the pool) if the client had mapped it, else unmapped as by {@link #close}. Nothing when that stream retired
     * it already, or it went to another stream since.
     */
    void retire(int generation, java.util.function.Consumer<CopyRegion> whenIdle) {
        boolean idle;
        synchronized (this) {
            if (closed || renewals != generation) {
                return;
            }
            closed = true;
            this.whenIdle = whenIdle != null && proven() ? whenIdle : null;
            idle = users == 0;
        }
        if (idle) {
            idle();
        }
    }

    private void idle() {
        java.util.function.Consumer<CopyRegion> to;
        synchronized (this) {
            to = whenIdle;
            whenIdle = null;
        }
        if (to != null) {
            to.accept(this);
        } else {
            free();
        }
    }

    /**
     * A retired region (no resolution uses it) made live again for a new stream: a new nonce, the proof cleared,
     * so that nothing is read from it before that stream's client proves its mapping again. IOException when the
     * header cannot be written (then it is {@link #free}d by the caller).
     */
    synchronized void renew() throws IOException {
        if (!closed || users != 0) {
            throw new IllegalStateException("renew of a region in use");
        }
        byte[] next = new byte[NONCE_BYTES];
        RANDOM.nextBytes(next);
        byte[] header = new byte[2 * NONCE_BYTES]; // the nonce, then no proof
        System.arraycopy(next, 0, header, 0, NONCE_BYTES);
        try (FileChannel ch = FileChannel.open(Path.of("/proc/self/fd/" + fd), StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.wrap(header);
            while (b.hasRemaining()) {
                ch.write(b, b.position());
            }
        }
        nonce = next;
        proven = false;
        closed = false;
        renewals++;
    }

    /** Unmaps it and closes its fd: only once nothing uses it (the pool's eviction, or the last user). */
    void free() {
        arena.close();
        closeFd(fd);
    }

    private static void closeFd(int fd) {
        try {
            int r = (int) Libc.CLOSE.invokeExact(fd);
        } catch (Throwable ignored) {
            // nothing more to do
        }
    }

    /** The three libc calls a region needs; looked up on first use (only when a client asks for a region). */
    private static final class Libc {
        private static final Linker LINKER = Linker.nativeLinker();
        static final MethodHandle MEMFD_CREATE = h("memfd_create", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        static final MethodHandle FTRUNCATE = h("ftruncate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
        static final MethodHandle FCNTL = LINKER.downcallHandle(
                LINKER.defaultLookup().find("fcntl").orElseThrow(),
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
        static final MethodHandle CLOSE = h("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));

        private static MethodHandle h(String name, FunctionDescriptor fd) {
            return LINKER.downcallHandle(LINKER.defaultLookup().find(name)
                    .orElseThrow(() -> new UnsatisfiedLinkError("libc symbol not found: " + name)), fd);
        }
    }
}
