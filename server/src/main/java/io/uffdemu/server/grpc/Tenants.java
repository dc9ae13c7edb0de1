package io.uffdemu.server.grpc;

/** The tenant of the current call; "default" until authentication assigns tenants (issue 8). */
final class Tenants {
    private Tenants() {
    }

    static String current() {
        return "default";
    }
}
