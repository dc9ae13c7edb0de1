package io.uffdemu.server.backend;

/** What a backend can do, or why it cannot run (netty's {@code Epoll.unavailabilityCause()} pattern). */
public record BackendStatus(String name, boolean available, String unavailableReason, long features, long ioctls,
        String kernelRelease) {
}
