package io.uffdemu.client.impl;

import io.uffdemu.client.Memfd;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;

final class MemfdImpl implements Memfd {
  private final ProcessImpl process;
  private final int fd;

  MemfdImpl(ProcessImpl process, int fd) {
    this.process = process;
    this.fd = fd;
  }

  @Override
  public Process process() {
    return process;
  }

  @Override
  public int fd() {
    return fd;
  }

  @Override
  public void ftruncate(long length) {
    process.ftruncate(fd, length);
  }

  @Override
  public void fallocate(int mode, long offset, long len) {
    process.fallocate(fd, mode, offset, len);
  }

  @Override
  public byte[] pread(long offset, int len) {
    return process.pread(fd, offset, len);
  }

  @Override
  public long pwrite(long offset, byte[] data) {
    return process.pwrite(fd, offset, data);
  }

  @Override
  public long mmap(long len, long offset) {
    return process.mmap(MmapOptions.DEFAULT.withLength(len).sharedFile(fd, offset));
  }

  @Override
  public void close() {
    process.close(fd);
  }

  @Override
  public String toString() {
    return "Memfd[pid=" + process.pid() + ", fd=" + fd + "]";
  }
}
