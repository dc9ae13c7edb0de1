package io.uffdemu.server.backend;

/** One line of /proc/PID/maps plus the uffd registration (as smaps' VmFlags um/uw/ui show it). */
public record VmaInfo(long start, long end, String perms, long offset, String path, MemoryType memoryType,
        int uffdFlags, long pageSize) {

    public enum MemoryType { ANON, SHMEM, HUGETLB }
}
