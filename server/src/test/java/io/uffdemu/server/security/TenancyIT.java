package io.uffdemu.server.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.MetadataUtils;
import com.google.protobuf.ByteString;
import io.uffdemu.api.v1.AcceptMemfdGrantRequest;
import io.uffdemu.api.v1.AccessRequest;
import io.uffdemu.api.v1.CloseRequest;
import io.uffdemu.api.v1.CreateProcessRequest;
import io.uffdemu.api.v1.ExitRequest;
import io.uffdemu.api.v1.FtruncateRequest;
import io.uffdemu.api.v1.GrantMemfdRequest;
import io.uffdemu.api.v1.MemfdCreateRequest;
import io.uffdemu.api.v1.PidfdGetfdRequest;
import io.uffdemu.api.v1.PreadRequest;
import io.uffdemu.api.v1.PwriteRequest;
import io.uffdemu.api.v1.RevokeMemfdGrantRequest;
import io.uffdemu.api.v1.Credentials;
import io.uffdemu.api.v1.ErrnoInfo;
import io.uffdemu.api.v1.ListProcessesRequest;
import io.uffdemu.api.v1.MemoryServiceGrpc;
import io.uffdemu.api.v1.MmapRequest;
import io.uffdemu.api.v1.OpenRequest;
import io.uffdemu.api.v1.ProcessServiceGrpc;
import io.uffdemu.api.v1.SysctlValue;
import io.uffdemu.api.v1.SystemServiceGrpc;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import io.uffdemu.server.grpc.AuthInterceptor;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Authentication and tenancy: tokens name tenants; every API call that names a process is tried by another
 * tenant on tenant A's objects and must answer NOT_FOUND (ESRCH), never PERMISSION_DENIED or success.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "spring.grpc.server.port=0",
        "uffdemu.auth.tokens[0]=alice:" + TenancyIT.ALICE_HASH,
        "uffdemu.auth.tokens[1]=bob:" + TenancyIT.BOB_HASH,
        "uffdemu.auth.tokens[2]=admin:" + TenancyIT.ADMIN_HASH,
        "uffdemu.quotas.max-processes=3"})
class TenancyIT {
    // sha256("alice-token"), sha256("bob-token"), sha256("admin-token")
    static final String ALICE_HASH = "9c220f200955d76c0a38d308225e0ef10c5f971acaf2f8d1d8f732affa5bd1dc";
    static final String BOB_HASH = "97dd3707015dcf069cf73022ed7173b1165db6eff24b441cb57fd069a8c4e525";
    static final String ADMIN_HASH = "10a4c7c9fc5206d6f36dc6944a81bb6f4a3cb0e25014ae3b12e6c3e52712292a";

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

    @Test
    void hashesInThisTestAreTheRealOnes() {
        assertThat(AuthInterceptor.sha256Hex("alice-token")).isEqualTo(ALICE_HASH);
        assertThat(AuthInterceptor.sha256Hex("bob-token")).isEqualTo(BOB_HASH);
    }

    @Test
    @Timeout(30)
    void missingOrWrongTokenIsUnauthenticated() {
        assertThatThrownBy(() -> ProcessServiceGrpc.newBlockingStub(ch).list(ListProcessesRequest.getDefaultInstance()))
                .isInstanceOfSatisfying(StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED));
        assertThatThrownBy(() -> ProcessServiceGrpc.newBlockingStub(as("alice-tokenX"))
                .list(ListProcessesRequest.getDefaultInstance()))
                .isInstanceOfSatisfying(StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED));
    }

    /** Every method of the three process-scoped services, called by bob on alice's process, is NOT_FOUND. */
    @Test
    @Timeout(60)
    void everyCallOnAnotherTenantsProcessIsNotFound() {
        var alice = ProcessServiceGrpc.newBlockingStub(as("alice-token"));
        int pid = alice.create(CreateProcessRequest.newBuilder().setName("a")
                .setCredentials(Credentials.newBuilder().setCapSysPtrace(true)).build()).getPid();
        long addr = MemoryServiceGrpc.newBlockingStub(as("alice-token")).mmap(MmapRequest.newBuilder().setPid(pid)
                .setLen(4096).setProt(3).setFlags(0x22).setFd(-1).build()).getAddr();
        int ufd = UserfaultfdServiceGrpc.newBlockingStub(as("alice-token")).open(OpenRequest.newBuilder().setPid(pid)
                .build()).getFd();
        Channel bob = as("bob-token");
        List<String> probed = new ArrayList<>();
        for (ServiceDescriptor sd : List.of(ProcessServiceGrpc.getServiceDescriptor(),
                MemoryServiceGrpc.getServiceDescriptor(), UserfaultfdServiceGrpc.getServiceDescriptor())) {
            for (MethodDescriptor<?, ?> md : sd.getMethods()) {
                Message proto = (Message) ((MethodDescriptor.PrototypeMarshaller<?>) md.getRequestMarshaller())
                        .getMessagePrototype();
                if (proto.getDescriptorForType().findFieldByName("pid") == null
                        && proto.getDescriptorForType().findFieldByName("attach") == null) {
                    continue; // Create and List name no process
                }
                Message req = fill(proto, pid, ufd, addr);
                probed.add(md.getBareMethodName());
                @SuppressWarnings("unchecked")
                MethodDescriptor<Message, Message> m = (MethodDescriptor<Message, Message>) md;
                Throwable thrown = null;
                try {
                    if (md.getType() == MethodDescriptor.MethodType.UNARY) {
                        ClientCalls.blockingUnaryCall(bob, m, CallOptions.DEFAULT.withDeadlineAfter(10,
                                TimeUnit.SECONDS), req);
                    } else {
                        var done = new java.util.concurrent.CompletableFuture<Void>();
                        var reqs = ClientCalls.asyncBidiStreamingCall(bob.newCall(m, CallOptions.DEFAULT
                                .withDeadlineAfter(10, TimeUnit.SECONDS)), new io.grpc.stub.StreamObserver<Message>() {
                                    public void onNext(Message v) {
                                    }

                                    public void onError(Throwable t) {
                                        done.completeExceptionally(t);
                                    }

                                    public void onCompleted() {
                                        done.complete(null);
                                    }
                                });
                        reqs.onNext(req);
                        try {
                            done.get(15, TimeUnit.SECONDS);
                        } catch (java.util.concurrent.ExecutionException ee) {
                            throw ee.getCause();
                        }
                    }
                } catch (Throwable t) {
                    thrown = t;
                }
                assertThat(thrown).as(md.getFullMethodName()).isInstanceOf(StatusRuntimeException.class);
                StatusRuntimeException e = (StatusRuntimeException) thrown;
                assertThat(e.getStatus().getCode()).as(md.getFullMethodName()).isEqualTo(Status.Code.NOT_FOUND);
                assertThat(errno(e)).as(md.getFullMethodName()).isEqualTo("ESRCH");
            }
        }
        assertThat(probed).contains("Access", "ReadPagemap", "PagemapScan", "Maps", "Fork", "Exit", "Mmap",
                "Munmap", "MemfdCreate", "PidfdGetfd", "GrantMemfd", "AcceptMemfdGrant", "RevokeMemfdGrant", "Open",
                "Register", "Copy", "WriteProtect", "Read", "Handle", "Describe", "List");
        // bob does not even see alice's process in listings
        assertThat(ProcessServiceGrpc.newBlockingStub(bob).list(ListProcessesRequest.getDefaultInstance())
                .getProcessesList()).noneMatch(p -> p.getPid() == pid);
        assertThat(alice.list(ListProcessesRequest.getDefaultInstance()).getProcessesList())
                .anyMatch(p -> p.getPid() == pid);
    }

    static Message fill(Message proto, int pid, int fd, long addr) {
        Message.Builder b = proto.newBuilderForType();
        for (FieldDescriptor f : proto.getDescriptorForType().getFields()) {
            switch (f.getName()) {
                case "pid", "target_pid" -> b.setField(f, pid);
                case "fd", "target_fd" -> b.setField(f, fd);
                case "addr", "dst", "start", "old_addr" -> b.setField(f, addr);
                case "len", "old_len", "new_len", "pages" -> b.setField(f, 4096L);
                case "attach" -> {
                    Message.Builder a = b.newBuilderForField(f);
                    a.setField(f.getMessageType().findFieldByName("pid"), pid);
                    a.setField(f.getMessageType().findFieldByName("fd"), fd);
                    b.setField(f, a.build());
                }
                default -> {
                }
            }
        }
        return b.build();
    }

    static String errno(StatusRuntimeException e) {
        com.google.rpc.Status st = StatusProto.fromThrowable(e);
        if (st == null) {
            return "";
        }
        for (var any : st.getDetailsList()) {
            if (any.is(ErrnoInfo.class)) {
                try {
                    return any.unpack(ErrnoInfo.class).getName();
                } catch (Exception ex) {
                    return "";
                }
            }
        }
        return "";
    }

    static void assertNotFound(org.assertj.core.api.ThrowableAssert.ThrowingCallable call, String errno) {
        assertThatThrownBy(call).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
            assertThat(errno(e)).isEqualTo(errno);
        });
    }

    /**
     * A HandleRequest.batch is one message: the interceptor checks only its direct sub-messages, so the session
     * checks each item. Bob, attached to his own uffd, batches a COPY into Alice's registered range: that item is
     * ESRCH (as the interceptor's NOT_FOUND would say), his own item still runs, and Alice's page stays empty.
     */
    @Test
    @Timeout(60)
    void aBatchedResolutionNamingAnotherTenantsProcessIsEsrchAndChangesNothing() throws Exception {
        var aProcs = ProcessServiceGrpc.newBlockingStub(as("alice-token"));
        int apid = aProcs.create(CreateProcessRequest.newBuilder().setName("a")
                .setCredentials(Credentials.newBuilder().setCapSysPtrace(true)).build()).getPid();
        long aaddr = MemoryServiceGrpc.newBlockingStub(as("alice-token")).mmap(MmapRequest.newBuilder().setPid(apid)
                .setLen(4096).setProt(3).setFlags(0x22).setFd(-1).build()).getAddr();
        var aUffd = UserfaultfdServiceGrpc.newBlockingStub(as("alice-token"));
        int aufd = aUffd.open(OpenRequest.newBuilder().setPid(apid).build()).getFd();
        aUffd.register(io.uffdemu.api.v1.RegisterRequest.newBuilder().setPid(apid).setFd(aufd).setMode(1)
                .setRange(io.uffdemu.api.v1.AddrRange.newBuilder().setStart(aaddr).setLen(4096)).build());

        Channel bob = as("bob-token");
        int bpid = ProcessServiceGrpc.newBlockingStub(bob).create(CreateProcessRequest.newBuilder().setName("b")
                .setCredentials(Credentials.newBuilder().setCapSysPtrace(true)).build()).getPid();
        int bufd = UserfaultfdServiceGrpc.newBlockingStub(bob).open(OpenRequest.newBuilder().setPid(bpid).build())
                .getFd();
        var got = new java.util.concurrent.LinkedBlockingQueue<io.uffdemu.api.v1.HandleResponse>();
        var reqs = UserfaultfdServiceGrpc.newStub(bob).handle(new io.grpc.stub.StreamObserver<>() {
            public void onNext(io.uffdemu.api.v1.HandleResponse v) {
                got.add(v);
            }

            public void onError(Throwable t) {
            }

            public void onCompleted() {
            }
        });
        reqs.onNext(io.uffdemu.api.v1.HandleRequest.newBuilder().setAttach(io.uffdemu.api.v1.HandleAttach
                .newBuilder().setPid(bpid).setFd(bufd).setMaxBatch(8)).build());
        reqs.onNext(io.uffdemu.api.v1.HandleRequest.newBuilder().setBatch(io.uffdemu.api.v1.HandleRequestBatch
                .newBuilder()
                .addRequests(io.uffdemu.api.v1.HandleRequest.newBuilder().setRequestId(1).setCopy(
                        io.uffdemu.api.v1.CopyRequest.newBuilder().setPid(apid).setFd(aufd).setDst(aaddr)
                                .setData(ByteString.copyFrom(new byte[4096]))))
                .addRequests(io.uffdemu.api.v1.HandleRequest.newBuilder().setRequestId(2).setWake(
                        io.uffdemu.api.v1.RangeRequest.newBuilder().setPid(bpid).setFd(bufd).setRange(
                                io.uffdemu.api.v1.AddrRange.newBuilder().setStart(0x10000).setLen(4096))))).build());
        var r = got.poll(10, TimeUnit.SECONDS);
        assertThat(r).isNotNull();
        assertThat(r.getResults().getResultsCount()).isEqualTo(2);
        assertThat(r.getResults().getResults(0).getError().getName()).isEqualTo("ESRCH");
        assertThat(r.getResults().getResults(1).hasError()).as("bob's own wake still ran").isFalse();
        long pm = aProcs.readPagemap(io.uffdemu.api.v1.ReadPagemapRequest.newBuilder().setPid(apid).setStart(aaddr)
                .setPages(1).build()).getEntries(0);
        assertThat(pm & (1L << 63)).as("alice's page is still not present").isZero();
        reqs.onCompleted();
    }

    /**
     * A single resolution naming another tenant's process is refused by the interceptor, which closes the Handle
     * stream (NOT_FOUND) behind the session's back. The session must still let go of the uffd: a new Handle stream
     * on it is accepted (it was FAILED_PRECONDITION "another Handle stream is attached" forever).
     */
    @Test
    @Timeout(60)
    void aHandleStreamClosedByTheInterceptorFreesItsUffd() throws Exception {
        int apid = ProcessServiceGrpc.newBlockingStub(as("alice-token")).create(CreateProcessRequest.newBuilder()
                .setName("a").build()).getPid();
        Channel bob = as("bob-token");
        int bpid = ProcessServiceGrpc.newBlockingStub(bob).create(CreateProcessRequest.newBuilder().setName("b")
                .setCredentials(Credentials.newBuilder().setCapSysPtrace(true)).build()).getPid();
        int bufd = UserfaultfdServiceGrpc.newBlockingStub(bob).open(OpenRequest.newBuilder().setPid(bpid).build())
                .getFd();
        for (int attempt = 0; attempt < 2; attempt++) {
            var got = new java.util.concurrent.LinkedBlockingQueue<Object>();
            var reqs = UserfaultfdServiceGrpc.newStub(bob).handle(new io.grpc.stub.StreamObserver<>() {
                public void onNext(io.uffdemu.api.v1.HandleResponse v) {
                    got.add(v);
                }

                public void onError(Throwable t) {
                    got.add(t);
                }

                public void onCompleted() {
                }
            });
            reqs.onNext(io.uffdemu.api.v1.HandleRequest.newBuilder().setAttach(io.uffdemu.api.v1.HandleAttach
                    .newBuilder().setPid(bpid).setFd(bufd)).build());
            // bob's own WAKE: answered, so the attach held
            reqs.onNext(io.uffdemu.api.v1.HandleRequest.newBuilder().setRequestId(1).setWake(
                    io.uffdemu.api.v1.RangeRequest.newBuilder().setPid(bpid).setFd(bufd).setRange(
                            io.uffdemu.api.v1.AddrRange.newBuilder().setStart(0x10000).setLen(4096))).build());
            Object first = got.poll(10, TimeUnit.SECONDS);
            assertThat(first).as("attempt %d: the WAKE's result, not a refused attach", attempt)
                    .isInstanceOf(io.uffdemu.api.v1.HandleResponse.class);
            assertThat(((io.uffdemu.api.v1.HandleResponse) first).getResult().hasError()).isFalse();
            // then a COPY into alice's process: the interceptor ends the stream
            reqs.onNext(io.uffdemu.api.v1.HandleRequest.newBuilder().setRequestId(2).setCopy(
                    io.uffdemu.api.v1.CopyRequest.newBuilder().setPid(apid).setFd(3).setDst(0x10000)
                            .setData(ByteString.copyFrom(new byte[4096]))).build());
            Object end = got.poll(10, TimeUnit.SECONDS);
            assertThat(end).isInstanceOf(io.grpc.StatusRuntimeException.class);
            assertThat(((io.grpc.StatusRuntimeException) end).getStatus().getCode())
                    .isEqualTo(io.grpc.Status.Code.NOT_FOUND);
        }
    }

    /** A memfd crosses tenants only by an explicit grant to that tenant; revocation closes what it installed. */
    @Test
    @Timeout(60)
    void memfdCrossesTenantsOnlyByAnExplicitGrant() {
        var aMem = MemoryServiceGrpc.newBlockingStub(as("alice-token"));
        var bMem = MemoryServiceGrpc.newBlockingStub(as("bob-token"));
        var aProc = ProcessServiceGrpc.newBlockingStub(as("alice-token"));
        var bProc = ProcessServiceGrpc.newBlockingStub(as("bob-token"));
        int ap = aProc.create(CreateProcessRequest.newBuilder().setName("a").build()).getPid();
        int bp = bProc.create(CreateProcessRequest.newBuilder().setName("b").build()).getPid();
        try {
            int afd = aMem.memfdCreate(MemfdCreateRequest.newBuilder().setPid(ap).setName("shared").build()).getFd();
            aMem.ftruncate(FtruncateRequest.newBuilder().setPid(ap).setFd(afd).setLength(4096).build());
            aMem.pwrite(PwriteRequest.newBuilder().setPid(ap).setFd(afd).setData(ByteString.copyFromUtf8("hello"))
                    .build());
            // without a grant: not reachable, and no token works
            assertNotFound(() -> bMem.pidfdGetfd(PidfdGetfdRequest.newBuilder().setPid(bp).setTargetPid(ap)
                    .setTargetFd(afd).build()), "ESRCH");
            assertNotFound(() -> bMem.acceptMemfdGrant(AcceptMemfdGrantRequest.newBuilder().setPid(bp)
                    .setGrantToken("mg_00000000000000000000000000000000").build()), "ENOENT");
            // a grant to another tenant is not bob's
            String toAdmin = aMem.grantMemfd(GrantMemfdRequest.newBuilder().setPid(ap).setFd(afd)
                    .setGranteeTenant("admin").build()).getGrantToken();
            assertNotFound(() -> bMem.acceptMemfdGrant(AcceptMemfdGrantRequest.newBuilder().setPid(bp)
                    .setGrantToken(toAdmin).build()), "ENOENT");
            // a grant of something that is not a memfd, or not open
            int ufd = UserfaultfdServiceGrpc.newBlockingStub(as("alice-token")).open(OpenRequest.newBuilder()
                    .setPid(ap).setFlags(1).build()).getFd();
            assertThatThrownBy(() -> aMem.grantMemfd(GrantMemfdRequest.newBuilder().setPid(ap).setFd(ufd)
                    .setGranteeTenant("bob").build())).isInstanceOfSatisfying(StatusRuntimeException.class,
                            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT));
            assertNotFound(() -> aMem.grantMemfd(GrantMemfdRequest.newBuilder().setPid(ap).setFd(99)
                    .setGranteeTenant("bob").build()), "EBADF");

            String token = aMem.grantMemfd(GrantMemfdRequest.newBuilder().setPid(ap).setFd(afd)
                    .setGranteeTenant("bob").build()).getGrantToken();
            int bfd = bMem.acceptMemfdGrant(AcceptMemfdGrantRequest.newBuilder().setPid(bp).setGrantToken(token)
                    .build()).getFd();
            assertThat(bMem.pread(PreadRequest.newBuilder().setPid(bp).setFd(bfd).setLen(5).build()).getData()
                    .toStringUtf8()).isEqualTo("hello");
            long map = bMem.mmap(MmapRequest.newBuilder().setPid(bp).setLen(4096).setProt(3).setFlags(1).setFd(bfd)
                    .build()).getAddr();
            bProc.access(AccessRequest.newBuilder().setPid(bp).setAddr(map).setWrite(true)
                    .setData(ByteString.copyFromUtf8("world")).build());
            assertThat(aMem.pread(PreadRequest.newBuilder().setPid(ap).setFd(afd).setLen(5).build()).getData()
                    .toStringUtf8()).as("one page cache, two tenants").isEqualTo("world");
            // the grant holds the file, not alice's fd number
            aMem.close(CloseRequest.newBuilder().setPid(ap).setFd(afd).build());
            int bfd2 = bMem.acceptMemfdGrant(AcceptMemfdGrantRequest.newBuilder().setPid(bp).setGrantToken(token)
                    .build()).getFd();
            // only the granting tenant revokes
            assertNotFound(() -> bMem.revokeMemfdGrant(RevokeMemfdGrantRequest.newBuilder().setPid(bp)
                    .setGrantToken(token).build()), "ENOENT");
            assertThat(aMem.revokeMemfdGrant(RevokeMemfdGrantRequest.newBuilder().setPid(ap).setGrantToken(token)
                    .build()).getClosedFds()).isEqualTo(2);
            assertNotFound(() -> bMem.pread(PreadRequest.newBuilder().setPid(bp).setFd(bfd).setLen(5).build()),
                    "EBADF");
            assertNotFound(() -> bMem.pread(PreadRequest.newBuilder().setPid(bp).setFd(bfd2).setLen(5).build()),
                    "EBADF");
            assertNotFound(() -> bMem.acceptMemfdGrant(AcceptMemfdGrantRequest.newBuilder().setPid(bp)
                    .setGrantToken(token).build()), "ENOENT");
            // the grant to admin ends when the granting process exits
        } finally {
            aProc.exit(ExitRequest.newBuilder().setPid(ap).build());
            bProc.exit(ExitRequest.newBuilder().setPid(bp).build());
        }
    }

    @Test
    @Timeout(30)
    void processQuotaGivesResourceExhaustedWithEagain() {
        var carol = ProcessServiceGrpc.newBlockingStub(as("admin-token"));
        for (int i = 0; i < 3; i++) {
            carol.create(CreateProcessRequest.newBuilder().setName("p" + i).build());
        }
        assertThatThrownBy(() -> carol.create(CreateProcessRequest.newBuilder().setName("too many").build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
                    assertThat(errno(e)).isEqualTo("EAGAIN");
                });
        // the other tenants are not harmed
        ProcessServiceGrpc.newBlockingStub(as("bob-token")).create(CreateProcessRequest.newBuilder().setName("b").build());
    }

    @Test
    @Timeout(30)
    void onlyAdminTenantsChangeSysctls() {
        SysctlValue v = SysctlValue.newBuilder().setName("vm/unprivileged_userfaultfd").setValue("1").build();
        assertThatThrownBy(() -> SystemServiceGrpc.newBlockingStub(as("bob-token")).setSysctl(v))
                .isInstanceOfSatisfying(StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.PERMISSION_DENIED));
        assertThat(SystemServiceGrpc.newBlockingStub(as("admin-token")).setSysctl(v).getValue()).isEqualTo("1");
        SystemServiceGrpc.newBlockingStub(as("admin-token")).setSysctl(v.toBuilder().setValue("0").build());
    }
}
