package io.uffdemu.server.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Context;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.AccessRequest;
import io.uffdemu.api.v1.AccessResponse;
import io.uffdemu.api.v1.AddrRange;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.CreateProcessRequest;
import io.uffdemu.api.v1.Credentials;
import io.uffdemu.api.v1.HandleAttach;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.MemoryServiceGrpc;
import io.uffdemu.api.v1.MmapRequest;
import io.uffdemu.api.v1.OpenRequest;
import io.uffdemu.api.v1.ProcessServiceGrpc;
import io.uffdemu.api.v1.RegisterRequest;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Handler death: a dropped Handle stream leaves the uffd open for the grace period; a new handler attached in
 * time gets the faults the dead one read (they re-fault); with no new handler, the uffd is closed with the
 * kernel's semantics and the blocked thread completes without uffd (a zero page).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "spring.grpc.server.port=0", "uffdemu.handler.grace-period=1500ms"})
class HandlerGraceIT {
    @LocalGrpcServerPort
    int port;
    ManagedChannel ch;
    int pid;
    int fd;
    long addr;

    @BeforeEach
    void setUp() {
        ch = Grpc.newChannelBuilderForAddress("127.0.0.1", port, InsecureChannelCredentials.create()).build();
        pid = ProcessServiceGrpc.newBlockingStub(ch).create(CreateProcessRequest.newBuilder()
                .setCredentials(Credentials.newBuilder().setCapSysPtrace(true)).build()).getPid();
        addr = MemoryServiceGrpc.newBlockingStub(ch).mmap(MmapRequest.newBuilder().setPid(pid).setLen(4096)
                .setProt(3).setFlags(0x22).setFd(-1).build()).getAddr();
        var uffd = UserfaultfdServiceGrpc.newBlockingStub(ch);
        fd = uffd.open(OpenRequest.newBuilder().setPid(pid).build()).getFd();
        uffd.register(RegisterRequest.newBuilder().setPid(pid).setFd(fd).setMode(1)
                .setRange(AddrRange.newBuilder().setStart(addr).setLen(4096)).build());
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    /** Opens a Handle stream that records what it receives; returns the request side for cancelling. */
    ClientCallStreamObserver<HandleRequest> handler(BlockingQueue<HandleResponse> got) {
        CompletableFuture<ClientCallStreamObserver<HandleRequest>> req = new CompletableFuture<>();
        UserfaultfdServiceGrpc.newStub(ch).handle(new ClientResponseObserver<HandleRequest, HandleResponse>() {
            @Override
            public void beforeStart(ClientCallStreamObserver<HandleRequest> r) {
                req.complete(r);
            }

            @Override
            public void onNext(HandleResponse r) {
                got.add(r);
            }

            @Override
            public void onError(Throwable t) {
            }

            @Override
            public void onCompleted() {
            }
        });
        ClientCallStreamObserver<HandleRequest> r = req.join();
        r.onNext(HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder().setPid(pid).setFd(fd)).build());
        return r;
    }

    CompletableFuture<AccessResponse> read() {
        return CompletableFuture.supplyAsync(() -> ProcessServiceGrpc.newBlockingStub(ch).access(AccessRequest
                .newBuilder().setPid(pid).setAddr(addr).setLen(4).build()));
    }

    @Test
    @Timeout(30)
    void withoutReconnectTheUffdIsClosedAfterTheGracePeriodAndTheThreadCompletes() throws Exception {
        BlockingQueue<HandleResponse> got = new LinkedBlockingQueue<>();
        var h = handler(got);
        var access = read();
        assertThat(got.poll(10, TimeUnit.SECONDS).getMsg().getPagefault().getAddress()).isEqualTo(addr);
        h.cancel("handler died", null);
        long t0 = System.nanoTime();
        try {
            access.get(700, TimeUnit.MILLISECONDS);
            throw new AssertionError("the access completed before the grace period ended");
        } catch (TimeoutException expected) {
            // still blocked: the uffd is kept for a reconnect
        }
        AccessResponse r = access.get(10, TimeUnit.SECONDS);
        assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0)).isGreaterThanOrEqualTo(1400);
        assertThat(r.getSignal()).isZero();
        assertThat(r.getData().toByteArray()).containsExactly(0, 0, 0, 0);
        assertThat(ProcessServiceGrpc.newBlockingStub(ch).get(io.uffdemu.api.v1.GetProcessRequest.newBuilder()
                .setPid(pid).build()).getFdsList()).doesNotContain(fd);
    }

    @Test
    @Timeout(30)
    void aHandlerAttachedWithinTheGracePeriodGetsTheDeadHandlersFaults() throws Exception {
        BlockingQueue<HandleResponse> got = new LinkedBlockingQueue<>();
        var h = handler(got);
        var access = read();
        assertThat(got.poll(10, TimeUnit.SECONDS).hasMsg()).isTrue();
        h.cancel("handler died", null);
        Thread.sleep(200);
        BlockingQueue<HandleResponse> got2 = new LinkedBlockingQueue<>();
        var h2 = handler(got2);
        HandleResponse again = got2.poll(10, TimeUnit.SECONDS);
        assertThat(again).as("the read-but-unresolved fault re-faults for the new handler").isNotNull();
        assertThat(again.getMsg().getPagefault().getAddress()).isEqualTo(addr);
        byte[] page = new byte[4096];
        page[0] = 42;
        h2.onNext(HandleRequest.newBuilder().setRequestId(1).setCopy(CopyRequest.newBuilder().setPid(pid).setFd(fd)
                .setDst(addr).setData(com.google.protobuf.ByteString.copyFrom(page))).build());
        assertThat(access.get(10, TimeUnit.SECONDS).getData().byteAt(0)).isEqualTo((byte) 42);
        Thread.sleep(2000); // past the old grace period: the uffd must still be open (the reconnect adopted it)
        assertThat(ProcessServiceGrpc.newBlockingStub(ch).get(io.uffdemu.api.v1.GetProcessRequest.newBuilder()
                .setPid(pid).build()).getFdsList()).contains(fd);
        h2.onCompleted();
    }
}
