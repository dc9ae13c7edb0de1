package io.uffdemu.server.recipes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.recipes.DistributedSnapshot;
import io.uffdemu.client.recipes.DistributedSnapshot.CutResult;
import io.uffdemu.client.recipes.DistributedSnapshot.Participant;
import io.uffdemu.client.recipes.LiveSnapshot;
import io.uffdemu.client.recipes.SnapshotFiles;
import io.uffdemu.client.recipes.SnapshotManifest;
import io.uffdemu.client.recipes.SnapshotOptions;
import io.uffdemu.client.recipes.SnapshotVerifier;
import io.uffdemu.client.recipes.Stamp;
import io.uffdemu.server.UffdemuServerApplication;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * Recipe 2 end to end with two real servers: a process on each, relays that send messages both ways (the
 * sender's outbox record, then the receiver's inbox body, then its header), and consistent cuts taken while the
 * relays run. In every cut no message is received without being sent, and no inbox header is captured without
 * its body: nothing is half-captured.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
    properties = {"spring.grpc.server.port=0", "uffdemu.emulated.hugepages2m=64"})
class DistributedSnapshotIT {
  static final long PAGE = 4096;
  static final int SLOTS = 16;
  static final int STAMP = 64;

  @LocalGrpcServerPort
  int portA;
  int portB;
  @TempDir
  Path tmp;
  ConfigurableApplicationContext serverB;
  UffdemuClient a;
  UffdemuClient b;

  @BeforeEach
  void start() throws Exception {
    try (ServerSocket s = new ServerSocket(0)) {
      portB = s.getLocalPort();
    }
    // command-line arguments: they override application.properties (builder properties would not)
    serverB = new SpringApplicationBuilder(UffdemuServerApplication.class)
        .run("--spring.grpc.server.port=" + portB, "--server.port=0");
    a = UffdemuClient.connect("127.0.0.1", portA);
    b = UffdemuClient.connect("127.0.0.1", portB);
  }

  @AfterEach
  void stop() {
    a.close();
    b.close();
    serverB.close();
  }

  /** outbox pages [0, 16), inbox bodies [16, 32), inbox headers [32, 48). */
  record Node(Process p, long base) {
    long outbox(int slot) {
      return base + slot * PAGE;
    }

    long body(int slot) {
      return base + (SLOTS + slot) * PAGE;
    }

    long header(int slot) {
      return base + (2 * SLOTS + slot) * PAGE;
    }
  }

  static Node node(UffdemuClient c, String name) {
    Process p = c.createProcess(name);
    return new Node(p, p.mmap(MmapOptions.anonymous(3 * SLOTS * PAGE)));
  }

  static void write(Process p, long addr, long version) {
    var r = p.write(addr, Stamp.encode(addr, version, 0, STAMP));
    if (!r.ok()) {
      throw new IllegalStateException("write failed: signal " + r.signal() + " errno " + r.errno());
    }
  }

  /** Sends messages 1, 2, ... from one node to the other until stopped. */
  static Thread relay(Node from, Node to, AtomicLong sent, AtomicReference<Throwable> err, AtomicBoolean stop) {
    return Thread.ofVirtual().start(() -> {
      try {
        for (long i = 1; !stop.get(); i++) {
          int slot = (int) (i % SLOTS);
          write(from.p(), from.outbox(slot), i); // sent
          write(to.p(), to.body(slot), i);       // received: body first,
          write(to.p(), to.header(slot), i);     // then the header publishes it
          sent.set(i);
        }
      } catch (Throwable t) {
        err.set(t);
      }
    });
  }

  static long version(SnapshotFiles.Reader r, long addr) {
    SnapshotManifest.Range range = r.manifest().ranges().getFirst();
    Stamp s = Stamp.decode(r.page(range, range.indexOf(addr)), STAMP);
    return s == null ? 0 : s.version();
  }

  /** Checks one direction of the cut; returns the number of messages received in it. */
  static long checkChannel(String name, SnapshotFiles.Reader sender, Node from, SnapshotFiles.Reader receiver,
      Node to) {
    long sentMax = 0;
    long receivedMax = 0;
    for (int slot = 0; slot < SLOTS; slot++) {
      sentMax = Math.max(sentMax, version(sender, from.outbox(slot)));
      long h = version(receiver, to.header(slot));
      long body = version(receiver, to.body(slot));
      receivedMax = Math.max(receivedMax, h);
      if (h > 0) {
        assertThat(body).as("%s slot %d: header of message %d captured without its body", name, slot, h)
            .isIn(h, h + SLOTS);
      }
    }
    assertThat(receivedMax).as("%s: a message received in the cut was not sent in it", name)
        .isLessThanOrEqualTo(sentMax);
    assertThat(sentMax - receivedMax).as("%s: at most one message in flight", name).isLessThanOrEqualTo(1);
    return receivedMax;
  }

  @Test
  @Timeout(120)
  void withoutTheBarrierTheCheckCatchesAMessageReceivedButNotSent() throws Exception {
    // the control experiment: two independent live snapshots, b taken after a has released its faults and the
    // a->b relay has delivered more messages. The same check must then fail, which shows it can.
    Node na = node(a, "ctl-a");
    Node nb = node(b, "ctl-b");
    AtomicLong ab = new AtomicLong();
    AtomicLong ba = new AtomicLong();
    AtomicReference<Throwable> err = new AtomicReference<>();
    AtomicBoolean stop = new AtomicBoolean();
    List<Thread> relays = List.of(relay(na, nb, ab, err, stop), relay(nb, na, ba, err, stop));
    try {
      while (ab.get() < 20) {
        Thread.sleep(5);
      }
      LiveSnapshot sa = LiveSnapshot.prepare(a, SnapshotOptions.of(na.p().pid(), tmp.resolve("ctl/a")));
      LiveSnapshot sb = LiveSnapshot.prepare(b, SnapshotOptions.of(nb.p().pid(), tmp.resolve("ctl/b")));
      try (sa; sb) {
        sa.protect(); // protected and released: a's pages are saved as writers reach them
        long at = ab.get();
        while (ab.get() < at + 5) {
          Thread.sleep(2);
        }
        sb.protect();
        sa.complete();
        sb.complete();
      }
    } finally {
      stop.set(true);
      for (Thread t : relays) {
        t.join();
      }
    }
    try (SnapshotFiles.Reader ra = new SnapshotFiles.Reader(tmp.resolve("ctl/a"));
        SnapshotFiles.Reader rb = new SnapshotFiles.Reader(tmp.resolve("ctl/b"))) {
      assertThatThrownBy(() -> checkChannel("a->b", ra, na, rb, nb)).isInstanceOf(AssertionError.class)
          .hasMessageContaining("not sent");
    }
  }

  @Test
  @Timeout(120)
  void consistentCutsAcrossTwoServersWhileMessagesFlowBothWays() throws Exception {
    Node na = node(a, "node-a");
    Node nb = node(b, "node-b");
    AtomicLong ab = new AtomicLong();
    AtomicLong ba = new AtomicLong();
    AtomicReference<Throwable> err = new AtomicReference<>();
    AtomicBoolean stop = new AtomicBoolean();
    List<Thread> relays = List.of(relay(na, nb, ab, err, stop), relay(nb, na, ba, err, stop));
    try {
      long lastAb = 0;
      for (int cut = 0; cut < 3; cut++) {
        long before = ab.get();
        while (ab.get() < before + 20 || ba.get() < 20) {
          Thread.sleep(5);
          assertThat(err.get()).isNull();
        }
        Path dir = tmp.resolve("cut-" + cut);
        CutResult r = DistributedSnapshot.take(DistributedSnapshot.CutOptions.of(dir, List.of(
            new Participant("a", a, na.p().pid(), List.of(), "127.0.0.1:" + portA),
            new Participant("b", b, nb.p().pid(), List.of(), "127.0.0.1:" + portB))));
        System.out.print(r.toTable());
        assertThat(dir.resolve("cut.json")).exists();
        try (SnapshotFiles.Reader ra = new SnapshotFiles.Reader(dir.resolve("a"));
            SnapshotFiles.Reader rb = new SnapshotFiles.Reader(dir.resolve("b"))) {
          assertThat(ra.manifest().cutId()).isEqualTo(r.cutId()).isEqualTo(rb.manifest().cutId());
          assertThat(ra.manifest().sourceServer()).endsWith(":" + portA);
          assertThat(rb.manifest().sourceServer()).endsWith(":" + portB);
          SnapshotVerifier.verifyFile(ra.dir()).throwIfFailed();
          SnapshotVerifier.verifyFile(rb.dir()).throwIfFailed();
          long gotAb = checkChannel("a->b", ra, na, rb, nb);
          checkChannel("b->a", rb, nb, ra, na);
          assertThat(gotAb).as("the cut moves forward").isGreaterThan(lastAb);
          lastAb = gotAb;
        }
        assertThat(r.snapshots().stream().mapToLong(s -> s.wpFaults()).sum())
            .as("relays ran into the protected memory during the cut").isGreaterThan(0);
        try (var s = Files.list(tmp)) {
          assertThat(s.filter(x -> x.getFileName().toString().contains(".tmp-")).toList()).isEmpty();
        }
      }
      long after = ab.get();
      while (ab.get() < after + 5) {
        Thread.sleep(5);
      }
    } finally {
      stop.set(true);
      for (Thread t : relays) {
        t.join();
      }
    }
    assertThat(err.get()).isNull();
  }
}
