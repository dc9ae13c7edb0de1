/**
 * Java client SDK of uffdemu, a gRPC service that emulates Linux userfaultfd.
 *
 * <p>Shape (after jetcd): public interfaces and immutable option records with {@code DEFAULT} constants here;
 * implementations package-private in {@code io.uffdemu.client.impl}. Generated proto and gRPC types never
 * appear in this package's signatures, except for {@link io.uffdemu.client.UffdemuClient#create}, which takes a
 * channel.
 *
 * <ul>
 *   <li>{@link io.uffdemu.client.UffdemuClient}: connection, processes, backend, sysctls.</li>
 *   <li>{@link io.uffdemu.client.Process}, {@link io.uffdemu.client.Memfd}, {@link io.uffdemu.client.Userfaultfd}:
 *       syscall-named facades, sync plus {@code async()} views.</li>
 *   <li>{@link io.uffdemu.client.HandlerLoop}: serves page faults of a uffd through a
 *       {@link io.uffdemu.client.FaultHandler}, with per-page ordering, back-pressure, EAGAIN deferral,
 *       EEXIST-as-resolved, per-fault deadlines and {@link io.uffdemu.client.HandlerMetrics}.</li>
 *   <li>Errors: one {@link io.uffdemu.client.ErrnoException} subclass per common errno, decoded from the
 *       {@code uffdemu.v1.ErrnoInfo} status detail (never from message text);
 *       {@link io.uffdemu.client.ServerUnavailableException} for transport failures.</li>
 *   <li>{@link io.uffdemu.client.Linux}: kernel constants with their uapi values.</li>
 * </ul>
 *
 * <p>Note: {@code Process} has the same simple name as {@code java.lang.Process}; with a wildcard import of
 * this package, import {@code io.uffdemu.client.Process} explicitly.
 *
 * <pre>{@code
 * import io.uffdemu.client.*;
 * import io.uffdemu.client.Process;
 *
 * try (UffdemuClient client = UffdemuClient.connect("localhost", 9090)) {
 *   Process p = client.createProcess("demo");
 *   long addr = p.mmap(MmapOptions.anonymous(16 * 4096));
 *   Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT.withFeatures(Linux.UFFD_FEATURE_EVENT_REMOVE));
 *   uffd.register(new AddrRange(addr, 16 * 4096), Linux.UFFDIO_REGISTER_MODE_MISSING);
 *   try (HandlerLoop loop = uffd.handle(FaultContext::zeropage, HandlerOptions.DEFAULT)) {
 *     AccessResult r = p.read(addr, 8);
 *   }
 * }
 * }</pre>
 */
package io.uffdemu.client;
