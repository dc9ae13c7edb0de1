package io.uffdemu.server.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.server.mm.LinuxException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Copy regions kept after their stream for the client to ask back: who gets one (the tenant that had it, naming it
 * and its last nonce, at its size), in what state (a new nonce, no proof: nothing is read before the new stream's
 * client proves its mapping), which are kept (only proven ones, at most 4 per tenant) and for how long.
 */
@org.junit.jupiter.api.condition.EnabledOnOs(value = org.junit.jupiter.api.condition.OS.LINUX,
        disabledReason = "memfd_create and /proc/self/fd are Linux")
class CopyRegionPoolTest {
    private static final long SIZE = CopyRegion.size(4 * 4096, 1 << 20);
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
    private final List<Arena> arenas = new ArrayList<>();

    @AfterEach
    void close() {
        timer.shutdownNow();
        arenas.forEach(Arena::close);
    }

    /** The client's side: maps the region (through /proc/self/fd, as a same-host client would) and proves it. */
    private MemorySegment mapAndProve(CopyRegion r) throws Exception {
        var info = r.info();
        Arena a = Arena.ofShared();
        arenas.add(a);
        try (FileChannel ch = FileChannel.open(Path.of("/proc/self/fd/" + info.getFd()), StandardOpenOption.READ,
                StandardOpenOption.WRITE)) {
            MemorySegment m = ch.map(FileChannel.MapMode.READ_WRITE, 0, ch.size(), a);
            for (int i = 0; i < 16; i++) {
                m.set(ValueLayout.JAVA_BYTE, 16 + i, (byte) ~info.getNonce().byteAt(i));
            }
            return m;
        }
    }

    /** A region whose client mapped it, its stream ended: retired into {@code pool} for {@code tenant}. */
    private CopyRegion retiredInto(CopyRegionPool pool, String tenant) throws Exception {
        CopyRegion r = CopyRegion.create(SIZE);
        mapAndProve(r);
        r.retire(r.generation(), x -> pool.put(tenant, x));
        return r;
    }

    private static boolean fdOpen(CopyRegion r, String name) {
        try {
            return Files.readSymbolicLink(Path.of("/proc/self/fd/" + r.info().getFd())).toString().contains(name);
        } catch (java.io.IOException e) {
            return false; // closed (or the number reused by another file, which the name tells)
        }
    }

    @Test
    void theTenantThatHadItGetsItBackRenewedByItsNameAndLastNonce() throws Exception {
        CopyRegionPool pool = new CopyRegionPool(Duration.ofMinutes(5), timer);
        CopyRegion r = retiredInto(pool, "a");
        var was = r.info();
        byte[] nonce = was.getNonce().toByteArray();
        assertThat(pool.idleCount()).isEqualTo(1);

        byte[] wrong = nonce.clone();
        wrong[3] ^= 1;
        assertThat(pool.take("a", was.getName(), wrong, SIZE)).as("another nonce").isNull();
        assertThat(pool.take("b", was.getName(), nonce, SIZE)).as("another tenant").isNull();
        assertThat(pool.take("a", "uffdemu-copy-region-0", nonce, SIZE)).as("another name").isNull();
        assertThat(pool.take("a", was.getName(), nonce, SIZE + 4096)).as("another size").isNull();
        assertThat(pool.idleCount()).as("still kept for the right ask").isEqualTo(1);

        CopyRegion again = pool.take("a", was.getName(), nonce, SIZE);
        assertThat(again).isSameAs(r);
        assertThat(pool.idleCount()).isZero();
        assertThat(pool.take("a", was.getName(), nonce, SIZE)).as("given once").isNull();
        var now = again.info();
        assertThat(now.getName()).isEqualTo(was.getName());
        assertThat(now.getFd()).isEqualTo(was.getFd());
        assertThat(now.getBytes()).isEqualTo(was.getBytes());
        assertThat(now.getNonce()).as("a new nonce").isNotEqualTo(was.getNonce());
        assertThat(again.acquire()).as("live again").isTrue();
        try {
            // the old proof is gone: nothing is read until this stream's client proves its mapping again
            assertThat(again.proven()).isFalse();
            assertThatThrownBy(() -> again.source(4096, 4096)).isInstanceOfSatisfying(LinuxException.class,
                    e -> assertThat(e.errno().name()).isEqualTo("EFAULT"));
            MemorySegment m = mapAndProve(again);
            assertThat(nonceOf(m)).as("the file holds the new nonce").isEqualTo(now.getNonce());
            assertThat(again.source(4096, 4096).remaining()).isEqualTo(4096);
        } finally {
            again.release();
        }
        assertThatThrownBy(again::renew).as("renew of a live region").isInstanceOf(IllegalStateException.class);
        again.close();
        assertThat(fdOpen(again, was.getName())).as("closed, not kept").isFalse();
    }

    private static com.google.protobuf.ByteString nonceOf(MemorySegment m) {
        return com.google.protobuf.ByteString.copyFrom(m.asSlice(0, 16).toArray(ValueLayout.JAVA_BYTE));
    }

    @Test
    void aRegionNoClientMappedIsNotKept() throws Exception {
        CopyRegionPool pool = new CopyRegionPool(Duration.ofMinutes(5), timer);
        CopyRegion r = CopyRegion.create(SIZE);
        String name = r.info().getName();
        r.retire(r.generation(), x -> pool.put("a", x));
        assertThat(pool.idleCount()).isZero();
        assertThat(fdOpen(r, name)).as("unmapped at once").isFalse();
    }

    @Test
    void aRegionInUseIsKeptOnlyOnceItsLastResolutionIsDone() throws Exception {
        CopyRegionPool pool = new CopyRegionPool(Duration.ofMinutes(5), timer);
        CopyRegion r = CopyRegion.create(SIZE);
        mapAndProve(r);
        assertThat(r.acquire()).isTrue();
        r.retire(r.generation(), x -> pool.put("a", x));
        assertThat(pool.idleCount()).as("a resolution still reads from it").isZero();
        assertThat(r.acquire()).as("no new user after the stream ended").isFalse();
        r.release();
        assertThat(pool.idleCount()).isEqualTo(1);
        pool.close();
    }

    @Test
    void aStreamThatEndedCannotUseOrGiveBackTheRegionItsSuccessorHolds() throws Exception {
        CopyRegionPool pool = new CopyRegionPool(Duration.ofMinutes(5), timer);
        CopyRegion r = CopyRegion.create(SIZE);
        int old = r.generation();
        mapAndProve(r);
        r.retire(old, x -> pool.put("a", x));
        CopyRegion again = pool.take("a", r.info().getName(), r.info().getNonce().toByteArray(), SIZE);
        assertThat(again).isSameAs(r);
        int now = again.generation();
        assertThat(now).isNotEqualTo(old);
        // the old stream's late resolution and its second retire: refused, nothing happens
        assertThat(r.acquire(old)).as("a late resolution of the old stream").isFalse();
        r.retire(old, x -> pool.put("a", x));
        assertThat(pool.idleCount()).as("not given back by the old stream").isZero();
        assertThat(again.acquire(now)).as("the new stream holds it").isTrue();
        again.release();
        assertThat(fdOpen(again, again.info().getName())).isTrue();
        mapAndProve(again);
        again.retire(now, x -> pool.put("a", x));
        again.retire(now, x -> pool.put("a", x)); // twice: once
        assertThat(pool.idleCount()).isEqualTo(1);
        pool.close();
    }

    @Test
    void atMostSixteenInAllTheOldestUnmappedFirst() throws Exception {
        CopyRegionPool pool = new CopyRegionPool(Duration.ofMinutes(5), timer);
        List<CopyRegion> rs = new ArrayList<>();
        for (int i = 0; i < CopyRegionPool.MAX_IDLE + 2; i++) {
            rs.add(retiredInto(pool, "t" + i)); // one per tenant: only the overall cap applies
        }
        assertThat(pool.idleCount()).isEqualTo(CopyRegionPool.MAX_IDLE);
        assertThat(fdOpen(rs.get(0), rs.get(0).name())).isFalse();
        assertThat(fdOpen(rs.get(1), rs.get(1).name())).isFalse();
        assertThat(fdOpen(rs.get(2), rs.get(2).name())).isTrue();
        pool.close();
    }

    @Test
    void atMostFourPerTenantTheOldestUnmappedFirst() throws Exception {
        CopyRegionPool pool = new CopyRegionPool(Duration.ofMinutes(5), timer);
        List<CopyRegion> rs = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (int i = 0; i < CopyRegionPool.MAX_IDLE_PER_TENANT + 1; i++) {
            CopyRegion r = retiredInto(pool, "a");
            rs.add(r);
            names.add(r.info().getName());
        }
        CopyRegion other = retiredInto(pool, "b");
        assertThat(pool.idleCount()).isEqualTo(CopyRegionPool.MAX_IDLE_PER_TENANT + 1);
        assertThat(fdOpen(rs.get(0), names.get(0))).as("the oldest of tenant a unmapped").isFalse();
        for (int i = 1; i < rs.size(); i++) {
            assertThat(fdOpen(rs.get(i), names.get(i))).isTrue();
        }
        assertThat(fdOpen(other, other.info().getName())).as("tenant b's own").isTrue();
        pool.close();
        assertThat(pool.idleCount()).isZero();
        for (int i = 1; i < rs.size(); i++) {
            assertThat(fdOpen(rs.get(i), names.get(i))).as("shutdown unmaps what is kept").isFalse();
        }
        CopyRegion late = retiredInto(pool, "a");
        assertThat(pool.idleCount()).as("nothing kept after shutdown").isZero();
        assertThat(fdOpen(late, late.info().getName())).isFalse();
    }

    @Test
    void anIdleRegionIsUnmappedWhenItsTimeIsUpButNotOneTakenAndKeptAgain() throws Exception {
        // the timer's tasks are run by hand: each put schedules one expiry
        List<Runnable> due = new ArrayList<>();
        ScheduledExecutorService manual = new java.util.concurrent.ScheduledThreadPoolExecutor(1) {
            @Override
            public java.util.concurrent.ScheduledFuture<?> schedule(Runnable task, long delay,
                    java.util.concurrent.TimeUnit unit) {
                assertThat(unit.toNanos(delay)).isEqualTo(Duration.ofSeconds(30).toNanos());
                due.add(task);
                return null;
            }
        };
        CopyRegionPool pool = new CopyRegionPool(Duration.ofSeconds(30), manual);
        CopyRegion r = retiredInto(pool, "a");
        String name = r.info().getName();
        assertThat(due).hasSize(1);
        // taken before its time is up and given back: the first period's expiry must not end the second
        CopyRegion again = pool.take("a", name, r.info().getNonce().toByteArray(), SIZE);
        assertThat(again).isSameAs(r);
        mapAndProve(again);
        again.retire(again.generation(), x -> pool.put("a", x));
        assertThat(due).hasSize(2);
        due.get(0).run();
        assertThat(pool.idleCount()).as("kept through the first period's expiry").isEqualTo(1);
        assertThat(fdOpen(r, name)).isTrue();
        due.get(1).run();
        assertThat(pool.idleCount()).as("unmapped when the second period is up").isZero();
        assertThat(fdOpen(r, name)).isFalse();

        CopyRegionPool never = new CopyRegionPool(Duration.ZERO, manual);
        CopyRegion n = retiredInto(never, "a");
        assertThat(never.idleCount()).as("copy-region-idle 0: never kept").isZero();
        assertThat(fdOpen(n, n.info().getName())).isFalse();
        assertThat(due).as("nothing to expire").hasSize(2);
        manual.shutdownNow();
    }
}
