package io.uffdemu.server.mm;

/**
 * The outcome of an emulated access: data for reads, or the signal a user access raised
 * ({@code force_sig_fault()}), or the errno a kernel access returned.
 */
public record AccessResult(int signal, int siCode, long faultAddr, Errno errno, byte[] data) {
    static AccessResult ok(byte[] data) {
        return new AccessResult(0, 0, 0, null, data);
    }

    static AccessResult signal(int sig, int code, long addr) {
        return new AccessResult(sig, code, addr, null, null);
    }

    static AccessResult error(Errno e, long addr) {
        return new AccessResult(0, 0, addr, e, null);
    }

    public boolean succeeded() {
        return signal == 0 && errno == null;
    }
}
