package io.uffdemu.client.impl;

import io.uffdemu.api.v1.AccessResponse;
import io.uffdemu.api.v1.ProcessInfo;
import io.uffdemu.api.v1.UffdMsg;
import io.uffdemu.client.AccessMode;
import io.uffdemu.client.AccessResult;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.Credentials;
import io.uffdemu.client.MemoryType;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.Vma;

/** Proto to SDK types and back; nothing else in the SDK reads proto messages field by field. */
final class ProtoMapper {
  private ProtoMapper() {}

  static io.uffdemu.api.v1.AddrRange range(AddrRange r) {
    return io.uffdemu.api.v1.AddrRange.newBuilder().setStart(r.start()).setLen(r.len()).build();
  }

  static io.uffdemu.client.ProcessInfo processInfo(ProcessInfo p) {
    return new io.uffdemu.client.ProcessInfo(p.getPid(), p.getName(),
        new Credentials(p.getCredentials().getUid(), p.getCredentials().getCapSysPtrace()), p.getParentPid(),
        p.getRssAnonBytes(), p.getRssShmemBytes(), p.getRssFileBytes(), p.getSwapBytes(), p.getMappingCount(),
        p.getFdsList());
  }

  static Vma vma(io.uffdemu.api.v1.Vma v) {
    MemoryType type = switch (v.getMemoryType()) {
      case MEMORY_TYPE_ANON -> MemoryType.ANON;
      case MEMORY_TYPE_SHMEM -> MemoryType.SHMEM;
      case MEMORY_TYPE_HUGETLB -> MemoryType.HUGETLB;
      default -> MemoryType.UNSPECIFIED;
    };
    return new Vma(v.getStart(), v.getEnd(), v.getPerms(), v.getOffset(), v.getPath(), type, v.getUffdMissing(),
        v.getUffdWp(), v.getUffdMinor(), v.getPageSize());
  }

  static io.uffdemu.api.v1.AccessMode accessMode(AccessMode m) {
    return switch (m) {
      case USER -> io.uffdemu.api.v1.AccessMode.ACCESS_MODE_USER;
      case KERNEL -> io.uffdemu.api.v1.AccessMode.ACCESS_MODE_KERNEL;
      case REMOTE -> io.uffdemu.api.v1.AccessMode.ACCESS_MODE_REMOTE;
      case PROC_MEM -> io.uffdemu.api.v1.AccessMode.ACCESS_MODE_PROC_MEM;
    };
  }

  static AccessResult access(AccessResponse r) {
    return new AccessResult(r.getSignal(), r.getSiCode(), r.getData().toByteArray(), r.getErrno(), r.getFaultAddr());
  }

  /** The message, or null when it carries no (known) argument. */
  static UffdMessage message(UffdMsg m) {
    long seq = m.getSeq();
    return switch (m.getArgCase()) {
      case PAGEFAULT -> UffdMessage.PageFault.of(m.getPagefault().getAddress(), m.getPagefault().getFlags(),
          m.getPagefault().getPtid(), seq);
      case FORK -> new UffdMessage.ForkEvent(m.getFork().getUfd(), m.getFork().getChildPid(), seq);
      case REMAP -> new UffdMessage.RemapEvent(m.getRemap().getFrom(), m.getRemap().getTo(), m.getRemap().getLen(),
          seq);
      case REMOVE -> new UffdMessage.RemoveEvent(m.getRemove().getStart(), m.getRemove().getEnd(), seq);
      case UNMAP -> new UffdMessage.UnmapEvent(m.getUnmap().getStart(), m.getUnmap().getEnd(), seq);
      default -> null;
    };
  }

  static io.uffdemu.client.UffdInfo uffdInfo(io.uffdemu.api.v1.UffdInfo u) {
    return new io.uffdemu.client.UffdInfo(u.getPid(), u.getFd(), u.getFlags(), u.getApiDone(), u.getFeatures(),
        u.getRangesList().stream().map(r -> new io.uffdemu.client.UffdInfo.RegisteredRange(
            new io.uffdemu.client.AddrRange(r.getRange().getStart(), r.getRange().getLen()), r.getMode())).toList(),
        u.getPendingFaults(), u.getTotalFaults(), u.getPendingEvents(), u.getHandlerAttached());
  }
}
