package io.uffdemu.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.client.BatchFaultHandler;
import io.uffdemu.client.UffdMessage;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * The remote bench's handler ends a case on its first failure (the case used to wait out the storm call's deadline
 * for a faulting thread that FallbackPolicy.FAIL leaves blocked, and fail without the cause): it aborts once,
 * whatever fails after, and the case reports the first failure with the fault's address.
 */
class RemoteRoundTripTest {
    @Test
    void firstFailureAbortsOnceAndIsReported() {
        AtomicInteger aborts = new AtomicInteger();
        var h = new RemoteRoundTrip.BenchHandler(false, 4096, aborts::incrementAndGet);
        assertThatCode(() -> h.check("anon-missing")).doesNotThrowAnyException();
        assertThat(h.failure()).isNull();

        h.onFailure(UffdMessage.PageFault.of(0x7f0000001000L, 0, 0, 1), new RuntimeException("UFFDIO_COPY: EFAULT"));
        h.onFailure(UffdMessage.PageFault.of(0x7f0000002000L, 0, 0, 2), new RuntimeException("second"));
        h.onError(new RuntimeException("stream failed"));
        assertThat(aborts).hasValue(1);
        assertThatThrownBy(() -> h.check("anon-missing"))
            .isInstanceOf(IllegalStateException.class)
            .hasMessageContaining("anon-missing")
            .hasMessageContaining("0x7f0000001000")
            .hasMessageContaining("EFAULT");
    }

    @Test
    void aFailedStreamAbortsToo() {
        AtomicInteger aborts = new AtomicInteger();
        var h = new RemoteRoundTrip.BatchBenchHandler(true, 4096, aborts::incrementAndGet);
        assertThat(h).isInstanceOf(BatchFaultHandler.class);
        h.onError(new RuntimeException("UNAVAILABLE"));
        assertThat(aborts).hasValue(1);
        assertThatThrownBy(() -> h.check("shmem-wp")).hasMessageContaining("handler stream failed");
    }
}
