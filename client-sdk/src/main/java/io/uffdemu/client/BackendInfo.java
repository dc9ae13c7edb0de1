package io.uffdemu.client;

/**
 * Which backend serves the server ("emulated" or "linux"), whether it is available, and the UFFDIO_API
 * features and ioctls it supports.
 *
 * <pre>{@code
 * BackendInfo b = client.backend();
 * boolean canMove = (b.features() & Linux.UFFD_FEATURE_MOVE) != 0;
 * }</pre>
 */
public record BackendInfo(String name, boolean available, String unavailableReason, long features, long ioctls,
    String kernelRelease) {}
