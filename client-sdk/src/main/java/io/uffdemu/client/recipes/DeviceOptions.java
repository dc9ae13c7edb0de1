package io.uffdemu.client.recipes;

import io.uffdemu.client.HandlerObserver;
import io.uffdemu.client.MemoryType;
import java.util.Objects;

/**
 * Options of a {@link SharedMemoryDevice}.
 *
 * @param memoryType {@link MemoryType#SHMEM} (a memfd) or {@link MemoryType#HUGETLB} (a 2 MiB hugetlbfs memfd)
 * @param size guest memory bytes (a multiple of the page size)
 * @param tracking how the hypervisor's writes are tracked
 * @param observer metrics hooks of the SYNC_WP handler loop
 */
public record DeviceOptions(MemoryType memoryType, long size, DirtyTracking tracking, HandlerObserver observer) {
  /** How dirty pages of guest memory are found. */
  public enum DirtyTracking {
    /** Synchronous uffd-wp: every first write to a protected page is a WP fault; the handler logs and un-protects it. */
    SYNC_WP,
    /** WP_ASYNC: writes never block; PAGEMAP_SCAN with WP_MATCHING returns the written pages and re-protects them. */
    ASYNC_WP
  }

  public DeviceOptions {
    Objects.requireNonNull(tracking);
    Objects.requireNonNull(observer);
    if (memoryType != MemoryType.SHMEM && memoryType != MemoryType.HUGETLB) {
      throw new IllegalArgumentException("guest memory must be SHMEM or HUGETLB, not " + memoryType);
    }
    if (size <= 0 || size % pageSize() != 0) {
      throw new IllegalArgumentException("size must be a positive multiple of " + pageSize());
    }
  }

  public static DeviceOptions of(MemoryType memoryType, long size, DirtyTracking tracking) {
    return new DeviceOptions(memoryType, size, tracking, HandlerObserver.NOOP);
  }

  public DeviceOptions withObserver(HandlerObserver observer) {
    return new DeviceOptions(memoryType, size, tracking, observer);
  }

  public long pageSize() {
    return memoryType == MemoryType.HUGETLB ? 2L << 20 : 4096;
  }
}
