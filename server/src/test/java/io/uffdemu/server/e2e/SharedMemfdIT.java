package io.uffdemu.server.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.client.Credentials;
import io.uffdemu.client.EbadfException;
import io.uffdemu.client.Linux;
import io.uffdemu.client.Memfd;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdemuClient;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** pidfd_getfd through the SDK (examples/SharedMemfd). */
class SharedMemfdIT extends E2eBase {

    @Test
    @Timeout(60)
    void twoProcessesShareOneMemfd() {
        UffdemuClient client = client();
        Process owner = client.createProcess("owner");
        Process peer = client.createProcess("peer", Credentials.ROOT);
        Memfd m = owner.memfdCreate("shared", 0);
        m.ftruncate(4 * PAGE);
        long a = m.mmap(4 * PAGE, 0);
        int fd = peer.pidfdGetfd(owner.pid(), m.fd());
        long b = peer.memfd(fd).mmap(4 * PAGE, 0);
        owner.write(a + PAGE, "hello from owner".getBytes());
        assertThat(new String(peer.read(b + PAGE, 16).data())).isEqualTo("hello from owner");
        peer.write(b, "and back".getBytes());
        assertThat(new String(owner.read(a, 8).data())).isEqualTo("and back");
        assertThat(peer.info().fds()).contains(fd);
        assertThatThrownBy(() -> peer.pidfdGetfd(owner.pid(), 999)).isInstanceOf(EbadfException.class);
    }
}
