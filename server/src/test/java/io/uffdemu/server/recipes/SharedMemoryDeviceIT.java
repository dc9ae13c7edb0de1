package io.uffdemu.server.recipes;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.client.AccessResult;
import io.uffdemu.client.MemoryType;
import io.uffdemu.client.PagemapEntry;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.recipes.DeviceOptions;
import io.uffdemu.client.recipes.DeviceOptions.DirtyTracking;
import io.uffdemu.client.recipes.SharedMemoryDevice;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Recipe 3 end to end: one memfd mapped by a hypervisor and a device process; only the hypervisor's mapping
 * is write-protected (per PTE), so device writes never fault and only hypervisor writes are tracked, with
 * synchronous uffd-wp faults or with WP_ASYNC + PAGEMAP_SCAN.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
    properties = {"spring.grpc.server.port=0", "uffdemu.emulated.hugepages2m=64"})
class SharedMemoryDeviceIT {
  @LocalGrpcServerPort
  int port;
  UffdemuClient client;

  @BeforeEach
  void connect() {
    client = UffdemuClient.connect("127.0.0.1", port);
  }

  @AfterEach
  void close() {
    client.close();
  }

  static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.US_ASCII);
  }

  @ParameterizedTest(name = "{0} {1}")
  @CsvSource({"SHMEM, SYNC_WP", "SHMEM, ASYNC_WP", "HUGETLB, SYNC_WP", "HUGETLB, ASYNC_WP"})
  @Timeout(60)
  void deviceWritesNeverFaultHypervisorWritesAreTracked(MemoryType type, DirtyTracking tracking) throws Exception {
    long page = type == MemoryType.HUGETLB ? 2L << 20 : 4096;
    int pages = 8;
    try (SharedMemoryDevice d = SharedMemoryDevice.create(client, DeviceOptions.of(type, pages * page, tracking))) {
      // the device "DMAs" into every page, concurrently: none of these stores may block on the hypervisor's wp
      List<CompletableFuture<AccessResult>> dma = new ArrayList<>();
      for (int i = 0; i < pages; i++) {
        dma.add(d.device().async().write(d.deviceAddress(i * page + 64), bytes("dma-" + i)));
      }
      for (CompletableFuture<AccessResult> f : dma) {
        assertThat(f.get(10, TimeUnit.SECONDS).ok()).isTrue();
      }
      assertThat(d.wpFaults()).as("device writes raise no WP fault").isZero();
      assertThat(d.collectDirty()).as("device writes are not hypervisor-dirty").isEmpty();
      // the hypervisor sees the DMA through its own (still protected) mapping
      assertThat(new String(d.hypervisor().read(d.hypervisorAddress(3 * page + 64), 5).data())).isEqualTo("dma-3");
      for (PagemapEntry e : d.hypervisor().pagemap(d.hypervisorAddress(0), pages * page / 4096)) {
        if (e.present()) {
          assertThat(e.uffdWp()).as("hypervisor PTE 0x%x stays protected", e.address()).isTrue();
        }
      }

      // the guest (hypervisor) writes pages 1 and 6, twice each
      for (int round = 0; round < 2; round++) {
        for (int i : new int[] {1, 6}) {
          AccessResult r = d.hypervisor().async().write(d.hypervisorAddress(i * page + 128 + round),
              bytes("guest")).get(10, TimeUnit.SECONDS);
          assertThat(r.ok()).isTrue();
        }
      }
      if (tracking == DirtyTracking.SYNC_WP) {
        assertThat(d.wpFaults()).as("one WP fault per first write to a protected page").isEqualTo(2);
      } else {
        assertThat(d.wpFaults()).isZero();
      }
      assertThat(d.collectDirty()).containsExactly(page, 6 * page);
      // the device sees the guest's data, and its further DMA is still invisible to the dirty log
      assertThat(new String(d.device().read(d.deviceAddress(6 * page + 129), 5).data())).isEqualTo("guest");
      assertThat(d.device().write(d.deviceAddress(6 * page), bytes("dma-again")).ok()).isTrue();
      assertThat(d.collectDirty()).as("re-armed: nothing new").isEmpty();

      // re-protected by the collection: the next guest write is tracked again
      assertThat(d.hypervisor().write(d.hypervisorAddress(6 * page + 7), bytes("x")).ok()).isTrue();
      assertThat(d.collectDirty()).containsExactly(6 * page);
      if (tracking == DirtyTracking.SYNC_WP) {
        assertThat(d.wpFaults()).isEqualTo(3);
      }
    }
  }
}
