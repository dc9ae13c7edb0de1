package io.uffdemu.client;

import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Asynchronous view of a {@link Process}: each method runs the synchronous call on a virtual thread and
 * completes the future with its result or exception (unwrapped: an {@link ErrnoException} subclass, ...).
 *
 * <pre>{@code
 * CompletableFuture<AccessResult> r = process.async().read(addr, 4096); // resolves when the fault is served
 * }</pre>
 */
public interface AsyncProcess {
  Process sync();

  CompletableFuture<Long> mmap(MmapOptions options);

  CompletableFuture<Void> munmap(long addr, long len);

  CompletableFuture<Long> mremap(long oldAddr, long oldLen, long newLen, int flags, long newAddr);

  CompletableFuture<Void> mprotect(long addr, long len, int prot);

  CompletableFuture<Void> madvise(long addr, long len, int advice);

  CompletableFuture<Memfd> memfdCreate(String name, int flags);

  CompletableFuture<byte[]> pread(int fd, long offset, int len);

  CompletableFuture<Long> pwrite(int fd, long offset, byte[] data);

  CompletableFuture<AccessResult> read(long addr, int len);

  CompletableFuture<AccessResult> read(long addr, int len, AccessMode mode);

  CompletableFuture<AccessResult> write(long addr, byte[] data);

  CompletableFuture<AccessResult> write(long addr, byte[] data, AccessMode mode);

  CompletableFuture<List<Vma>> maps();

  /** {@link Process#userfaultfds()}. */
  CompletableFuture<List<UffdInfo>> userfaultfds();

  CompletableFuture<List<PagemapEntry>> pagemap(long start, long pages);

  CompletableFuture<PagemapScanResult> pagemapScan(PagemapScanOptions options);

  CompletableFuture<Process> fork();

  CompletableFuture<Void> exit();
}
