package io.uffdemu.server.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.CopyRegion;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.HandleAttach;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.IoctlResult;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.BatchFaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.HandlerStats;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.StormOptions;
import io.uffdemu.client.StormResult;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The Handle stream's copy region (HandleAttach.copy_region_bytes): COPY sources written into a memfd the server
 * shares with a same-host handler and named by offset. Through the SDK (default on with resolutions on the
 * stream): every page lands with its own bytes, also when the region is too small for what is in flight (the
 * ring wraps and the rest goes inline); and on the raw protocol: the region is sized and sealed as promised, and
 * bad sources get the errno a user expects.
 */
@org.junit.jupiter.api.condition.EnabledOnOs(value = org.junit.jupiter.api.condition.OS.LINUX,
        disabledReason = "a copy region is a memfd opened through /proc: Linux only (elsewhere COPY data goes inline)")
class CopyRegionIT extends E2eBase {
    private static final HandlerOptions STREAM = HandlerOptions.DEFAULT.withMaxBatch(64).withResolveOnStream(true)
            .withWorkers(16);

    /** Page i of the range holds bytes (i * 7 + 1), with its index in its first 4 bytes. */
    private static byte[] page(int size, int i) {
        byte[] d = new byte[size];
        Arrays.fill(d, (byte) (i * 7 + 1));
        d[0] = (byte) i;
        d[1] = (byte) (i >> 8);
        return d;
    }

    private static HandlerStats storm(Process p, long pageSize, int pages, int threads, HandlerOptions o,
            MmapOptions mmap) {
        long len = pageSize * pages;
        long addr = p.mmap(mmap);
        Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
        uffd.register(new AddrRange(addr, len), Linux.UFFDIO_REGISTER_MODE_MISSING);
        BatchFaultHandler h = ctx -> ctx.copy(page((int) pageSize, (int) ((ctx.pageAddress() - addr) / pageSize)));
        HandlerStats stats;
        try (HandlerLoop loop = uffd.handle(h, o.withPageSize(pageSize))) {
            StormResult r = p.storm(StormOptions.reads(addr, len, threads).withStride(pageSize));
            assertThat(r.failed()).isZero();
            stats = loop.stats();
        }
        for (int i = 0; i < pages; i++) {
            byte[] want = page((int) pageSize, i);
            byte[] got = p.read(addr + i * pageSize, (int) pageSize).data();
            assertThat(got).as("page %d", i).isEqualTo(want);
        }
        assertThat(stats.faults()).isEqualTo(pages);
        return stats;
    }

    @Test
    @Timeout(60)
    void copiesOfAStormGoThroughTheRegionWithTheirOwnBytes() {
        Process p = client().createProcess("region");
        HandlerStats s = storm(p, PAGE, 256, 16, STREAM, MmapOptions.anonymous(256L * PAGE));
        assertThat(s.regionCopies()).as("every COPY went through the region").isEqualTo(256);
    }

    @Test
    @Timeout(60)
    void aRegionTooSmallForWhatIsInFlightIsReusedWithoutMixingPages() {
        // 2 pages of room for 16 workers: slots are reused as results come back, out of order, and COPYs that find
        // no room carry their data. A slot reused before its result would show here as another page's bytes.
        Process p = client().createProcess("region-small");
        HandlerStats s = storm(p, PAGE, 512, 32, STREAM.withCopyRegionBytes(2 * PAGE),
                MmapOptions.anonymous(512L * PAGE));
        assertThat(s.regionCopies()).as("its 2 slots were reused as results came back").isGreaterThan(2);
    }

    @Test
    @Timeout(60)
    void aPerFaultHandlerFillingTwoPagesAtOnceGivesEachItsOwnBytes() throws Exception {
        // per-fault handler (not batched): each fault fills its page and, from another thread at the same time,
        // its buddy page; both COPYs stage their bytes in the region, and each must keep its own slot until
        // its own result (EEXIST when the buddy was filled first is absorbed)
        Process p = client().createProcess("region-per-fault");
        int pages = 256;
        long len = (long) PAGE * pages;
        long addr = p.mmap(MmapOptions.anonymous(len));
        Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
        uffd.register(new AddrRange(addr, len), Linux.UFFDIO_REGISTER_MODE_MISSING);
        HandlerStats stats;
        try (var ex = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor()) {
            io.uffdemu.client.FaultHandler h = ctx -> {
                int i = (int) ((ctx.pageAddress() - addr) / PAGE);
                int buddy = i ^ 1;
                var other = ex.submit(() -> ctx.copy(addr + (long) buddy * PAGE, page(PAGE, buddy), 0));
                ctx.copy(page(PAGE, i));
                try {
                    other.get();
                } catch (java.util.concurrent.ExecutionException e) {
                    throw new IllegalStateException(e.getCause());
                }
            };
            try (HandlerLoop loop = uffd.handle(h, STREAM.withWorkers(8))) {
                StormResult r = p.storm(StormOptions.reads(addr, len, 16).withStride(PAGE));
                assertThat(r.failed()).isZero();
                stats = loop.stats();
            }
        }
        for (int i = 0; i < pages; i++) {
            assertThat(p.read(addr + (long) i * PAGE, PAGE).data()).as("page %d", i).isEqualTo(page(PAGE, i));
        }
        assertThat(stats.regionCopies()).as("staged in the region").isGreaterThanOrEqualTo(pages);
    }

    @Test
    @Timeout(60)
    void withoutARegionCopiesCarryTheirData() {
        Process p = client().createProcess("region-off");
        HandlerStats s = storm(p, PAGE, 64, 8, STREAM.withCopyRegionBytes(0), MmapOptions.anonymous(64L * PAGE));
        assertThat(s.regionCopies()).isZero();
        HandlerStats unary = storm(p, PAGE, 64, 8, HandlerOptions.DEFAULT, MmapOptions.anonymous(64L * PAGE));
        assertThat(unary.regionCopies()).as("unary resolutions have no stream to share a region on").isZero();
    }

    @Test
    @Timeout(90)
    void hugePagesGoThroughTheRegion() {
        UffdemuClient c = client();
        String before = c.sysctl("vm/nr_hugepages");
        c.setSysctl("vm/nr_hugepages", "16");
        try {
            Process p = c.createProcess("region-huge");
            long huge = 2L << 20;
            HandlerStats s = storm(p, huge, 8, 8, STREAM.withCopyRegionBytes(8 * huge),
                    MmapOptions.anonymous(8 * huge).hugetlb2M());
            assertThat(s.regionCopies()).isEqualTo(8);
        } finally {
            c.setSysctl("vm/nr_hugepages", before.trim());
        }
    }

    /** The names of the copy regions this JVM (the server under test) has open now. */
    private static java.util.Set<String> regionNames() throws java.io.IOException {
        java.util.Set<String> names = new java.util.TreeSet<>();
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : (Iterable<Path>) fds::iterator) {
                try {
                    String t = Files.readSymbolicLink(fd).toString();
                    if (t.startsWith("/memfd:uffdemu-copy-region-")) {
                        names.add(t);
                    }
                } catch (java.io.IOException gone) {
                    // closed meanwhile
                }
            }
        }
        return names;
    }

    @Test
    @Timeout(90)
    void aClientsNextStreamGetsItsRegionBackAndAnotherClientDoesNot() throws Exception {
        UffdemuClient c = client();
        java.util.Set<String> before = regionNames();
        HandlerStats first = storm(c.createProcess("region-again-1"), PAGE, 128, 16, STREAM,
                MmapOptions.anonymous(128L * PAGE));
        java.util.Set<String> afterFirst = regionNames();
        afterFirst.removeAll(before);
        assertThat(afterFirst).as("the first stream's region, kept after it").hasSize(1);
        assertThat(first.regionCopies()).isEqualTo(128);

        // the loop closed (half-close, then the stream's end): the same client's next stream asks it back
        HandlerStats second = storm(c.createProcess("region-again-2"), PAGE, 128, 16, STREAM,
                MmapOptions.anonymous(128L * PAGE));
        java.util.Set<String> afterSecond = regionNames();
        afterSecond.removeAll(before);
        assertThat(afterSecond).as("no new region: the first one served again").isEqualTo(afterFirst);
        assertThat(second.regionCopies()).as("every COPY through it, with its own bytes (checked by storm)")
                .isEqualTo(128);

        // another client has no mapping of it to ask back: it gets its own
        HandlerStats other = storm(client().createProcess("region-again-3"), PAGE, 64, 8, STREAM,
                MmapOptions.anonymous(64L * PAGE));
        java.util.Set<String> afterOther = regionNames();
        afterOther.removeAll(before);
        assertThat(afterOther).hasSize(2).containsAll(afterFirst);
        assertThat(other.regionCopies()).isEqualTo(64);
    }

    /** A raw Handle stream: responses queued, the end counted. */
    private static final class Raw implements StreamObserver<HandleResponse> {
        final LinkedBlockingQueue<HandleResponse> in = new LinkedBlockingQueue<>();
        final java.util.concurrent.CountDownLatch ended = new java.util.concurrent.CountDownLatch(1);
        StreamObserver<HandleRequest> out;

        @Override
        public void onNext(HandleResponse r) {
            in.add(r);
        }

        @Override
        public void onError(Throwable t) {
            ended.countDown();
        }

        @Override
        public void onCompleted() {
            ended.countDown();
        }

        /**
         * Attaches (asking {@code bytes} of region, {@code reuse} back if given, and to keep the region after the
         * stream if {@code keep}); returns the region offered.
         */
        CopyRegion attach(UserfaultfdServiceGrpc.UserfaultfdServiceStub stub, Process p, Userfaultfd uffd,
                long bytes, io.uffdemu.api.v1.CopyRegionReuse reuse, boolean keep) throws InterruptedException {
            out = stub.handle(this);
            HandleAttach.Builder a = HandleAttach.newBuilder().setPid(p.pid()).setFd(uffd.fd())
                    .setCopyRegionBytes(bytes).setKeepCopyRegion(keep);
            if (reuse != null) {
                a.setReuseCopyRegion(reuse);
            }
            out.onNext(HandleRequest.newBuilder().setAttach(a).build());
            HandleResponse first = in.poll(20, TimeUnit.SECONDS);
            assertThat(first).isNotNull();
            assertThat(first.getKindCase()).isEqualTo(HandleResponse.KindCase.COPY_REGION);
            return first.getCopyRegion();
        }

        /** Half-closes and waits for the server to end the stream. */
        void end() throws InterruptedException {
            out.onCompleted();
            assertThat(ended.await(20, TimeUnit.SECONDS)).as("the server ended the stream").isTrue();
        }
    }

    private static void prove(MemorySegment m, CopyRegion region) {
        for (int i = 0; i < 16; i++) {
            m.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 16 + i, (byte) ~region.getNonce().byteAt(i));
        }
    }

    /** The raw protocol: a region comes back only for its name and last nonce, and must be proved again. */
    @Test
    @Timeout(60)
    void aRegionComesBackForItsNameAndLastNonceOnlyAndIsProvedAgain() throws Exception {
        Process p = client().createProcess("region-reuse-raw");
        long addr = p.mmap(MmapOptions.anonymous(4L * PAGE));
        Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
        uffd.register(new AddrRange(addr, 4L * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);
        ManagedChannel ch = ManagedChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        try (Arena arena = Arena.ofShared()) {
            var stub = UserfaultfdServiceGrpc.newStub(ch);
            CopyRequest base = CopyRequest.newBuilder().setPid(p.pid()).setFd(uffd.fd()).build();
            Raw s1 = new Raw();
            CopyRegion r1 = s1.attach(stub, p, uffd, 16L * PAGE, null, true);
            assertThat(r1.getKeepSeconds()).as("uffdemu.limits.copy-region-idle").isEqualTo(30);
            MemorySegment m;
            try (FileChannel fc = FileChannel.open(Path.of("/proc/" + r1.getServerPid() + "/fd/" + r1.getFd()),
                    StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                m = fc.map(FileChannel.MapMode.READ_WRITE, 0, r1.getBytes(), arena);
            }
            prove(m, r1);
            byte[] a = page(PAGE, 1);
            MemorySegment.copy(MemorySegment.ofArray(a), 0, m, 4096, PAGE);
            assertThat(result(s1.out, s1.in, 1, base.toBuilder().setDst(addr).setRegionSrc(4096).setRegionLen(PAGE)))
                    .extracting(IoctlResult::getBytes).isEqualTo((long) PAGE);
            s1.end();

            // its name with another nonce: a new region (the kept one stays kept)
            byte[] wrong = r1.getNonce().toByteArray();
            wrong[0] ^= 1;
            Raw s2 = new Raw();
            CopyRegion r2 = s2.attach(stub, p, uffd, 16L * PAGE, io.uffdemu.api.v1.CopyRegionReuse.newBuilder()
                    .setName(r1.getName()).setNonce(ByteString.copyFrom(wrong)).build(), true);
            assertThat(r2.getName()).isNotEqualTo(r1.getName());
            s2.end();

            // its name and last nonce: the same file again, with a new nonce, in the mapping this client has
            Raw s3 = new Raw();
            CopyRegion r3 = s3.attach(stub, p, uffd, 16L * PAGE, io.uffdemu.api.v1.CopyRegionReuse.newBuilder()
                    .setName(r1.getName()).setNonce(r1.getNonce()).build(), true);
            assertThat(r3.getName()).isEqualTo(r1.getName());
            assertThat(r3.getFd()).isEqualTo(r1.getFd());
            assertThat(r3.getBytes()).isEqualTo(r1.getBytes());
            assertThat(r3.getNonce()).isNotEqualTo(r1.getNonce());
            assertThat(ByteString.copyFrom(m.asSlice(0, 16).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)))
                    .as("the new nonce is in the mapping of the first stream").isEqualTo(r3.getNonce());
            byte[] b = page(PAGE, 2);
            MemorySegment.copy(MemorySegment.ofArray(b), 0, m, 8192, PAGE);
            // the first stream's proof no longer counts
            assertThat(result(s3.out, s3.in, 1, base.toBuilder().setDst(addr + PAGE).setRegionSrc(8192)
                    .setRegionLen(PAGE)).getError().getName()).isEqualTo("EFAULT");
            prove(m, r3);
            assertThat(result(s3.out, s3.in, 2, base.toBuilder().setDst(addr + PAGE).setRegionSrc(8192)
                    .setRegionLen(PAGE))).extracting(IoctlResult::getBytes).isEqualTo((long) PAGE);
            s3.end();
            assertThat(p.read(addr, PAGE).data()).isEqualTo(a);
            assertThat(p.read(addr + PAGE, PAGE).data()).isEqualTo(b);

            // a stream that does not ask to keep it: told so, and the region is gone after it
            Raw s4 = new Raw();
            CopyRegion r4 = s4.attach(stub, p, uffd, 16L * PAGE, io.uffdemu.api.v1.CopyRegionReuse.newBuilder()
                    .setName(r3.getName()).setNonce(r3.getNonce()).build(), false);
            assertThat(r4.getName()).isEqualTo(r1.getName());
            assertThat(r4.getKeepSeconds()).isZero();
            prove(m, r4);
            s4.end();
            Raw s5 = new Raw();
            CopyRegion r5 = s5.attach(stub, p, uffd, 16L * PAGE, io.uffdemu.api.v1.CopyRegionReuse.newBuilder()
                    .setName(r4.getName()).setNonce(r4.getNonce()).build(), false);
            assertThat(r5.getName()).as("not kept after a stream that did not ask").isNotEqualTo(r1.getName());
            s5.end();
        } finally {
            ch.shutdownNow();
        }
    }

    /** The raw protocol: a region is offered first, capped, sealed, and bad sources are refused with an errno. */
    @Test
    @Timeout(60)
    void theProtocolChecksEverySource() throws Exception {
        Process p = client().createProcess("region-raw");
        long addr = p.mmap(MmapOptions.anonymous(4L * PAGE));
        Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
        uffd.register(new AddrRange(addr, 4L * PAGE), Linux.UFFDIO_REGISTER_MODE_MISSING);
        ManagedChannel ch = ManagedChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        try {
            var stub = UserfaultfdServiceGrpc.newStub(ch);
            // a terabyte asked: the server caps it at uffdemu.limits.max-copy-region-bytes (256MB) plus the header
            Raw raw = new Raw();
            CopyRegion region = raw.attach(stub, p, uffd, 1L << 40, null, false);
            StreamObserver<HandleRequest> out = raw.out;
            LinkedBlockingQueue<HandleResponse> in = raw.in;
            assertThat(region.getBytes()).isEqualTo((256L << 20) + 4096);
            assertThat(region.getDataOffset()).isEqualTo(4096);
            Path file = Path.of("/proc/" + region.getServerPid() + "/fd/" + region.getFd());
            assertThat(Files.readSymbolicLink(file).toString()).startsWith("/memfd:" + region.getName());
            try (Arena arena = Arena.ofConfined();
                    FileChannel fc = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                assertThatThrownBy(() -> fc.truncate(PAGE)).as("sealed against shrinking")
                        .isInstanceOf(java.io.IOException.class);
                MemorySegment m = fc.map(FileChannel.MapMode.READ_WRITE, 0, region.getBytes(), arena);
                assertThat(ByteString.copyFrom(m.asSlice(0, 16).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)))
                        .isEqualTo(region.getNonce());
                byte[] content = page(PAGE, 5);
                MemorySegment.copy(MemorySegment.ofArray(content), 0, m, 8192, PAGE);

                long id = 1;
                CopyRequest base = CopyRequest.newBuilder().setPid(p.pid()).setFd(uffd.fd()).build();
                // before the client proves it mapped the region (the nonce's complement after it), no source is
                // read: a client that cannot map it (a remote one) cannot make the server touch its pages
                assertThat(result(out, in, id++, base.toBuilder().setDst(addr).setRegionSrc(8192).setRegionLen(PAGE))
                        .getError().getName()).isEqualTo("EFAULT");
                prove(m, region);
                // inside the region: copied from it
                assertThat(result(out, in, id++, base.toBuilder().setDst(addr).setRegionSrc(8192).setRegionLen(PAGE)))
                        .extracting(IoctlResult::getBytes).isEqualTo((long) PAGE);
                assertThat(p.read(addr, PAGE).data()).isEqualTo(content);
                // the header, past the end, overflowing: EFAULT, as a src the kernel cannot read
                for (long[] bad : new long[][] {{0, PAGE}, {region.getBytes() - PAGE + 1, PAGE},
                        {Long.MAX_VALUE - 10, PAGE}, {-4096L, 8192}}) {
                    IoctlResult r = result(out, in, id++,
                            base.toBuilder().setDst(addr + PAGE).setRegionSrc(bad[0]).setRegionLen(bad[1]));
                    assertThat(r.getError().getName()).as("src %d len %d", bad[0], bad[1]).isEqualTo("EFAULT");
                }
                // a source with no length: EINVAL
                assertThat(result(out, in, id++, base.toBuilder().setDst(addr + PAGE).setRegionSrc(8192))
                        .getError().getName()).isEqualTo("EINVAL");
                // data and a region source at once: EINVAL
                IoctlResult both = result(out, in, id++, base.toBuilder().setDst(addr + PAGE).setRegionSrc(8192)
                        .setRegionLen(PAGE).setData(ByteString.copyFrom(content)));
                assertThat(both.getError().getName()).isEqualTo("EINVAL");
                // nothing was installed by the refused COPYs: the page is still missing (no EEXIST)
                assertThat(result(out, in, id++, base.toBuilder().setDst(addr + PAGE).setRegionSrc(8192)
                        .setRegionLen(PAGE))).extracting(IoctlResult::getBytes).isEqualTo((long) PAGE);
                assertThat(p.read(addr + PAGE, PAGE).data()).isEqualTo(content);
            }
            out.onCompleted();
            // a unary Copy has no stream and so no region
            var blocking = UserfaultfdServiceGrpc.newBlockingStub(ch);
            assertThatThrownBy(() -> blocking.copy(CopyRequest.newBuilder().setPid(p.pid()).setFd(uffd.fd())
                    .setDst(addr + 2L * PAGE).setRegionSrc(4096).setRegionLen(PAGE).build()))
                    .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                        assertThat(e.getStatus().getDescription()).contains("without a copy region");
                    });
        } finally {
            ch.shutdownNow();
        }
    }

    private static IoctlResult result(StreamObserver<HandleRequest> out, LinkedBlockingQueue<HandleResponse> in,
            long id, CopyRequest.Builder copy) throws InterruptedException {
        out.onNext(HandleRequest.newBuilder().setRequestId(id).setCopy(copy).build());
        HandleResponse r = in.poll(20, TimeUnit.SECONDS);
        assertThat(r).isNotNull();
        assertThat(r.getKindCase()).isEqualTo(HandleResponse.KindCase.RESULT);
        assertThat(r.getResult().getRequestId()).isEqualTo(id);
        return r.getResult();
    }
}
