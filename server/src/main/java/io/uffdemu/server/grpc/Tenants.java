package io.uffdemu.server.grpc;

import io.grpc.Context;

/** The tenant of the current call, put into the gRPC {@link Context} by {@link AuthInterceptor}. */
public final class Tenants {
    /** Tenant of calls when authentication is off. */
    public static final String DEFAULT = "default";
    static final Context.Key<String> KEY = Context.key("uffdemu-tenant");

    private Tenants() {
    }

    public static String current() {
        String t = KEY.get();
        return t == null ? DEFAULT : t;
    }
}
