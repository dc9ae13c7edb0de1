package io.uffdemu.client;

/**
 * One line of {@code /proc/PID/maps} plus the userfaultfd registration of the VMA.
 *
 * <pre>{@code
 * for (Vma v : process.maps()) if (v.uffdMissing()) System.out.println(v.range() + " " + v.perms());
 * }</pre>
 *
 * @param perms "rw-p" as in /proc/PID/maps
 * @param path "/memfd:name (deleted)", "[anon]", ...
 * @param pageSize 4096, 2 MiB or 1 GiB
 */
public record Vma(long start, long end, String perms, long offset, String path, MemoryType memoryType,
    boolean uffdMissing, boolean uffdWp, boolean uffdMinor, long pageSize) {

  public AddrRange range() {
    return AddrRange.ofBounds(start, end);
  }

  public boolean readable() {
    return perms.length() > 0 && perms.charAt(0) == 'r';
  }

  public boolean writable() {
    return perms.length() > 1 && perms.charAt(1) == 'w';
  }

  public boolean executable() {
    return perms.length() > 2 && perms.charAt(2) == 'x';
  }

  public boolean shared() {
    return perms.length() > 3 && perms.charAt(3) == 's';
  }
}
