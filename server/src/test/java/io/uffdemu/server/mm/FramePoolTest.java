package io.uffdemu.server.mm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** Frame contents in off-heap slabs: never-written and freed frames read as zeros. */
class FramePoolTest {
    static final int PS = (int) Linux.PAGE_SIZE;

    static byte[] page(int v) {
        byte[] b = new byte[PS];
        Arrays.fill(b, (byte) v);
        return b;
    }

    @Test
    void freedFrameReadsZerosWhenReallocated() {
        FramePool f = new FramePool(1L << 30);
        long a = f.alloc(FramePool.PG_ANON);
        assertTrue(f.isZeroFilled(a));
        f.write(a, 0, page(7), 0, PS);
        assertFalse(f.isZeroFilled(a));
        assertArrayEquals(page(7), f.snapshot(a));
        f.put(a);
        long b = f.alloc(FramePool.PG_ANON);
        assertEquals(a, b);
        assertTrue(f.isZeroFilled(b));
        assertArrayEquals(page(0), f.snapshot(b));
        // a partial write into the reused frame must not resurrect the freed frame's bytes
        f.write(b, 100, new byte[] {1, 2, 3}, 0, 3);
        byte[] want = page(0);
        want[100] = 1;
        want[101] = 2;
        want[102] = 3;
        assertArrayEquals(want, f.snapshot(b));
        f.put(b);
        long c = f.alloc(FramePool.PG_ANON);
        assertEquals(b, c);
        assertTrue(f.isZeroFilled(c));
        f.write(c, 0, page(9), 0, PS); // a whole-page write replaces the stale bytes
        assertArrayEquals(page(9), f.snapshot(c));
    }

    @Test
    void slabsFromHostMmapAndFromTheArenaAreZeroedAndWritable() {
        for (boolean hostMmap : new boolean[] {true, false}) {
            long bytes = (long) FramePool.SLAB_FRAMES * PS;
            java.lang.foreign.MemorySegment s = FramePool.newSlab(bytes, hostMmap);
            assertEquals(bytes, s.byteSize());
            if (hostMmap && FramePool.hostSlabs()) {
                // aligned to its size, so that the host can back it with one transparent huge page
                assertEquals(0, s.address() % bytes, "slab at 0x" + Long.toHexString(s.address()));
            }
            assertEquals(-1L, s.mismatch(java.lang.foreign.MemorySegment.ofArray(new byte[(int) bytes])));
            s.set(java.lang.foreign.ValueLayout.JAVA_BYTE, bytes - 1, (byte) 5);
            assertEquals(5, s.get(java.lang.foreign.ValueLayout.JAVA_BYTE, bytes - 1));
        }
    }

    @Test
    void theTestJvmGetsHostSlabsOnLinux() {
        // the service, test and bench JVMs run with native access: on a Linux amd64 host the slabs must be the
        // host's (else the alignment check above would not run)
        if (System.getProperty("os.name").equals("Linux") && System.getProperty("os.arch").equals("amd64")) {
            assertTrue(FramePool.hostSlabs());
        }
        assertEquals(2L << 20, (long) FramePool.SLAB_FRAMES * PS, "a slab is one 2 MiB host huge page");
    }

    @Test
    void copyRestoreAndPartialWrites() {
        FramePool f = new FramePool(1L << 30);
        long[] p = new long[3 * FramePool.SLAB_FRAMES];
        for (int i = 0; i < p.length; i++) {
            p[i] = f.alloc(FramePool.PG_ANON);
        }
        long a = p[1], b = p[FramePool.SLAB_FRAMES + 5], c = p[2 * FramePool.SLAB_FRAMES + 9];
        f.write(a, 100, new byte[] {1, 2, 3}, 0, 3);
        byte[] got = new byte[5];
        f.read(a, 99, got, 0, 5);
        assertArrayEquals(new byte[] {0, 1, 2, 3, 0}, got);
        f.copyPage(a, b);
        assertArrayEquals(f.snapshot(a), f.snapshot(b));
        f.copyPage(c, b); // c was never written: b becomes zeros
        assertTrue(f.isZeroFilled(b));
        f.restore(c, page(9));
        assertArrayEquals(page(9), f.snapshot(c));
        f.restore(c, page(0));
        assertTrue(f.isZeroFilled(c));
        f.write(b, 0, page(0), 0, PS); // zeros into a never-written frame allocate nothing and read as zeros
        assertTrue(f.isZeroFilled(b));
        f.read(FramePool.ZERO_PFN, 0, got, 0, 5);
        assertArrayEquals(new byte[5], got);
    }

    /** The zero test of a COPY source: any non-zero byte in [off, off+len) counts, bytes outside do not. */
    @Test
    void isZerosSeesEveryByteOfTheRangeAndNothingOutside() {
        for (int len : new int[] {0, 1, 7, 64, PS - 1, PS, PS + 1, 2 * PS + 3}) {
            for (int off : new int[] {0, 1, 13}) {
                byte[] b = new byte[off + len + 2];
                b[0] = off > 0 ? (byte) 1 : 0; // outside the range
                b[off + len + 1] = 1; // outside the range
                // the same bytes as a COPY from a gRPC payload sees them: a read-only buffer view
                java.lang.foreign.MemorySegment seg = java.lang.foreign.MemorySegment.ofBuffer(
                        java.nio.ByteBuffer.wrap(b).asReadOnlyBuffer());
                if (off > 0) {
                    assertTrue(FramePool.isZeros(b, off, len), "len " + len + " off " + off);
                    assertTrue(FramePool.isZeros(seg, off, len), "segment: len " + len + " off " + off);
                }
                for (int i = 0; i < len; i++) {
                    b[off + i] = (byte) 0x80;
                    assertFalse(FramePool.isZeros(b, off, len), "len " + len + " off " + off + " at " + i);
                    assertFalse(FramePool.isZeros(seg, off, len), "segment: len " + len + " off " + off + " at " + i);
                    b[off + i] = 0;
                }
            }
        }
    }

    /** A zero COPY into a never-written frame leaves it unwritten; a non-zero last byte is written. */
    @Test
    void zeroWriteLeavesTheFrameUnwrittenAndTheLastByteCounts() {
        FramePool f = new FramePool(1L << 30);
        long a = f.alloc(FramePool.PG_ANON);
        f.write(a, 0, new byte[PS], 0, PS);
        assertTrue(f.isZeroFilled(a));
        byte[] last = new byte[PS];
        last[PS - 1] = 9;
        f.write(a, 0, last, 0, PS);
        assertArrayEquals(last, f.snapshot(a));
    }
}
