package io.uffdemu.client;

/**
 * Outcome of an emulated access: data for reads, or the signal (SIGBUS, SIGSEGV) or errno it raised.
 *
 * <pre>{@code
 * AccessResult r = process.read(addr, 4096);
 * if (r.ok()) use(r.data()); else if (r.signal() == Linux.SIGBUS) ...
 * }</pre>
 *
 * @param signal 0, {@link Linux#SIGBUS} or {@link Linux#SIGSEGV}
 * @param siCode si_code of the signal
 * @param data bytes read (empty for writes)
 * @param errno errno for KERNEL/REMOTE/PROC_MEM failures, 0 on success
 * @param faultAddr faulting address for signals
 */
public record AccessResult(int signal, int siCode, byte[] data, int errno, long faultAddr) {
  public AccessResult {
    data = data == null ? new byte[0] : data;
  }

  public boolean ok() {
    return signal == 0 && errno == 0;
  }
}
