package io.uffdemu.server.backend;

import java.util.List;

/** A process as listings show it. Sizes in bytes. */
public record ProcessInfo(int pid, String name, int uid, boolean capSysPtrace, int parentPid, long rssAnonBytes,
        long rssShmemBytes, long swapBytes, int mappingCount, List<Integer> fds, String owner) {
}
