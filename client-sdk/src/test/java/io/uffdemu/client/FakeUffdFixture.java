package io.uffdemu.client;

import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

/**
 * A fake server with one process, 64 anonymous pages registered for MISSING faults on a uffd with EVENT_REMOVE,
 * and the fake's view of that uffd: the setup the handler-loop tests share.
 */
abstract class FakeUffdFixture {
  static final int PAGE = 4096;

  FakeServer fake;
  UffdemuClient client;
  Process process;
  Userfaultfd uffd;
  long base;
  FakeServer.FakeUffd fakeUffd;

  @BeforeEach
  void setUp() throws Exception {
    fake = new FakeServer();
    client = fake.client();
    process = client.createProcess("guest");
    base = process.mmap(MmapOptions.anonymous(64 * PAGE));
    uffd = process.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_EVENT_REMOVE));
    uffd.register(new AddrRange(base, 64 * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);
    fakeUffd = fake.uffd(uffd.fd());
  }

  @AfterEach
  void tearDown() throws Exception {
    client.close();
    fake.close();
  }

  /**
   * Copies a page of 7s until a REMOVE event covered the faulting page (the fake answers EAGAIN while a REMOVE is
   * pending), then zero-fills it; {@link #order} records what it did.
   */
  static class EagainUntilRemoved implements FaultHandler {
    final List<String> order = new CopyOnWriteArrayList<>();
    private final Set<Long> removed = ConcurrentHashMap.newKeySet();

    @Override
    public void onFault(FaultContext ctx) {
      if (removed.contains(ctx.pageAddress())) {
        order.add("zeropage");
        ctx.zeropage();
      } else {
        order.add("copy");
        ctx.copy(HandlerLoopTest.page(7)); // EAGAIN: a REMOVE is pending
      }
    }

    @Override
    public void onEvent(UffdMessage event) {
      if (event instanceof UffdMessage.RemoveEvent r) {
        order.add("remove");
        for (long p = r.start(); p < r.end(); p += PAGE) {
          removed.add(p);
        }
      }
    }
  }
}
