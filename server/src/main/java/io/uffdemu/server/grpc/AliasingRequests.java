package io.uffdemu.server.grpc;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import java.io.IOException;
import java.io.InputStream;
import java.util.Set;

/**
 * Request parsing for the methods that carry page contents (the Handle stream's COPY batches, unary COPY): each
 * message is read into a heap array of its exact size and parsed with aliasing on, so that a {@code bytes} field
 * (a page) is a view of that array rather than a copy of it.
 *
 * <p>gRPC's default protobuf marshaller ({@code ProtoLiteUtils}) reads a message into a reused buffer and then
 * copies every {@code bytes} field out of it: with 64 faulting threads on the remote round trip that copy was
 * 53 % of the server's allocation (4 KiB per fault) and the reused buffer, regrown for batch messages, another
 * 11 % (JFR allocation samples). Here the array is allocated once per message and the pages of a batch share it;
 * it is never written after parsing, so the views stay immutable as {@code ByteString} requires. Responses are
 * serialized by the original marshaller.
 *
 * <p>Bytes that are no request fail the parse with INVALID_ARGUMENT; gRPC (1.84) closes a call whose message
 * cannot be parsed with {@code UNKNOWN "Application error processing RPC"} whatever the marshaller throws, as it
 * does with its own marshaller.
 */
final class AliasingRequests {
    private AliasingRequests() {
    }

    /**
     * {@code def} with the methods named in {@code fullMethodNames} parsing their requests with aliasing. Their
     * request marshaller must be a protobuf {@link MethodDescriptor.PrototypeMarshaller} (what protoc's gRPC
     * plugin generates).
     */
    static ServerServiceDefinition of(ServerServiceDefinition def, Set<String> fullMethodNames) {
        ServiceDescriptor sd = def.getServiceDescriptor();
        ServiceDescriptor.Builder sb = ServiceDescriptor.newBuilder(sd.getName()).setSchemaDescriptor(
                sd.getSchemaDescriptor());
        java.util.List<ServerMethodDefinition<?, ?>> methods = new java.util.ArrayList<>();
        for (ServerMethodDefinition<?, ?> m : def.getMethods()) {
            ServerMethodDefinition<?, ?> out = fullMethodNames.contains(m.getMethodDescriptor().getFullMethodName())
                    ? aliased(m) : m;
            methods.add(out);
            sb.addMethod(out.getMethodDescriptor());
        }
        ServerServiceDefinition.Builder b = ServerServiceDefinition.builder(sb.build());
        methods.forEach(b::addMethod);
        return b.build();
    }

    private static <ReqT, RespT> ServerMethodDefinition<ReqT, RespT> aliased(ServerMethodDefinition<ReqT, RespT> m) {
        MethodDescriptor<ReqT, RespT> md = m.getMethodDescriptor();
        if (!(md.getRequestMarshaller() instanceof MethodDescriptor.PrototypeMarshaller<ReqT> pm)
                || !(pm.getMessagePrototype() instanceof MessageLite proto)) {
            throw new IllegalArgumentException(md.getFullMethodName() + ": not a protobuf request marshaller");
        }
        @SuppressWarnings("unchecked")
        Parser<ReqT> parser = (Parser<ReqT>) proto.getParserForType();
        return ServerMethodDefinition.create(md.toBuilder(new Marshaller<>(pm, parser), md.getResponseMarshaller())
                .build(), m.getServerCallHandler());
    }

    /** Parses with aliasing into an array of the message's size; serializes as {@code delegate} does. */
    static final class Marshaller<T> implements MethodDescriptor.PrototypeMarshaller<T> {
        private final MethodDescriptor.PrototypeMarshaller<T> delegate;
        private final Parser<T> parser;

        Marshaller(MethodDescriptor.PrototypeMarshaller<T> delegate, Parser<T> parser) {
            this.delegate = delegate;
            this.parser = parser;
        }

        @Override
        public InputStream stream(T value) {
            return delegate.stream(value);
        }

        @Override
        public T getMessagePrototype() {
            return delegate.getMessagePrototype();
        }

        @Override
        public Class<T> getMessageClass() {
            return delegate.getMessageClass();
        }

        @Override
        public T parse(InputStream in) {
            try {
                byte[] buf;
                if (in instanceof KnownLength) {
                    // gRPC's message streams know their length (bounded by the inbound message size limit)
                    int n = in.available();
                    buf = new byte[n];
                    // readNBytes(int) would read in 16 KiB chunks and copy them into the result: a second copy
                    if (in.readNBytes(buf, 0, n) != n || in.read() != -1) {
                        throw new IOException("message length " + n + " does not match its stream");
                    }
                } else {
                    buf = in.readAllBytes();
                }
                // a ByteString's coded input is marked immutable: only then does aliasing wrap instead of copy
                CodedInputStream cis = UnsafeByteOperations.unsafeWrap(buf).newCodedInput();
                cis.enableAliasing(true);
                T msg = parser.parseFrom(cis);
                cis.checkLastTagWas(0); // as gRPC's marshaller: a stray END_GROUP must not cut the message short
                return msg;
            } catch (InvalidProtocolBufferException e) {
                throw Status.INVALID_ARGUMENT.withDescription("invalid protobuf request: " + e.getMessage())
                        .withCause(e).asRuntimeException();
            } catch (IOException e) {
                throw Status.INTERNAL.withDescription("cannot read the request: " + e.getMessage()).withCause(e)
                        .asRuntimeException();
            }
        }
    }
}
