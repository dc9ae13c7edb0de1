package io.uffdemu.server.fuzz;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import io.grpc.CallOptions;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import io.uffdemu.api.v1.CreateProcessRequest;
import io.uffdemu.api.v1.Credentials;
import io.uffdemu.api.v1.MemoryServiceGrpc;
import io.uffdemu.api.v1.ProcessServiceGrpc;
import io.uffdemu.api.v1.SystemServiceGrpc;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.boot.grpc.test.autoconfigure.LocalGrpcServerPort;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * A hostile client at the gRPC layer: every unary method of the v1 API gets random requests (huge and negative
 * numbers, unknown enum values, random bytes, pids and fds that exist and that do not). The server must answer
 * each with a result or a clear status, never INTERNAL or UNKNOWN, and stay healthy.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "spring.grpc.server.port=0", "uffdemu.quotas.requests-per-second=0", "uffdemu.quotas.max-processes=100000",
        "uffdemu.emulated.memory=256MB", "uffdemu.limits.default-wait=1s"})
class GrpcFuzzIT {
    @LocalGrpcServerPort
    int port;
    static long base;

    @Test
    @Timeout(300)
    void randomRequestsNeverCauseInternalErrors() throws Exception {
        ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", port, InsecureChannelCredentials.create())
                .maxInboundMessageSize(64 << 20).build();
        SplittableRandom rnd = new SplittableRandom(42);
        int pid = ProcessServiceGrpc.newBlockingStub(ch).create(CreateProcessRequest.newBuilder()
                .setCredentials(Credentials.newBuilder().setCapSysPtrace(true)).build()).getPid();
        // something to hit: a uffd (fd 0), a memfd (fd 1), mappings near the top of the address space
        UserfaultfdServiceGrpc.newBlockingStub(ch).open(io.uffdemu.api.v1.OpenRequest.newBuilder().setPid(pid).build());
        MemoryServiceGrpc.newBlockingStub(ch).memfdCreate(io.uffdemu.api.v1.MemfdCreateRequest.newBuilder().setPid(pid)
                .setName("m").build());
        for (int flags : new int[] {0x22, 0x21, 0x22}) {
            base = MemoryServiceGrpc.newBlockingStub(ch).mmap(io.uffdemu.api.v1.MmapRequest.newBuilder().setPid(pid)
                    .setLen(64 * 4096).setProt(3).setFlags(flags).setFd(-1).build()).getAddr();
        }
        Map<Status.Code, Integer> codes = new EnumMap<>(Status.Code.class);
        int calls = 0;
        for (ServiceDescriptor sd : List.of(ProcessServiceGrpc.getServiceDescriptor(),
                MemoryServiceGrpc.getServiceDescriptor(), UserfaultfdServiceGrpc.getServiceDescriptor(),
                SystemServiceGrpc.getServiceDescriptor())) {
            for (MethodDescriptor<?, ?> md : sd.getMethods()) {
                if (md.getType() != MethodDescriptor.MethodType.UNARY) {
                    continue;
                }
                Message proto = (Message) ((MethodDescriptor.PrototypeMarshaller<?>) md.getRequestMarshaller())
                        .getMessagePrototype();
                @SuppressWarnings("unchecked")
                MethodDescriptor<Message, Message> m = (MethodDescriptor<Message, Message>) md;
                for (int i = 0; i < 150; i++) {
                    // Exit would end the process every other call uses: it gets a process of its own
                    int target = md.getBareMethodName().equals("Exit") ? ProcessServiceGrpc.newBlockingStub(ch)
                            .create(CreateProcessRequest.getDefaultInstance()).getPid() : pid;
                    Message req = random(proto.newBuilderForType(), rnd, target, 0);
                    calls++;
                    try {
                        ClientCalls.blockingUnaryCall(ch, m, CallOptions.DEFAULT.withDeadlineAfter(3, TimeUnit.SECONDS),
                                req);
                        codes.merge(Status.Code.OK, 1, Integer::sum);
                    } catch (StatusRuntimeException e) {
                        Status.Code c = e.getStatus().getCode();
                        codes.merge(c, 1, Integer::sum);
                        assertThat(c).as(md.getFullMethodName() + " with " + req + " -> " + e.getStatus())
                                .isNotIn(Status.Code.INTERNAL, Status.Code.UNKNOWN, Status.Code.UNAVAILABLE);
                    }
                }
            }
        }
        System.out.println("GrpcFuzzIT: " + calls + " calls, status codes " + codes);
        assertThat(codes.getOrDefault(Status.Code.OK, 0)).as("some random calls succeed").isPositive();
        // still healthy: a normal call works
        assertThat(ProcessServiceGrpc.newBlockingStub(ch).create(CreateProcessRequest.getDefaultInstance()).getPid())
                .isPositive();
        ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    static Message random(Message.Builder b, SplittableRandom rnd, int pid, int depth) {
        for (FieldDescriptor f : b.getDescriptorForType().getFields()) {
            boolean key = f.getName().equals("pid") || f.getName().endsWith("fd");
            if (f.isRepeated() || rnd.nextInt(key ? 12 : 3) == 0) {
                continue;
            }
            switch (f.getJavaType()) {
                case INT -> b.setField(f, f.getName().equals("pid") && rnd.nextInt(12) != 0 ? pid
                        : f.getName().endsWith("fd") && rnd.nextInt(8) != 0 ? rnd.nextInt(2)
                        : switch (rnd.nextInt(5)) {
                            case 0 -> -1;
                            case 1 -> Integer.MAX_VALUE;
                            case 2 -> Integer.MIN_VALUE;
                            default -> rnd.nextInt(64);
                        });
                case LONG -> b.setField(f, rnd.nextInt(3) == 0 && (f.getName().equals("start") || f.getName().equals("addr")
                        || f.getName().equals("dst") || f.getName().equals("src")) ? base + rnd.nextInt(128) * 4096L
                        : rnd.nextInt(3) == 0 && f.getName().contains("len") ? 4096L * (1 + rnd.nextInt(8))
                        : switch (rnd.nextInt(7)) {
                    case 0 -> -1L;
                    case 1 -> Long.MAX_VALUE;
                    case 2 -> Long.MIN_VALUE;
                    case 3 -> base + rnd.nextInt(200) * 4096L;
                    case 4 -> (long) rnd.nextInt(1 << 20) * 4096L;
                    case 5 -> 1L << (12 + rnd.nextInt(40));
                    default -> rnd.nextLong();
                });
                case BOOLEAN -> b.setField(f, rnd.nextBoolean());
                case STRING -> b.setField(f, rnd.nextInt(4) == 0 ? "vm/nr_hugepages" : "x".repeat(rnd.nextInt(300)));
                case BYTE_STRING -> {
                    byte[] data = new byte[rnd.nextInt(3) == 0 ? 4096 * (1 + rnd.nextInt(4)) : rnd.nextInt(100)];
                    rnd.nextBytes(data);
                    b.setField(f, ByteString.copyFrom(data));
                }
                case ENUM -> b.setField(f, f.getEnumType().findValueByNumberCreatingIfUnknown(rnd.nextInt(10) - 2));
                case MESSAGE -> {
                    if (depth < 2) {
                        b.setField(f, random(b.newBuilderForField(f), rnd, pid, depth + 1));
                    }
                }
                default -> {
                }
            }
        }
        return b.build();
    }
}
