package io.uffdemu.client;

/**
 * A fault storm ({@link Process#storm}): {@code threads} threads of the process access [addr, addr + len) inside
 * the server, one access per {@code stride} bytes, thread t taking steps t, t + threads, ... Writes store a
 * 16-byte stamp (the step's address and {@code round}, little-endian) that {@code verify} checks afterwards.
 *
 * <pre>{@code
 * StormResult r = process.storm(StormOptions.writes(addr, len, 64).withRound(1).withVerify(true));
 * }</pre>
 *
 * @param addr start of the range
 * @param len bytes of the range
 * @param stride bytes per step (0: 4096; at least 16 otherwise)
 * @param threads threads (1..4096, and at most the tenant's blocked-threads quota)
 * @param write stores (true) or loads (false)
 * @param round the value stamped by writes
 * @param verify read every step back after the storm and count lost writes
 */
public record StormOptions(long addr, long len, long stride, int threads, boolean write, long round,
    boolean verify) {

  /** Stores into every page of the range by {@code threads} threads, stamped with round 0, not verified. */
  public static StormOptions writes(long addr, long len, int threads) {
    return new StormOptions(addr, len, 0, threads, true, 0, false);
  }

  /** Loads from every page of the range by {@code threads} threads. */
  public static StormOptions reads(long addr, long len, int threads) {
    return new StormOptions(addr, len, 0, threads, false, 0, false);
  }

  public StormOptions withStride(long stride) {
    return new StormOptions(addr, len, stride, threads, write, round, verify);
  }

  public StormOptions withRound(long round) {
    return new StormOptions(addr, len, stride, threads, write, round, verify);
  }

  public StormOptions withVerify(boolean verify) {
    return new StormOptions(addr, len, stride, threads, write, round, verify);
  }
}
