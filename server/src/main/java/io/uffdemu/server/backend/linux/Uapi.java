package io.uffdemu.server.backend.linux;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;

/**
 * Every kernel struct the native backend passes to or gets from the kernel, declared once (x86_64 layouts,
 * {@code include/uapi/linux/userfaultfd.h}, {@code include/uapi/linux/fs.h}, {@code poll.h}, {@code uio.h}), plus
 * the ioctl request numbers. Offsets are derived from the layouts, never written by hand elsewhere.
 */
final class Uapi {
    private Uapi() {
    }

    // ---- ioctl numbers ----
    static final long USERFAULTFD_IOC_NEW = 0xAA00L;
    static final long UFFDIO_REGISTER = 0xc020aa00L;
    static final long UFFDIO_UNREGISTER = 0x8010aa01L;
    static final long UFFDIO_WAKE = 0x8010aa02L;
    static final long UFFDIO_COPY = 0xc028aa03L;
    static final long UFFDIO_ZEROPAGE = 0xc020aa04L;
    static final long UFFDIO_MOVE = 0xc028aa05L;
    static final long UFFDIO_WRITEPROTECT = 0xc018aa06L;
    static final long UFFDIO_CONTINUE = 0xc020aa07L;
    static final long UFFDIO_POISON = 0xc020aa08L;
    static final long UFFDIO_API = 0xc018aa3fL;
    /** {@code _IOWR('f', 16, struct pm_scan_arg)}. */
    static final long PAGEMAP_SCAN = 0xc0606610L;
    /** {@code _IOWR('f', 17, struct procmap_query)} (6.11+). */
    static final long PROCMAP_QUERY = 0xc0686611L;

    static final long SYS_USERFAULTFD = 323;

    // ---- struct uffdio_range / api / register / copy / zeropage / writeprotect / continue / poison / move ----
    static final StructLayout UFFDIO_RANGE = MemoryLayout.structLayout(JAVA_LONG.withName("start"),
            JAVA_LONG.withName("len")).withName("uffdio_range");
    static final StructLayout UFFDIO_API_S = MemoryLayout.structLayout(JAVA_LONG.withName("api"),
            JAVA_LONG.withName("features"), JAVA_LONG.withName("ioctls")).withName("uffdio_api");
    static final StructLayout UFFDIO_REGISTER_S = MemoryLayout.structLayout(UFFDIO_RANGE.withName("range"),
            JAVA_LONG.withName("mode"), JAVA_LONG.withName("ioctls")).withName("uffdio_register");
    static final StructLayout UFFDIO_COPY_S = MemoryLayout.structLayout(JAVA_LONG.withName("dst"),
            JAVA_LONG.withName("src"), JAVA_LONG.withName("len"), JAVA_LONG.withName("mode"),
            JAVA_LONG.withName("copy")).withName("uffdio_copy");
    /** uffdio_zeropage, uffdio_continue and uffdio_poison share this shape (range, mode, result). */
    static final StructLayout UFFDIO_RANGE_MODE_RESULT = MemoryLayout.structLayout(UFFDIO_RANGE.withName("range"),
            JAVA_LONG.withName("mode"), JAVA_LONG.withName("result")).withName("uffdio_zeropage");
    static final StructLayout UFFDIO_WRITEPROTECT_S = MemoryLayout.structLayout(UFFDIO_RANGE.withName("range"),
            JAVA_LONG.withName("mode")).withName("uffdio_writeprotect");
    // Offsets of the fields the fault round trip writes per call (COPY, WRITEPROTECT): computed once, like
    // MSG_*, rather than looked up by name per ioctl (docs/benchmarks.md item 14).
    static final long COPY_DST = off(UFFDIO_COPY_S, "dst");
    static final long COPY_SRC = off(UFFDIO_COPY_S, "src");
    static final long COPY_LEN = off(UFFDIO_COPY_S, "len");
    static final long COPY_MODE = off(UFFDIO_COPY_S, "mode");
    static final long COPY_COPY = off(UFFDIO_COPY_S, "copy");
    static final long WP_START = off(UFFDIO_WRITEPROTECT_S, "range", "start");
    static final long WP_LEN = off(UFFDIO_WRITEPROTECT_S, "range", "len");
    static final long WP_MODE = off(UFFDIO_WRITEPROTECT_S, "mode");
    static final StructLayout UFFDIO_MOVE_S = MemoryLayout.structLayout(JAVA_LONG.withName("dst"),
            JAVA_LONG.withName("src"), JAVA_LONG.withName("len"), JAVA_LONG.withName("mode"),
            JAVA_LONG.withName("move")).withName("uffdio_move");

    /** struct uffd_msg: packed, 32 bytes; the arg union is read at fixed offsets (see {@link #MSG_ARG0}). */
    static final StructLayout UFFD_MSG = MemoryLayout.structLayout(JAVA_BYTE.withName("event"),
            JAVA_BYTE.withName("reserved1"), JAVA_SHORT.withName("reserved2"), JAVA_INT.withName("reserved3"),
            JAVA_LONG.withName("arg0"), JAVA_LONG.withName("arg1"), JAVA_LONG.withName("arg2")).withName("uffd_msg");
    static final long MSG_EVENT = off(UFFD_MSG, "event");
    /** pagefault.flags, fork.ufd (u32), remap.from, remove.start. */
    static final long MSG_ARG0 = off(UFFD_MSG, "arg0");
    /** pagefault.address, remap.to, remove.end. */
    static final long MSG_ARG1 = off(UFFD_MSG, "arg1");
    /** pagefault.feat.ptid (u32), remap.len. */
    static final long MSG_ARG2 = off(UFFD_MSG, "arg2");

    /** struct pm_scan_arg (96 bytes). */
    static final StructLayout PM_SCAN_ARG = MemoryLayout.structLayout(JAVA_LONG.withName("size"),
            JAVA_LONG.withName("flags"), JAVA_LONG.withName("start"), JAVA_LONG.withName("end"),
            JAVA_LONG.withName("walk_end"), JAVA_LONG.withName("vec"), JAVA_LONG.withName("vec_len"),
            JAVA_LONG.withName("max_pages"), JAVA_LONG.withName("category_inverted"),
            JAVA_LONG.withName("category_mask"), JAVA_LONG.withName("category_anyof_mask"),
            JAVA_LONG.withName("return_mask")).withName("pm_scan_arg");
    /** struct page_region (24 bytes). */
    static final StructLayout PAGE_REGION = MemoryLayout.structLayout(JAVA_LONG.withName("start"),
            JAVA_LONG.withName("end"), JAVA_LONG.withName("categories")).withName("page_region");

    /** struct procmap_query (104 bytes, 6.11+). */
    static final StructLayout PROCMAP_QUERY_S = MemoryLayout.structLayout(JAVA_LONG.withName("size"),
            JAVA_LONG.withName("query_flags"), JAVA_LONG.withName("query_addr"), JAVA_LONG.withName("vma_start"),
            JAVA_LONG.withName("vma_end"), JAVA_LONG.withName("vma_flags"), JAVA_LONG.withName("vma_page_size"),
            JAVA_LONG.withName("vma_offset"), JAVA_LONG.withName("inode"), JAVA_INT.withName("dev_major"),
            JAVA_INT.withName("dev_minor"), JAVA_INT.withName("vma_name_size"), JAVA_INT.withName("build_id_size"),
            JAVA_LONG.withName("vma_name_addr"), JAVA_LONG.withName("build_id_addr")).withName("procmap_query");
    static final long PROCMAP_QUERY_COVERING_OR_NEXT_VMA = 0x10;
    static final long PROCMAP_QUERY_VMA_READABLE = 1, PROCMAP_QUERY_VMA_WRITABLE = 2,
            PROCMAP_QUERY_VMA_EXECUTABLE = 4, PROCMAP_QUERY_VMA_SHARED = 8;

    /** struct pollfd (8 bytes). */
    static final StructLayout POLLFD = MemoryLayout.structLayout(JAVA_INT.withName("fd"),
            JAVA_SHORT.withName("events"), JAVA_SHORT.withName("revents")).withName("pollfd");
    static final short POLLIN = 1, POLLERR = 8, POLLHUP = 0x10;

    /** struct iovec (16 bytes). */
    static final StructLayout IOVEC = MemoryLayout.structLayout(JAVA_LONG.withName("iov_base"),
            JAVA_LONG.withName("iov_len")).withName("iovec");

    /** struct utsname: six 65-byte fields. */
    static final long UTSNAME_SIZE = 6 * 65;
    static final long UTSNAME_RELEASE = 2 * 65;

    /**
     * Offsets already resolved: the layout path walk showed up in the ioctl hot paths' profiles. In a holder class
     * because this class's own static initialisers call {@link #off}.
     */
    private static final class Offsets {
        static final java.util.concurrent.ConcurrentHashMap<OffKey, Long> MAP =
                new java.util.concurrent.ConcurrentHashMap<>();
    }

    /** A layout (by identity: they are constants) and a one-element path. */
    private record OffKey(StructLayout layout, String field) {
        @Override
        public boolean equals(Object o) {
            return o instanceof OffKey k && k.layout == layout && k.field.equals(field);
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(layout) * 31 + field.hashCode();
        }
    }

    static long off(StructLayout l, String... path) {
        if (path.length == 1) {
            OffKey k = new OffKey(l, path[0]);
            Long o = Offsets.MAP.get(k);
            if (o == null) {
                o = l.byteOffset(groupElement(path[0]));
                Offsets.MAP.put(k, o);
            }
            return o;
        }
        OffKey k = new OffKey(l, String.join(".", path));
        Long o = Offsets.MAP.get(k);
        if (o != null) {
            return o;
        }
        MemoryLayout.PathElement[] p = new MemoryLayout.PathElement[path.length];
        for (int i = 0; i < path.length; i++) {
            p[i] = groupElement(path[i]);
        }
        o = l.byteOffset(p);
        Offsets.MAP.put(k, o);
        return o;
    }
}
