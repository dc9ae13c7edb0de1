package io.uffdemu.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.Status;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(20)
class RetryTest {
  FakeServer fake;
  UffdemuClient client;
  Process process;
  Userfaultfd uffd;

  @BeforeEach
  void setUp() throws Exception {
    fake = new FakeServer();
    client = fake.client(); // 3 attempts
    process = client.createProcess("t");
    uffd = process.userfaultfd(UffdOptions.DEFAULT);
  }

  @AfterEach
  void tearDown() throws Exception {
    client.close();
    fake.close();
  }

  private void unavailable(String method, int times) {
    for (int i = 0; i < times; i++) {
      fake.failNext(method, Status.UNAVAILABLE.withDescription("connection reset").asRuntimeException());
    }
  }

  @Test
  void wakeIsRetriedOnTransportFailure() {
    unavailable("Wake", 2);
    uffd.wake(new AddrRange(0x10000, 4096));
    assertThat(fake.calls("Wake")).isEqualTo(3);
  }

  @Test
  void writeProtectIsRetried() {
    unavailable("WriteProtect", 1);
    uffd.writeProtect(new AddrRange(0x10000, 4096), Linux.UFFDIO_WRITEPROTECT_MODE_WP);
    assertThat(fake.calls("WriteProtect")).isEqualTo(2);
  }

  @Test
  void readsAreRetried() {
    unavailable("Maps", 2);
    unavailable("ReadPagemap", 1);
    unavailable("Pread", 1);
    assertThat(process.maps()).hasSize(1);
    assertThat(process.pagemap(0x1000, 2)).hasSize(2);
    assertThat(process.pread(3, 0, 16)).hasSize(16);
    assertThat(fake.calls("Maps")).isEqualTo(3);
    assertThat(fake.calls("ReadPagemap")).isEqualTo(2);
    assertThat(fake.calls("Pread")).isEqualTo(2);
  }

  @Test
  void copyIsNeverRetried() {
    unavailable("Copy", 1);
    assertThatThrownBy(() -> uffd.copy(0x10000, new byte[4096], 0)).isInstanceOf(ServerUnavailableException.class);
    assertThat(fake.calls("Copy")).isEqualTo(1);
  }

  @Test
  void otherNonIdempotentCallsAreNotRetried() {
    unavailable("Mmap", 1);
    unavailable("Access", 1);
    assertThatThrownBy(() -> process.mmap(MmapOptions.anonymous(4096))).isInstanceOf(ServerUnavailableException.class);
    assertThatThrownBy(() -> process.read(0x1000, 1)).isInstanceOf(ServerUnavailableException.class);
    assertThat(fake.calls("Mmap")).isEqualTo(1);
    assertThat(fake.calls("Access")).isEqualTo(1);
  }

  @Test
  void retriesStopAfterConfiguredAttempts() {
    unavailable("Wake", 5);
    assertThatThrownBy(() -> uffd.wake(new AddrRange(0x10000, 4096)))
        .isInstanceOf(ServerUnavailableException.class);
    assertThat(fake.calls("Wake")).isEqualTo(3);
  }

  @Test
  void errnoFailuresAreNotRetriedEvenForIdempotentCalls() {
    fake.failNext("Wake", FakeServer.errno(Status.Code.INVALID_ARGUMENT, 22, "EINVAL", "UFFDIO_WAKE", 0));
    assertThatThrownBy(() -> uffd.wake(new AddrRange(0x10001, 1))).isInstanceOf(EinvalException.class);
    assertThat(fake.calls("Wake")).isEqualTo(1);
  }

  @Test
  void unavailableCarryingErrnoIsNotRetried() {
    fake.failNext("Wake", FakeServer.errno(Status.Code.UNAVAILABLE, 11, "EAGAIN", "UFFDIO_WAKE", 0));
    assertThatThrownBy(() -> uffd.wake(new AddrRange(0x10000, 4096))).isInstanceOf(EagainException.class);
    assertThat(fake.calls("Wake")).isEqualTo(1);
  }
}
