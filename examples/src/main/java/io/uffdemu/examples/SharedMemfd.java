package io.uffdemu.examples;

import io.uffdemu.client.Linux;
import io.uffdemu.client.Memfd;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdemuClient;

/**
 * Two processes share one memfd: the owner creates it, the peer takes a copy of the fd with pidfd_getfd(2)
 * ({@code MemoryService.PidfdGetfd}, needs CAP_SYS_PTRACE, which {@code Credentials.ROOT} has) and maps it
 * MAP_SHARED; a store by one is a load by the other.
 */
public final class SharedMemfd {
    private SharedMemfd() {
    }

    public static void main(String[] args) {
        try (UffdemuClient client = Args.connect(args)) {
            Process owner = client.createProcess("owner");
            Process peer = client.createProcess("peer");
            Memfd m = owner.memfdCreate("shared", Linux.MFD_CLOEXEC);
            m.ftruncate(4 * 4096);
            long a = m.mmap(4 * 4096, 0);
            int peerFd = peer.pidfdGetfd(owner.pid(), m.fd());
            long b = peer.memfd(peerFd).mmap(4 * 4096, 0);
            owner.write(a + 4096, "hello from the owner".getBytes());
            System.out.println("peer reads: " + new String(peer.read(b + 4096, 20).data()));
            peer.write(b, "hi back".getBytes());
            System.out.println("owner reads: " + new String(owner.read(a, 7).data()));
            peer.exit();
            owner.exit();
        }
    }
}
