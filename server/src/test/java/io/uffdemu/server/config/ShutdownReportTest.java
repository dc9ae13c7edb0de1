package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.server.backend.emulated.EmulatedBackend;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.Kernel;
import io.uffdemu.server.mm.Linux;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;

/** The shutdown report names what was abandoned: live processes, blocked threads, unread messages. */
@ExtendWith(OutputCaptureExtension.class)
class ShutdownReportTest {
    @Test
    @Timeout(20)
    void reportsBlockedThreadsAndUnreadFaults(CapturedOutput output) throws Exception {
        EmulatedBackend b = new EmulatedBackend(new Kernel.Config(64L << 20, 0, 0, 0, true));
        int pid = b.createProcess("p", 0, true, "t").pid();
        long a = b.mmap(pid, 0, 4096, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        int fd = b.userfaultfd(pid, 0, false);
        b.uffdApi(pid, fd, Linux.UFFD_API, 0);
        b.uffdRegister(pid, fd, a, 4096, Linux.UFFDIO_REGISTER_MODE_MISSING);
        Thread t = Thread.ofVirtual().start(() -> {
            try {
                b.access(pid, a, 1, false, null, AccessMode.USER, Long.MAX_VALUE);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        while (b.kernel().faultGauges()[1] < 1) {
            Thread.sleep(5);
        }
        new ShutdownReport(b).stop();
        assertThat(output).contains("abandoned 1 process(es), 1 blocked faulting thread(s), 1 unread userfault message(s)");
        t.interrupt();
        t.join();
    }
}
