package io.uffdemu.server.backend.linux;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Native scratch memory for one call (ioctl structs, read(2) buffers, the bounce buffer of an access), from a
 * small pool of page-aligned blocks instead of a fresh {@code Arena.ofConfined()} per call: the profile of the
 * native round trip showed malloc/free ({@code Unsafe.allocateMemory0}) and zeroing on every fault and every
 * resolution. Blocks are {@link #BLOCK} bytes; larger requests get their own confined arena as before. At most
 * {@link #MAX_POOLED} blocks are ever pooled (bounded by the calls in flight at once), allocated from the global
 * arena. The memory is <em>not</em> zeroed: callers that pass a struct to the kernel clear it with
 * {@link #zeroed}.
 */
final class Scratch implements AutoCloseable {
    static final long BLOCK = 16 * 1024;
    static final int MAX_POOLED = 256;
    private static final ConcurrentLinkedQueue<MemorySegment> FREE = new ConcurrentLinkedQueue<>();
    private static final AtomicInteger CREATED = new AtomicInteger();

    private final MemorySegment block;
    private final Arena own;
    private boolean pooled;

    private Scratch(MemorySegment block, Arena own, boolean pooled) {
        this.block = block;
        this.own = own;
        this.pooled = pooled;
    }

    /** Scratch memory of at least {@code bytes}, page-aligned at offset 0. */
    static Scratch of(long bytes) {
        if (bytes <= BLOCK) {
            MemorySegment b = FREE.poll();
            if (b != null) {
                return new Scratch(b, null, true);
            }
            if (CREATED.incrementAndGet() <= MAX_POOLED) {
                return new Scratch(Arena.global().allocate(BLOCK, Linux4k.PAGE), null, true);
            }
            CREATED.decrementAndGet();
        }
        Arena a = Arena.ofConfined();
        return new Scratch(a.allocate(Math.max(1, bytes), Linux4k.PAGE), a, false);
    }

    /** The whole block (its size is at least what was asked for). */
    MemorySegment segment() {
        return block;
    }

    /** {@code [offset, offset + len)} of the block, cleared. */
    MemorySegment zeroed(long offset, long len) {
        return block.asSlice(offset, len).fill((byte) 0);
    }

    @Override
    public void close() {
        if (own != null) {
            own.close();
        } else if (pooled) {
            pooled = false;
            FREE.offer(block);
        }
    }

    private static final class Linux4k {
        static final long PAGE = 4096;
    }
}
