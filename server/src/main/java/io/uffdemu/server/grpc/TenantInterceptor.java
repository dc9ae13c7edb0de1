package io.uffdemu.server.grpc;

import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.StatusRuntimeException;
import io.uffdemu.server.mm.LinuxException;
import org.springframework.core.annotation.Order;
import org.springframework.grpc.server.GlobalServerInterceptor;
import org.springframework.stereotype.Component;

/**
 * Enforces tenancy on every request in one place: each {@code pid} / {@code target_pid} field of a request (and
 * of the request's set sub-messages, e.g. a Handle stream's resolutions) must name a process of the calling
 * tenant, or the call ends with NOT_FOUND (ESRCH). Runs after {@link AuthInterceptor}, so the tenant is known.
 */
@Component
@GlobalServerInterceptor
@Order(1)
public class TenantInterceptor implements ServerInterceptor {
    private final TenantGuard guard;

    public TenantInterceptor(TenantGuard guard) {
        this.guard = guard;
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
            ServerCallHandler<Q, R> next) {
        String service = call.getMethodDescriptor().getServiceName();
        ServerCall.Listener<Q> delegate = next.startCall(call, headers);
        if (service == null || !service.startsWith("uffdemu.")) {
            return delegate;
        }
        String method = call.getMethodDescriptor().getBareMethodName();
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(delegate) {
            private boolean closed;

            @Override
            public void onMessage(Q message) {
                if (closed) {
                    return;
                }
                try {
                    if (message instanceof Message m) {
                        checkPids(m, method, 0);
                    }
                } catch (LinuxException | TenantGuard.QuotaException e) {
                    closed = true;
                    StatusRuntimeException s = Errors.map(e);
                    call.close(s.getStatus(), s.getTrailers() == null ? new Metadata() : s.getTrailers());
                    return;
                }
                super.onMessage(message);
            }

            @Override
            public void onHalfClose() {
                if (!closed) {
                    super.onHalfClose();
                }
            }
        };
    }

    private void checkPids(Message m, String method, int depth) {
        for (var e : m.getAllFields().entrySet()) {
            FieldDescriptor f = e.getKey();
            if (f.getType() == FieldDescriptor.Type.INT32 && !f.isRepeated()
                    && (f.getName().equals("pid") || f.getName().equals("target_pid"))) {
                guard.check((Integer) e.getValue(), method);
            } else if (f.getType() == FieldDescriptor.Type.MESSAGE && !f.isRepeated() && depth == 0) {
                checkPids((Message) e.getValue(), method, depth + 1);
            }
        }
        // proto3 omits pid == 0 from getAllFields: a request that needs a pid but names none is checked too
        FieldDescriptor pid = m.getDescriptorForType().findFieldByName("pid");
        if (pid != null && pid.getType() == FieldDescriptor.Type.INT32 && !m.hasField(pid)) {
            guard.check(0, method);
        }
    }
}
