package io.uffdemu.server.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.MethodDescriptor;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleRequestBatch;
import io.uffdemu.api.v1.UserfaultfdServiceGrpc;
import java.io.ByteArrayInputStream;
import java.io.FilterInputStream;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * {@link AliasingRequests}: the page-carrying methods of UserfaultfdService parse their requests with their pages
 * as views of one array per message (no copy per page), to the same messages the stock marshaller gives; every
 * other method keeps its stock marshaller; bytes that are no request fail the parse with INVALID_ARGUMENT (what
 * the marshaller throws: gRPC closes such a call with UNKNOWN whatever it is).
 */
class AliasingRequestsTest {
    static final int PAGE = 4096;

    final ServerServiceDefinition stock = new UserfaultfdServiceGrpc.UserfaultfdServiceImplBase() { }.bindService();
    final ServerServiceDefinition def = AliasingRequests.of(stock, UserfaultfdGrpcBinding.PAGE_CARRYING);

    @SuppressWarnings("unchecked")
    MethodDescriptor.Marshaller<HandleRequest> handleMarshaller() {
        ServerMethodDefinition<?, ?> m = def.getMethod(UserfaultfdServiceGrpc.getHandleMethod().getFullMethodName());
        return (MethodDescriptor.Marshaller<HandleRequest>) m.getMethodDescriptor().getRequestMarshaller();
    }

    static byte[] page(int fill) {
        byte[] b = new byte[PAGE];
        Arrays.fill(b, (byte) fill);
        return b;
    }

    static HandleRequest batchOfTwo() {
        return HandleRequest.newBuilder().setRequestId(7).setBatch(HandleRequestBatch.newBuilder()
                .addRequests(HandleRequest.newBuilder().setRequestId(8).setCopy(CopyRequest.newBuilder().setPid(3)
                        .setFd(4).setDst(0x10000).setData(ByteString.copyFrom(page(1)))))
                .addRequests(HandleRequest.newBuilder().setRequestId(9).setCopy(CopyRequest.newBuilder().setPid(3)
                        .setFd(4).setDst(0x11000).setData(ByteString.copyFrom(page(2)))))).build();
    }

    @Test
    void aBatchParsesToTheSameMessageWithItsPagesViewsOfOneArray() throws Exception {
        HandleRequest sent = batchOfTwo();
        MethodDescriptor.Marshaller<HandleRequest> m = handleMarshaller();
        assertThat(m).isInstanceOf(AliasingRequests.Marshaller.class);
        HandleRequest got = m.parse(m.stream(sent)); // gRPC's stream: KnownLength
        assertThat(got).isEqualTo(sent);
        ByteString p1 = got.getBatch().getRequests(0).getCopy().getData();
        ByteString p2 = got.getBatch().getRequests(1).getCopy().getData();
        assertThat(p1.byteAt(0)).isEqualTo((byte) 1);
        assertThat(p2.byteAt(PAGE - 1)).isEqualTo((byte) 2);
        // the read-only buffer the server copies a page from (CopyOp) wraps the array behind the ByteString: a
        // copied page is an array of its own (capacity 4096, position 0), a view spans the whole message
        ByteBuffer b1 = p1.asReadOnlyByteBuffer();
        ByteBuffer b2 = p2.asReadOnlyByteBuffer();
        assertThat(b1.capacity()).as("page 1 is a view of the message's array, not a copy").isGreaterThan(2 * PAGE);
        assertThat(b2.capacity()).as("both pages view the same array").isEqualTo(b1.capacity());
        assertThat(b2.position()).as("page 2 lies after page 1 in it").isGreaterThan(b1.position() + PAGE - 1);
        assertThat(b1.remaining()).isEqualTo(PAGE);
    }

    @Test
    void aStreamOfUnknownLengthParsesToo() {
        HandleRequest sent = batchOfTwo();
        InputStream unknownLength = new FilterInputStream(new ByteArrayInputStream(sent.toByteArray())) { };
        assertThat(handleMarshaller().parse(unknownLength)).isEqualTo(sent);
    }

    @Test
    void bytesThatAreNoRequestFailWithInvalidArgument() {
        byte[] garbage = {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, 0x0f};
        assertThatThrownBy(() -> handleMarshaller().parse(new ByteArrayInputStream(garbage)))
                .isInstanceOf(StatusRuntimeException.class)
                .satisfies(e -> assertThat(Status.fromThrowable(e).getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT));
    }

    /** protobuf 4 refuses a top-level END_GROUP itself; the marshaller also checks the last tag, as gRPC's does. */
    @Test
    void aStrayEndGroupTagDoesNotCutTheMessageShort() {
        byte[] whole = batchOfTwo().toByteArray();
        byte[] early = new byte[whole.length + 1];
        early[0] = 0x0c; // END_GROUP, field 1: parsing stops there and would return an empty request
        System.arraycopy(whole, 0, early, 1, whole.length);
        assertThatThrownBy(() -> handleMarshaller().parse(new ByteArrayInputStream(early)))
                .isInstanceOf(StatusRuntimeException.class)
                .satisfies(e -> assertThat(Status.fromThrowable(e).getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT));
    }

    @Test
    void onlyThePageCarryingMethodsChangeAndTheServiceKeepsItsMethods() {
        assertThat(def.getServiceDescriptor().getName()).isEqualTo(stock.getServiceDescriptor().getName());
        assertThat(def.getServiceDescriptor().getSchemaDescriptor())
                .isSameAs(stock.getServiceDescriptor().getSchemaDescriptor());
        assertThat(def.getMethods()).hasSameSizeAs(stock.getMethods());
        for (ServerMethodDefinition<?, ?> m : stock.getMethods()) {
            String name = m.getMethodDescriptor().getFullMethodName();
            var ours = def.getMethod(name);
            assertThat(ours).as(name).isNotNull();
            boolean aliased = ours.getMethodDescriptor().getRequestMarshaller() instanceof AliasingRequests.Marshaller;
            assertThat(aliased).as(name).isEqualTo(Set.of(UserfaultfdServiceGrpc.getHandleMethod().getFullMethodName(),
                    UserfaultfdServiceGrpc.getCopyMethod().getFullMethodName()).contains(name));
            assertThat(ours.getServerCallHandler()).as(name).isSameAs(m.getServerCallHandler());
            assertThat(ours.getMethodDescriptor().getResponseMarshaller()).as(name)
                    .isSameAs(m.getMethodDescriptor().getResponseMarshaller());
        }
    }
}
