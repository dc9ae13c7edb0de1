package io.uffdemu.client.recipes;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.FaultContext;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.Linux;
import io.uffdemu.client.Memfd;
import io.uffdemu.client.MemoryType;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.PageRegion;
import io.uffdemu.client.PagemapScanOptions;
import io.uffdemu.client.PagemapScanResult;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Recipe 3: shared-memory device emulation. A "hypervisor" process creates guest memory as a memfd (shmem or
 * 2 MiB hugetlbfs) and maps it; a "device" process gets the same memfd with pidfd_getfd and maps it too. Only
 * the hypervisor's mapping is registered and write-protected: uffd-wp is per PTE, so device writes (DMA)
 * never fault, while the hypervisor's (guest) writes are tracked:
 *
 * <ul>
 *   <li>{@link DeviceOptions.DirtyTracking#SYNC_WP}: each first write to a protected page blocks on a WP fault;
 *       the handler adds the page to the dirty log and un-protects it;</li>
 *   <li>{@link DeviceOptions.DirtyTracking#ASYNC_WP}: a WP_ASYNC uffd; writes never block, and
 *       {@link #collectDirty()} is one PAGEMAP_SCAN with {@code WP_MATCHING | CHECK_WPASYNC} that returns the
 *       written pages and re-protects them atomically.</li>
 * </ul>
 *
 * <p>{@link #collectDirty()} returns the pages written since the previous call. As with KVM's dirty log, a write
 * racing with the call may be reported now rather than next time; copy the returned pages after the call
 * returns and nothing is missed.
 *
 * <pre>{@code
 * try (SharedMemoryDevice d = SharedMemoryDevice.create(client,
 *     DeviceOptions.of(MemoryType.SHMEM, 1 << 20, DeviceOptions.DirtyTracking.ASYNC_WP))) {
 *   d.device().write(d.deviceAddress(0), dmaData);  // never faults
 *   d.hypervisor().write(d.hypervisorAddress(8192), guestData);
 *   List<Long> dirty = d.collectDirty();             // [8192]
 * }
 * }</pre>
 */
public final class SharedMemoryDevice implements AutoCloseable {
  private final DeviceOptions options;
  private final Process hypervisor;
  private final Process device;
  private final Memfd memfd;
  private final long hvAddr;
  private final long devAddr;
  private final Userfaultfd uffd;
  private final HandlerLoop loop;
  private final ConcurrentSkipListSet<Long> dirty = new ConcurrentSkipListSet<>();
  private final AtomicLong wpFaults = new AtomicLong();
  private final AtomicLong collections = new AtomicLong();

  private SharedMemoryDevice(UffdemuClient client, DeviceOptions o) {
    this.options = o;
    this.hypervisor = client.createProcess("hypervisor");
    this.device = client.createProcess("device");
    int flags = Linux.MFD_CLOEXEC | (o.memoryType() == MemoryType.HUGETLB ? Linux.MFD_HUGETLB | Linux.MFD_HUGE_2MB : 0);
    this.memfd = hypervisor.memfdCreate("guest-ram", flags);
    memfd.ftruncate(o.size());
    this.hvAddr = memfd.mmap(o.size(), 0);
    int devFd = device.pidfdGetfd(hypervisor.pid(), memfd.fd());
    this.devAddr = device.memfd(devFd).mmap(o.size(), 0);
    AddrRange range = new AddrRange(hvAddr, o.size());
    long features = Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM | Linux.UFFD_FEATURE_WP_UNPOPULATED
        | (o.tracking() == DeviceOptions.DirtyTracking.ASYNC_WP ? Linux.UFFD_FEATURE_WP_ASYNC
            : Linux.UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    this.uffd = hypervisor.userfaultfd(UffdOptions.DEFAULT.withFeatures(features));
    uffd.register(range, Linux.UFFDIO_REGISTER_MODE_WP);
    uffd.writeProtect(range, Linux.UFFDIO_WRITEPROTECT_MODE_WP);
    if (o.tracking() == DeviceOptions.DirtyTracking.SYNC_WP) {
      this.loop = uffd.handle(new FaultHandler() {
        @Override
        public void onFault(FaultContext ctx) {
          if (ctx.message().wp()) {
            wpFaults.incrementAndGet();
            dirty.add(ctx.pageAddress() - hvAddr);
            ctx.writeUnprotect();
          } else {
            ctx.wake();
          }
        }
      }, HandlerOptions.DEFAULT.withPageSize(o.pageSize()).withObserver(o.observer()));
    } else {
      this.loop = null;
    }
  }

  /** Creates both processes, the shared memfd and both mappings, and arms the tracking. */
  public static SharedMemoryDevice create(UffdemuClient client, DeviceOptions options) {
    return new SharedMemoryDevice(client, options);
  }

  public Process hypervisor() {
    return hypervisor;
  }

  public Process device() {
    return device;
  }

  public Memfd memfd() {
    return memfd;
  }

  public long size() {
    return options.size();
  }

  public long pageSize() {
    return options.pageSize();
  }

  /** The hypervisor's address of guest offset {@code offset}. */
  public long hypervisorAddress(long offset) {
    return hvAddr + offset;
  }

  /** The device's address of guest offset {@code offset}. */
  public long deviceAddress(long offset) {
    return devAddr + offset;
  }

  /** WP faults the SYNC_WP handler has taken (0 with ASYNC_WP: nothing blocks). */
  public long wpFaults() {
    return wpFaults.get();
  }

  public long collections() {
    return collections.get();
  }

  /**
   * Guest offsets (page-aligned, ascending) of the pages the hypervisor wrote since the last call, which are
   * write-protected again when this returns. Device writes never appear.
   */
  public List<Long> collectDirty() {
    collections.incrementAndGet();
    AddrRange range = new AddrRange(hvAddr, options.size());
    if (options.tracking() == DeviceOptions.DirtyTracking.SYNC_WP) {
      List<Long> out = new ArrayList<>();
      for (Long off; (off = dirty.pollFirst()) != null; ) {
        out.add(off);
      }
      for (long off : out) {
        uffd.writeProtect(new AddrRange(hvAddr + off, options.pageSize()), Linux.UFFDIO_WRITEPROTECT_MODE_WP);
      }
      return out;
    }
    TreeSet<Long> out = new TreeSet<>();
    long start = range.start();
    while (start < range.end()) {
      PagemapScanResult r = hypervisor.pagemapScan(PagemapScanOptions.of(AddrRange.ofBounds(start, range.end()))
          .withFlags(Linux.PM_SCAN_WP_MATCHING | Linux.PM_SCAN_CHECK_WPASYNC)
          .withCategoryMask(Linux.PAGE_IS_WRITTEN).withReturnMask(Linux.PAGE_IS_WRITTEN));
      for (PageRegion pr : r.regions()) {
        for (long a = pr.start() & -options.pageSize(); a < pr.end(); a += options.pageSize()) {
          out.add(a - hvAddr);
        }
      }
      if (r.walkEnd() <= start) {
        break;
      }
      start = r.walkEnd();
    }
    return new ArrayList<>(out);
  }

  /** Stops tracking (closes the uffd) and exits both processes. */
  @Override
  public void close() {
    try {
      if (loop != null) {
        loop.close();
      }
      uffd.close();
    } finally {
      device.exit();
      hypervisor.exit();
    }
  }
}
