package io.uffdemu.client;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(20)
class FacadeTest {
  FakeServer fake;
  UffdemuClient client;

  @BeforeEach
  void setUp() throws Exception {
    fake = new FakeServer();
    client = fake.client();
  }

  @AfterEach
  void tearDown() throws Exception {
    client.close();
    fake.close();
  }

  @Test
  void processBasics() {
    Process p = client.createProcess("vmm", Credentials.user(1000));
    assertThat(p.pid()).isEqualTo(100);
    long a = p.mmap(MmapOptions.anonymous(3 * 4096));
    long b = p.mmap(MmapOptions.anonymous(4096));
    assertThat(b - a).isEqualTo(3 * 4096);
    assertThat(p.fork().pid()).isEqualTo(101);
    assertThat(p.info().fds()).containsExactly(3);
    assertThat(client.backend().features()).isEqualTo(0x1ffffL);
    assertThat(client.meminfo()).containsEntry("MemTotal", 1L << 30);
  }

  @Test
  void memfdGrantFacade() {
    Process p = client.process(7);
    Memfd m = p.memfd(4);
    String token = m.grant("bob");
    assertThat(token).isEqualTo("mg_7_4_bob");
    assertThat(client.process(9).acceptMemfdGrant(token)).isEqualTo(token.length());
    assertThat(p.revokeMemfdGrant(token)).isEqualTo(2);
  }

  @Test
  void mapsAndPagemapAreDecoded() {
    Process p = client.process(7);
    Vma v = p.maps().getFirst();
    assertThat(v.range()).isEqualTo(new AddrRange(0x1000, 0x2000));
    assertThat(v.shared()).isTrue();
    assertThat(v.writable()).isTrue();
    assertThat(v.executable()).isFalse();
    assertThat(v.memoryType()).isEqualTo(MemoryType.SHMEM);
    assertThat(v.uffdMissing()).isTrue();

    var pm = p.pagemap(0x5123, 2);
    assertThat(pm.get(0).address()).isEqualTo(0x5000);
    assertThat(pm.get(0).present()).isTrue();
    assertThat(pm.get(0).uffdWp()).isTrue();
    assertThat(pm.get(0).exclusive()).isTrue();
    assertThat(pm.get(0).swapped()).isFalse();
    assertThat(pm.get(0).pfn()).isEqualTo(0x1234);
    assertThat(pm.get(1).address()).isEqualTo(0x6000);
    assertThat(pm.get(1).swapped()).isTrue();
    assertThat(pm.get(1).softDirty()).isTrue();
    assertThat(pm.get(1).present()).isFalse();
    assertThat(pm.get(1).uffdWp()).isFalse();

    var scan = p.pagemapScan(PagemapScanOptions.of(new AddrRange(0x10000, 0x4000)));
    assertThat(scan.walkEnd()).isEqualTo(0x14000);
    assertThat(scan.regions().getFirst().categories()).isEqualTo(Linux.PAGE_IS_WPALLOWED | Linux.PAGE_IS_PRESENT);
  }

  @Test
  void memfdDelegatesWithItsFd() {
    Process p = client.process(7);
    Memfd m = p.memfdCreate("ram", Linux.MFD_CLOEXEC);
    assertThat(m.pwrite(0, new byte[10])).isEqualTo(10);
    assertThat(m.pread(0, 8)).hasSize(8);
    m.close();
    assertThat(fake.calls("Close")).isEqualTo(1);
  }

  @Test
  void asyncViewsComplete() {
    Process p = client.process(7);
    assertThat(p.async().maps()).succeedsWithin(Duration.ofSeconds(5)).asList().hasSize(1);
    Userfaultfd u = p.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_EVENT_REMOVE));
    assertThat(u.features()).isEqualTo(Linux.UFFD_FEATURE_EVENT_REMOVE);
    assertThat(u.async().register(new AddrRange(0x1000, 4096), Linux.UFFDIO_REGISTER_MODE_MISSING))
        .succeedsWithin(Duration.ofSeconds(5)).isEqualTo(0x17cL);
  }

  @Test
  void optionRecordsHaveDefaultsAndWithers() {
    assertThat(MmapOptions.DEFAULT.flags()).isEqualTo(Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS);
    MmapOptions shared = MmapOptions.anonymous(8192).sharedFile(5, 4096);
    assertThat(shared.flags()).isEqualTo(Linux.MAP_SHARED);
    assertThat(shared.fd()).isEqualTo(5);
    assertThat(MmapOptions.anonymous(1).hugetlb2M().flags() & Linux.MAP_HUGETLB).isNotZero();
    assertThat(UffdOptions.DEFAULT.userModeOnly().flags() & Linux.UFFD_USER_MODE_ONLY).isEqualTo(1);
    assertThat(ClientConfig.DEFAULT.withBearerToken("secret").toString()).doesNotContain("secret");
    assertThat(AddrRange.page(0x12345, 4096)).isEqualTo(new AddrRange(0x12000, 4096));
  }

  @Test
  void linuxConstantsMatchTheUapiHeaders() {
    // userfaultfd.h: features are bits 0..16 (MOVE = 1 << 16), all distinct
    long all = 0;
    long[] features = {Linux.UFFD_FEATURE_PAGEFAULT_FLAG_WP, Linux.UFFD_FEATURE_EVENT_FORK,
        Linux.UFFD_FEATURE_EVENT_REMAP, Linux.UFFD_FEATURE_EVENT_REMOVE, Linux.UFFD_FEATURE_MISSING_HUGETLBFS,
        Linux.UFFD_FEATURE_MISSING_SHMEM, Linux.UFFD_FEATURE_EVENT_UNMAP, Linux.UFFD_FEATURE_SIGBUS,
        Linux.UFFD_FEATURE_THREAD_ID, Linux.UFFD_FEATURE_MINOR_HUGETLBFS, Linux.UFFD_FEATURE_MINOR_SHMEM,
        Linux.UFFD_FEATURE_EXACT_ADDRESS, Linux.UFFD_FEATURE_WP_HUGETLBFS_SHMEM, Linux.UFFD_FEATURE_WP_UNPOPULATED,
        Linux.UFFD_FEATURE_POISON, Linux.UFFD_FEATURE_WP_ASYNC, Linux.UFFD_FEATURE_MOVE};
    for (long f : features) {
      assertThat(all & f).isZero();
      all |= f;
    }
    assertThat(all).isEqualTo(0x1ffffL);
    assertThat(Linux.UFFD_EVENT_PAGEFAULT).isEqualTo(0x12);
    assertThat(Linux.UFFD_EVENT_UNMAP).isEqualTo(0x16);
    assertThat(Linux.MAP_HUGE_2MB).isEqualTo(21 << 26);
    assertThat(Linux.MADV_GUARD_REMOVE).isEqualTo(103);
    assertThat(Linux.PAGE_IS_GUARD).isEqualTo(1L << 8);
  }
}
