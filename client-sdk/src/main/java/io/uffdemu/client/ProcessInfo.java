package io.uffdemu.client;

import java.util.List;

/**
 * What the server knows of an emulated process (its /proc status, roughly).
 *
 * <pre>{@code
 * ProcessInfo i = process.info();
 * System.out.println(i.pid() + " rss anon " + i.rssAnonBytes());
 * }</pre>
 */
public record ProcessInfo(int pid, String name, Credentials credentials, int parentPid, long rssAnonBytes,
    long rssShmemBytes, long rssFileBytes, long swapBytes, int mappingCount, List<Integer> fds) {
  public ProcessInfo {
    fds = List.copyOf(fds);
  }
}
