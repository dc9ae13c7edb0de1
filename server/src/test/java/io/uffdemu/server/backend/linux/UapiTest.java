package io.uffdemu.server.backend.linux;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.StructLayout;
import org.junit.jupiter.api.Test;

/**
 * The struct layouts of include/uapi/linux/userfaultfd.h and fs.h against what the kernel's ioctl numbers encode:
 * an _IOWR number carries sizeof(struct) in bits 16..29, so a layout of the wrong size would be rejected (or worse,
 * read short) by the real kernel. Runs anywhere: no syscall is made.
 */
class UapiTest {
    private static long iocSize(long request) {
        return (request >>> 16) & 0x3fff;
    }

    @Test
    void everyIoctlStructHasTheSizeItsRequestNumberEncodes() {
        assertSize(Uapi.UFFDIO_API, Uapi.UFFDIO_API_S);
        assertSize(Uapi.UFFDIO_REGISTER, Uapi.UFFDIO_REGISTER_S);
        assertSize(Uapi.UFFDIO_UNREGISTER, Uapi.UFFDIO_RANGE);
        assertSize(Uapi.UFFDIO_WAKE, Uapi.UFFDIO_RANGE);
        assertSize(Uapi.UFFDIO_COPY, Uapi.UFFDIO_COPY_S);
        assertSize(Uapi.UFFDIO_ZEROPAGE, Uapi.UFFDIO_RANGE_MODE_RESULT);
        assertSize(Uapi.UFFDIO_CONTINUE, Uapi.UFFDIO_RANGE_MODE_RESULT);
        assertSize(Uapi.UFFDIO_POISON, Uapi.UFFDIO_RANGE_MODE_RESULT);
        assertSize(Uapi.UFFDIO_WRITEPROTECT, Uapi.UFFDIO_WRITEPROTECT_S);
        assertSize(Uapi.UFFDIO_MOVE, Uapi.UFFDIO_MOVE_S);
        assertSize(Uapi.PAGEMAP_SCAN, Uapi.PM_SCAN_ARG);
        assertSize(Uapi.PROCMAP_QUERY, Uapi.PROCMAP_QUERY_S);
        assertThat(Uapi.UFFD_MSG.byteSize()).as("sizeof(struct uffd_msg)").isEqualTo(32);
    }

    @Test
    void theHotPathOffsetsAreTheHeaderFieldOffsets() {
        // struct uffdio_copy { __u64 dst, src, len, mode; __s64 copy; }
        assertThat(new long[] {Uapi.COPY_DST, Uapi.COPY_SRC, Uapi.COPY_LEN, Uapi.COPY_MODE, Uapi.COPY_COPY})
                .containsExactly(0, 8, 16, 24, 32);
        // struct uffdio_writeprotect { struct uffdio_range range { __u64 start, len; }; __u64 mode; }
        assertThat(new long[] {Uapi.WP_START, Uapi.WP_LEN, Uapi.WP_MODE}).containsExactly(0, 8, 16);
        // struct uffd_msg { __u8 event; __u8 reserved1; __u16 reserved2; __u32 reserved3; union arg (packed) }
        assertThat(new long[] {Uapi.MSG_EVENT, Uapi.MSG_ARG0, Uapi.MSG_ARG1, Uapi.MSG_ARG2})
                .containsExactly(0, 8, 16, 24);
        // the by-name lookup the colder calls use agrees with the constants
        assertThat(Uapi.off(Uapi.UFFDIO_COPY_S, "copy")).isEqualTo(Uapi.COPY_COPY);
        assertThat(Uapi.off(Uapi.UFFDIO_WRITEPROTECT_S, "range", "len")).isEqualTo(Uapi.WP_LEN);
    }

    private static void assertSize(long request, StructLayout layout) {
        assertThat(layout.byteSize()).as("sizeof(struct %s) against request 0x%x", layout.name().orElse("?"), request)
                .isEqualTo(iocSize(request));
    }
}
