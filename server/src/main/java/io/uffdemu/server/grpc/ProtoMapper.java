package io.uffdemu.server.grpc;

import io.uffdemu.api.v1.AccessMode;
import io.uffdemu.api.v1.Credentials;
import io.uffdemu.api.v1.ForkEvent;
import io.uffdemu.api.v1.MemoryType;
import io.uffdemu.api.v1.Pagefault;
import io.uffdemu.api.v1.ProcessInfo;
import io.uffdemu.api.v1.RangeEvent;
import io.uffdemu.api.v1.RemapEvent;
import io.uffdemu.api.v1.UffdMsg;
import io.uffdemu.api.v1.Vma;
import io.uffdemu.server.backend.VmaInfo;
import io.uffdemu.server.mm.Linux;

/** Core / SPI values ⇄ protobuf messages. */
final class ProtoMapper {
    private ProtoMapper() {
    }

    static ProcessInfo process(io.uffdemu.server.backend.ProcessInfo p) {
        return ProcessInfo.newBuilder().setPid(p.pid()).setName(p.name())
                .setCredentials(Credentials.newBuilder().setUid(p.uid()).setCapSysPtrace(p.capSysPtrace()))
                .setParentPid(p.parentPid()).setRssAnonBytes(p.rssAnonBytes()).setRssShmemBytes(p.rssShmemBytes())
                .setSwapBytes(p.swapBytes()).setMappingCount(p.mappingCount()).addAllFds(p.fds()).build();
    }

    static Vma vma(VmaInfo v) {
        return Vma.newBuilder().setStart(v.start()).setEnd(v.end()).setPerms(v.perms()).setOffset(v.offset())
                .setPath(v.path()).setMemoryType(switch (v.memoryType()) {
                    case ANON -> MemoryType.MEMORY_TYPE_ANON;
                    case SHMEM -> MemoryType.MEMORY_TYPE_SHMEM;
                    case HUGETLB -> MemoryType.MEMORY_TYPE_HUGETLB;
                })
                .setUffdMissing((v.uffdFlags() & Linux.UFFDIO_REGISTER_MODE_MISSING) != 0)
                .setUffdWp((v.uffdFlags() & Linux.UFFDIO_REGISTER_MODE_WP) != 0)
                .setUffdMinor((v.uffdFlags() & Linux.UFFDIO_REGISTER_MODE_MINOR) != 0)
                .setPageSize(v.pageSize()).build();
    }

    static io.uffdemu.server.mm.AccessMode accessMode(AccessMode m) {
        return switch (m) {
            case ACCESS_MODE_KERNEL -> io.uffdemu.server.mm.AccessMode.KERNEL;
            case ACCESS_MODE_REMOTE -> io.uffdemu.server.mm.AccessMode.REMOTE;
            case ACCESS_MODE_PROC_MEM -> io.uffdemu.server.mm.AccessMode.PROC_MEM;
            case ACCESS_MODE_USER, ACCESS_MODE_UNSPECIFIED -> io.uffdemu.server.mm.AccessMode.USER;
            default -> throw Errors.invalid("unknown access mode " + m);
        };
    }

    static UffdMsg msg(io.uffdemu.server.mm.UffdMsg m) {
        UffdMsg.Builder b = UffdMsg.newBuilder().setEvent(m.event()).setSeq(m.seq());
        switch (m) {
            case io.uffdemu.server.mm.UffdMsg.Pagefault p -> b.setPagefault(Pagefault.newBuilder()
                    .setFlags(p.flags()).setAddress(p.address()).setPtid(p.ptid()));
            case io.uffdemu.server.mm.UffdMsg.Fork f -> b.setFork(ForkEvent.newBuilder().setUfd(f.ufd())
                    .setChildPid(f.childPid()));
            case io.uffdemu.server.mm.UffdMsg.Remap r -> b.setRemap(RemapEvent.newBuilder().setFrom(r.from())
                    .setTo(r.to()).setLen(r.len()));
            case io.uffdemu.server.mm.UffdMsg.Remove r -> b.setRemove(RangeEvent.newBuilder().setStart(r.start())
                    .setEnd(r.end()));
            case io.uffdemu.server.mm.UffdMsg.Unmap u -> b.setUnmap(RangeEvent.newBuilder().setStart(u.start())
                    .setEnd(u.end()));
        }
        return b.build();
    }
}
