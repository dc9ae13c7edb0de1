package io.uffdemu.server.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.MetadataUtils;
import io.uffdemu.api.v1.AccessRequest;
import io.uffdemu.api.v1.AccessResponse;
import io.uffdemu.api.v1.AddrRange;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.CreateProcessRequest;
import io.uffdemu.api.v1.Credentials;
import io.uffdemu.api.v1.ErrnoInfo;
import io.uffdemu.api.v1.FallocateRequest;
import io.uffdemu.api.v1.MemfdCreateRequest;
import io.uffdemu.api.v1.MemoryServiceGrpc;
import io.uffdemu.api.v1.MmapRequest;
import io.uffdemu.api.v1.MunmapRequest;
import io.uffdemu.api.v1.OpenRequest;
import io.uffdemu.api.v1.ProcessServiceGrpc;
import io.uffdemu.api.v1.RegisterRequest;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Per-tenant quotas through gRPC: alice exhausts each quota and gets RESOURCE_EXHAUSTED with the kernel's errno and
 * reason QUOTA_EXCEEDED (a page fault over memory.max gets SIGBUS, as the kernel's VM_FAULT_OOM); bob, in the
 * same server at the same time, keeps working. Client input never makes the server allocate without bound.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "spring.grpc.server.port=0",
        "uffdemu.auth.tokens[0]=alice:" + TenancyIT.ALICE_HASH,
        "uffdemu.auth.tokens[1]=bob:" + TenancyIT.BOB_HASH,
        "uffdemu.emulated.memory=256MB", "uffdemu.emulated.swap=64MB",
        "uffdemu.quotas.memory=1MB", "uffdemu.quotas.swap=0", "uffdemu.quotas.max-mappings=24",
        "uffdemu.quotas.max-uffds=3", "uffdemu.quotas.max-registered-ranges=4",
        "uffdemu.quotas.max-pending-faults=1", "uffdemu.quotas.max-processes=8",
        "uffdemu.emulated.hugepages2m=8", "uffdemu.quotas.hugetlb-rsvd=4MB"})
class QuotaIT {
    static final long PAGE = 4096;
    static final long HUGE = 2L << 20;
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

    Channel as(String token) {
        Metadata md = new Metadata();
        md.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
        return ClientInterceptors.intercept(ch, MetadataUtils.newAttachHeadersInterceptor(md));
    }

    /** A tenant's view: stubs plus helpers on one fresh process. */
    final class Tenant {
        final ProcessServiceGrpc.ProcessServiceBlockingStub proc;
        final MemoryServiceGrpc.MemoryServiceBlockingStub mem;
        final UserfaultfdServiceGrpc.UserfaultfdServiceBlockingStub uffd;
        final int pid;

        Tenant(String token) {
            Channel c = as(token);
            proc = ProcessServiceGrpc.newBlockingStub(c);
            mem = MemoryServiceGrpc.newBlockingStub(c);
            uffd = UserfaultfdServiceGrpc.newBlockingStub(c);
            pid = proc.create(CreateProcessRequest.newBuilder().setName(token)
                    .setCredentials(Credentials.newBuilder().setCapSysPtrace(true)).build()).getPid();
        }

        long mmap(long pages, int prot) {
            return mem.mmap(MmapRequest.newBuilder().setPid(pid).setLen(pages * PAGE).setProt(prot).setFlags(0x22)
                    .setFd(-1).build()).getAddr();
        }

        /** A private MAP_HUGETLB mapping (MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB) of 2 MiB pages. */
        long mmapHuge(long hugePages) {
            return mem.mmap(MmapRequest.newBuilder().setPid(pid).setLen(hugePages * HUGE).setProt(3)
                    .setFlags(0x22 | 0x40000).setFd(-1).build()).getAddr();
        }

        AccessResponse write(long addr) {
            return proc.access(AccessRequest.newBuilder().setPid(pid).setAddr(addr).setWrite(true)
                    .setData(ByteString.copyFrom(new byte[] {42})).build());
        }

        int openUffd() {
            return uffd.open(OpenRequest.newBuilder().setPid(pid).build()).getFd();
        }

        void exit() {
            proc.exit(io.uffdemu.api.v1.ExitRequest.newBuilder().setPid(pid).build());
        }
    }

    static void assertQuota(ThrowingCallable call, String errno) {
        assertThatThrownBy(call).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
            ErrnoInfo info = errnoInfo(e);
            assertThat(info.getName()).isEqualTo(errno);
            assertThat(info.getReason()).isEqualTo("QUOTA_EXCEEDED");
        });
    }

    static ErrnoInfo errnoInfo(StatusRuntimeException e) {
        try {
            return StatusProto.fromThrowable(e).getDetails(0).unpack(ErrnoInfo.class);
        } catch (Exception x) {
            throw new AssertionError("no ErrnoInfo in " + e, x);
        }
    }

    @Test
    @Timeout(60)
    void memoryLimitFaultIsSigbusCopyAndFallocateAreEnomemAndBobIsUnaffected() {
        Tenant alice = new Tenant("alice-token");
        Tenant bob = new Tenant("bob-token");
        try {
            long a = alice.mmap(512, 3);
            int sigbusAt = -1;
            for (int i = 0; i < 512; i++) {
                AccessResponse r = alice.write(a + i * PAGE);
                if (r.getSignal() != 0) {
                    assertThat(r.getSignal()).isEqualTo(7); // SIGBUS: VM_FAULT_OOM of the memcg
                    sigbusAt = i;
                    break;
                }
            }
            // 1 MB memory.max = 256 pages, no swap; the page tables of the mapping (1 or 2) are charged too
            assertThat(sigbusAt).isBetween(254, 255);
            // bob writes 800 KB meanwhile: his own memcg, same limits
            long b = bob.mmap(200, 3);
            for (int i = 0; i < 200; i++) {
                assertThat(bob.write(b + i * PAGE).getSignal()).isZero();
            }
            // UFFDIO_COPY over the limit: ENOMEM
            int ufd = alice.openUffd();
            long dst = alice.mmap(4, 3);
            alice.uffd.register(RegisterRequest.newBuilder().setPid(alice.pid).setFd(ufd)
                    .setRange(AddrRange.newBuilder().setStart(dst).setLen(4 * PAGE)).setMode(1).build());
            assertQuota(() -> alice.uffd.copy(CopyRequest.newBuilder().setPid(alice.pid).setFd(ufd).setDst(dst)
                    .setData(ByteString.copyFrom(new byte[(int) PAGE])).build()), "ENOMEM");
            // fallocate of a huge length is bounded by the memcg, not by the server's heap
            int mfd = alice.mem.memfdCreate(MemfdCreateRequest.newBuilder().setPid(alice.pid).setName("m").build())
                    .getFd();
            assertQuota(() -> alice.mem.fallocate(FallocateRequest.newBuilder().setPid(alice.pid).setFd(mfd)
                    .setOffset(0).setLen(1L << 40).build()), "ENOSPC");
        } finally {
            alice.exit();
            bob.exit();
        }
        // exit uncharged everything: alice gets her megabyte back
        Tenant again = new Tenant("alice-token");
        try {
            long a = again.mmap(200, 3);
            for (int i = 0; i < 200; i++) {
                assertThat(again.write(a + i * PAGE).getSignal()).isZero();
            }
        } finally {
            again.exit();
        }
    }

    /**
     * hugetlb-rsvd (hugetlb.rsvd.max) bounds the huge pages a tenant reserves at mmap time, faulted or not: alice
     * cannot reserve the pool away from bob without touching it. The mmap over the limit is ENOMEM, as
     * hugetlb_reserve_pages() fails it.
     */
    @Test
    @Timeout(60)
    void hugetlbReservationQuotaIsEnomemAtMmapAndBobKeepsHisHugePages() {
        Tenant alice = new Tenant("alice-token");
        Tenant bob = new Tenant("bob-token");
        try {
            long a = alice.mmapHuge(2); // 4 MB reserved, nothing faulted
            // the pool (8 pages) has room: alice's own limit fails the third
            assertQuota(() -> alice.mmapHuge(1), "ENOMEM");
            long b = bob.mmapHuge(2);
            assertThat(bob.write(b).getSignal()).isZero();
            assertThat(bob.write(b + HUGE).getSignal()).isZero();
            // munmap releases alice's reservation and its charge
            alice.mem.munmap(MunmapRequest.newBuilder().setPid(alice.pid).setAddr(a).setLen(2 * HUGE).build());
            long again = alice.mmapHuge(2);
            assertThat(alice.write(again).getSignal()).isZero();
        } finally {
            alice.exit();
            bob.exit();
        }
    }

    @Test
    @Timeout(60)
    void mappingUffdAndRegisteredRangeQuotas() {
        Tenant alice = new Tenant("alice-token");
        Tenant bob = new Tenant("bob-token");
        try {
            for (int i = 0; i < 24; i++) {
                alice.mmap(1, i % 2 == 0 ? 1 : 3); // alternating protections: no merging, one VMA each
            }
            assertQuota(() -> alice.mmap(1, 1), "ENOMEM");
            for (int i = 0; i < 20; i++) {
                bob.mmap(1, i % 2 == 0 ? 1 : 3);
            }
        } finally {
            alice.exit();
        }
        Tenant alice2 = new Tenant("alice-token");
        try {
            int fd = alice2.openUffd();
            alice2.openUffd();
            alice2.openUffd();
            assertQuota(alice2::openUffd, "EMFILE");
            bob.openUffd(); // bob's three are his own
            bob.openUffd();
            bob.openUffd();
            for (int i = 0; i < 4; i++) {
                long r = alice2.mmap(2, i % 2 == 0 ? 1 : 3);
                alice2.uffd.register(RegisterRequest.newBuilder().setPid(alice2.pid).setFd(fd)
                        .setRange(AddrRange.newBuilder().setStart(r).setLen(2 * PAGE)).setMode(1).build());
            }
            long r5 = alice2.mmap(2, 3);
            assertQuota(() -> alice2.uffd.register(RegisterRequest.newBuilder().setPid(alice2.pid).setFd(fd)
                    .setRange(AddrRange.newBuilder().setStart(r5).setLen(2 * PAGE)).setMode(1).build()), "ENOMEM");
        } finally {
            alice2.exit();
            bob.exit();
        }
    }

    @Test
    @Timeout(60)
    void pendingFaultQuotaIsEagainAndProcessQuotaIsEagain() throws Exception {
        Tenant alice = new Tenant("alice-token");
        var pool = Executors.newVirtualThreadPerTaskExecutor();
        try {
            int fd = alice.openUffd();
            long r = alice.mmap(4, 3);
            alice.uffd.register(RegisterRequest.newBuilder().setPid(alice.pid).setFd(fd)
                    .setRange(AddrRange.newBuilder().setStart(r).setLen(4 * PAGE)).setMode(1).build());
            // the first fault parks (no handler) until its deadline
            CompletableFuture<Object> parked = CompletableFuture.supplyAsync(() -> {
                try {
                    return alice.proc.withDeadlineAfter(3, TimeUnit.SECONDS).access(AccessRequest.newBuilder()
                            .setPid(alice.pid).setAddr(r).setWrite(true).setData(ByteString.copyFrom(new byte[1]))
                            .build());
                } catch (StatusRuntimeException e) {
                    return e.getStatus().getCode();
                }
            }, pool);
            Thread.sleep(500);
            assertQuota(() -> alice.write(r + PAGE), "EAGAIN");
            assertThat(parked.get(10, TimeUnit.SECONDS)).isEqualTo(Status.Code.DEADLINE_EXCEEDED);
            // the quota frees with the parked thread: the next fault queues (and times out) again
            assertThatThrownBy(() -> alice.proc.withDeadlineAfter(300, TimeUnit.MILLISECONDS).access(
                    AccessRequest.newBuilder().setPid(alice.pid).setAddr(r + PAGE).setWrite(true)
                            .setData(ByteString.copyFrom(new byte[1])).build()))
                    .isInstanceOfSatisfying(StatusRuntimeException.class,
                            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED));
            // processes: 8 per tenant (EAGAIN, like RLIMIT_NPROC)
            java.util.List<Tenant> more = new java.util.ArrayList<>();
            for (int i = 0; i < 7; i++) {
                more.add(new Tenant("alice-token"));
            }
            assertQuota(() -> new Tenant("alice-token"), "EAGAIN");
            Tenant bob = new Tenant("bob-token");
            bob.exit();
            more.forEach(Tenant::exit);
        } finally {
            alice.exit();
            pool.close();
        }
    }
}
