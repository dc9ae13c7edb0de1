package io.uffdemu.client;

/**
 * Backing memory type of a mapping, as the kernel's userfaultfd code distinguishes it.
 *
 * <pre>{@code
 * boolean shmem = vma.memoryType() == MemoryType.SHMEM;
 * }</pre>
 */
public enum MemoryType {
  UNSPECIFIED, ANON, SHMEM, HUGETLB
}
