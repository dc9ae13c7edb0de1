package io.uffdemu.server.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.server.mm.LinuxException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Test;

/** The server's side of a copy region: sizing, sealing, the client's proof, bounds and the unmap's timing. */
@org.junit.jupiter.api.condition.EnabledOnOs(value = org.junit.jupiter.api.condition.OS.LINUX,
        disabledReason = "memfd_create and /proc/self/fd are Linux")
class CopyRegionTest {
    private static final long MB = 1 << 20;

    @Test
    void sizeIsCappedRoundedDownToPagesAndZeroWhenOff() {
        assertThat(CopyRegion.size(8 * MB, 64 * MB)).isEqualTo(8 * MB + 4096);
        assertThat(CopyRegion.size(1L << 40, 64 * MB)).isEqualTo(64 * MB + 4096);
        assertThat(CopyRegion.size(8192 + 100, 64 * MB)).isEqualTo(8192 + 4096);
        assertThat(CopyRegion.size(64 * MB, 64 * MB - 1)).as("never past the cap").isEqualTo(64 * MB - 4096 + 4096);
        assertThat(CopyRegion.size(100, 64 * MB)).as("less than a page").isZero();
        assertThat(CopyRegion.size(0, 64 * MB)).isZero();
        assertThat(CopyRegion.size(-1, 64 * MB)).isZero();
        assertThat(CopyRegion.size(8 * MB, 0)).as("regions off").isZero();
    }

    @Test
    void aRegionIsSealedAndReadsOnlyWhatAMappedClientProved() throws Exception {
        CopyRegion r = CopyRegion.create(CopyRegion.size(4 * 4096, 64 * MB));
        var info = r.info();
        Path file = Path.of("/proc/self/fd/" + info.getFd());
        assertThat(Files.readSymbolicLink(file).toString()).startsWith("/memfd:" + info.getName());
        assertThat(r.acquire()).isTrue();
        try (Arena a = Arena.ofConfined();
                FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            assertThat(ch.size()).isEqualTo(5 * 4096);
            assertThatThrownBy(() -> ch.truncate(4096)).as("F_SEAL_SHRINK").isInstanceOf(java.io.IOException.class);
            assertThatThrownBy(() -> ch.write(ByteBuffer.wrap(new byte[1]), 5 * 4096)).as("F_SEAL_GROW")
                    .isInstanceOf(java.io.IOException.class);
            MemorySegment m = ch.map(FileChannel.MapMode.READ_WRITE, 0, ch.size(), a);
            m.set(ValueLayout.JAVA_BYTE, 4096, (byte) 42);
            assertThatThrownBy(() -> r.source(4096, 4096)).as("no proof yet").isInstanceOfSatisfying(
                    LinuxException.class, e -> assertThat(e.errno().name()).isEqualTo("EFAULT"));
            // a wrong proof is still none
            for (int i = 0; i < 16; i++) {
                m.set(ValueLayout.JAVA_BYTE, 16 + i, info.getNonce().byteAt(i));
            }
            assertThat(r.proven()).isFalse();
            for (int i = 0; i < 16; i++) {
                m.set(ValueLayout.JAVA_BYTE, 16 + i, (byte) ~info.getNonce().byteAt(i));
            }
            assertThat(r.proven()).isTrue();
            ByteBuffer src = r.source(4096, 4096);
            assertThat(src.remaining()).isEqualTo(4096);
            assertThat(src.get(0)).as("a view of the shared memory, not a copy").isEqualTo((byte) 42);
            for (long[] bad : new long[][] {{0, 4096}, {4095, 4096}, {4 * 4096 + 1, 4096}, {4096, 4 * 4096 + 1},
                    {4096, 0}, {Long.MIN_VALUE, 4096}, {4096, Long.MAX_VALUE}, {Long.MAX_VALUE, Long.MAX_VALUE}}) {
                assertThatThrownBy(() -> r.source(bad[0], bad[1])).as("src %d len %d", bad[0], bad[1])
                        .isInstanceOfSatisfying(LinuxException.class,
                                e -> assertThat(e.errno().name()).isEqualTo("EFAULT"));
            }
            assertThat(r.source(4096, 4 * 4096).remaining()).as("the whole data part").isEqualTo(4 * 4096);
        }
        // closed while in use: still mapped for the user, unmapped (fd closed) when it is done
        r.close();
        assertThat(r.acquire()).as("no new user after close").isFalse();
        assertThat(Files.exists(file, java.nio.file.LinkOption.NOFOLLOW_LINKS)).as("fd open while in use").isTrue();
        assertThat(r.source(4096, 4096).get(0)).isEqualTo((byte) 42);
        r.release();
        String now;
        try {
            now = Files.readSymbolicLink(file).toString(); // the number may have been reused by another file
        } catch (java.nio.file.NoSuchFileException e) {
            now = "";
        }
        assertThat(now).as("fd closed by the last user").doesNotContain(info.getName());
        r.close(); // twice: nothing
    }
}
