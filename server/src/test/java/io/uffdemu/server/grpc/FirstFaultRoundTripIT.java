package io.uffdemu.server.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.AccessRequest;
import io.uffdemu.api.v1.AccessResponse;
import io.uffdemu.api.v1.AddrRange;
import io.uffdemu.api.v1.CreateProcessRequest;
import io.uffdemu.api.v1.Credentials;
import io.uffdemu.api.v1.HandleAttach;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.MemoryServiceGrpc;
import io.uffdemu.api.v1.MmapRequest;
import io.uffdemu.api.v1.OpenRequest;
import io.uffdemu.api.v1.OpenResponse;
import io.uffdemu.api.v1.ProcessServiceGrpc;
import io.uffdemu.api.v1.ReadPagemapRequest;
import io.uffdemu.api.v1.RegisterRequest;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import io.uffdemu.api.v1.WriteProtectRequest;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Issue 2's proof: one real write-protect fault travels from an emulated thread through the server to a
 * handler on the Handle stream and back, over gRPC on loopback.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"spring.grpc.server.port=0", "uffdemu.emulated.check-invariants=true"})
class FirstFaultRoundTripIT {
    @LocalGrpcServerPort
    int port;
    ManagedChannel ch;

    @BeforeEach
    void connect() {
        ch = Grpc.newChannelBuilderForAddress("127.0.0.1", port, InsecureChannelCredentials.create()).build();
    }

    @AfterEach
    void close() throws InterruptedException {
        ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    @Test
    @Timeout(30)
    void writeProtectFaultRoundTrip() throws Exception {
        var procs = ProcessServiceGrpc.newBlockingStub(ch);
        var mem = MemoryServiceGrpc.newBlockingStub(ch);
        var uffd = UserfaultfdServiceGrpc.newBlockingStub(ch);
        int pid = procs.create(CreateProcessRequest.newBuilder().setName("target")
                .setCredentials(Credentials.newBuilder().setCapSysPtrace(true)).build()).getPid();
        long addr = mem.mmap(MmapRequest.newBuilder().setPid(pid).setLen(4096).setProt(3).setFlags(0x22).setFd(-1)
                .build()).getAddr();
        procs.access(AccessRequest.newBuilder().setPid(pid).setAddr(addr).setWrite(true)
                .setData(ByteString.copyFromUtf8("before")).build());
        OpenResponse open = uffd.open(OpenRequest.newBuilder().setPid(pid).build());
        assertThat(open.getFeatures()).isEqualTo(0x1ffffL);
        int fd = open.getFd();
        AddrRange range = AddrRange.newBuilder().setStart(addr).setLen(4096).build();
        long ioctls = uffd.register(RegisterRequest.newBuilder().setPid(pid).setFd(fd).setRange(range).setMode(2)
                .build()).getIoctls();
        assertThat(ioctls).isEqualTo(0x17cL);
        uffd.writeProtect(WriteProtectRequest.newBuilder().setPid(pid).setFd(fd).setRange(range).setMode(1).build());
        long pm = procs.readPagemap(ReadPagemapRequest.newBuilder().setPid(pid).setStart(addr).setPages(1).build())
                .getEntries(0);
        assertThat(pm & (1L << 57)).as("uffd-wp bit 57 after UFFDIO_WRITEPROTECT").isNotZero();

        // the handler: attach a Handle stream, un-protect whatever write fault arrives
        BlockingQueue<HandleResponse> got = new LinkedBlockingQueue<>();
        StreamObserver<HandleRequest>[] req = new StreamObserver[1];
        req[0] = UserfaultfdServiceGrpc.newStub(ch).handle(new StreamObserver<>() {
            @Override
            public void onNext(HandleResponse r) {
                got.add(r);
                if (r.hasMsg() && r.getMsg().hasPagefault()) {
                    long a = r.getMsg().getPagefault().getAddress();
                    synchronized (req) {
                        req[0].onNext(HandleRequest.newBuilder().setRequestId(7).setWriteProtect(WriteProtectRequest
                                .newBuilder().setPid(pid).setFd(fd).setRange(AddrRange.newBuilder().setStart(a)
                                        .setLen(4096)).setMode(0)).build());
                    }
                }
            }

            @Override
            public void onError(Throwable t) {
            }

            @Override
            public void onCompleted() {
            }
        });
        synchronized (req) {
            req[0].onNext(HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder().setPid(pid).setFd(fd)).build());
        }

        // the faulting thread: a store into the protected page blocks until the handler resolves it
        CompletableFuture<AccessResponse> write = CompletableFuture.supplyAsync(() -> procs.access(AccessRequest
                .newBuilder().setPid(pid).setAddr(addr + 8).setWrite(true).setData(ByteString.copyFromUtf8("after!"))
                .build()));
        HandleResponse msg = got.poll(10, TimeUnit.SECONDS);
        assertThat(msg).isNotNull();
        assertThat(msg.getMsg().getEvent()).isEqualTo(0x12);
        assertThat(msg.getMsg().getPagefault().getFlags()).as("WRITE|WP").isEqualTo(3);
        assertThat(msg.getMsg().getPagefault().getAddress()).isEqualTo(addr);
        HandleResponse result = got.poll(10, TimeUnit.SECONDS);
        assertThat(result.getResult().getRequestId()).isEqualTo(7);
        assertThat(result.getResult().hasError()).isFalse();
        assertThat(write.get(10, TimeUnit.SECONDS).getSignal()).isZero();

        byte[] back = procs.access(AccessRequest.newBuilder().setPid(pid).setAddr(addr).setLen(14).build())
                .getData().toByteArray();
        assertThat(new String(back)).isEqualTo("before\0\0after!");
        long pmAfter = procs.readPagemap(ReadPagemapRequest.newBuilder().setPid(pid).setStart(addr).setPages(1)
                .build()).getEntries(0);
        assertThat(pmAfter & (1L << 57)).isZero();
        assertThat(pmAfter & (1L << 63)).isNotZero();
        synchronized (req) {
            req[0].onCompleted();
        }
    }
}
