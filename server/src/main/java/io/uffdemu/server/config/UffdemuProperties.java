package io.uffdemu.server.config;

import java.time.Duration;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.util.unit.DataSize;

/**
 * The {@code uffdemu.*} configuration tree. Every default is stated here and in docs/configuration.md.
 *
 * @param backend   which backend serves the API: {@code emulated} (default, no privileges), {@code linux} (the
 *                  real kernel through FFM; needs root or CAP_SYS_PTRACE) or {@code auto} (linux when available)
 * @param emulated  size of the emulated machine
 * @param limits    bounds on single requests
 */
@ConfigurationProperties("uffdemu")
public record UffdemuProperties(@DefaultValue("emulated") String backend, @DefaultValue Emulated emulated,
        @DefaultValue Limits limits, @DefaultValue Auth auth, @DefaultValue Quotas quotas,
        @DefaultValue Handler handler) {

    /**
     * @param tokens              bearer tokens as {@code tenant:sha256-hex-of-token} (never the token itself)
     * @param tokensFile          a file with one {@code tenant:sha256-hex} per line ({@code #} comments); read at start
     * @param allowUnauthenticated serve without tokens on a non-loopback address (default false: refuse to start)
     * @param adminTenants        tenants that may change machine-wide sysctls when authentication is on
     *                            (default {@code admin})
     * @param mtls                client-certificate authentication (alongside bearer tokens)
     */
    public record Auth(@DefaultValue({}) java.util.List<String> tokens, java.nio.file.Path tokensFile,
            @DefaultValue("false") boolean allowUnauthenticated, @DefaultValue("admin") java.util.List<String> adminTenants,
            @DefaultValue Mtls mtls) {

        @org.springframework.boot.context.properties.bind.ConstructorBinding
        public Auth {
        }

        public Auth(java.util.List<String> tokens, java.nio.file.Path tokensFile, boolean allowUnauthenticated,
                java.util.List<String> adminTenants) {
            this(tokens, tokensFile, allowUnauthenticated, adminTenants,
                    new Mtls(false, null, "cn", java.util.List.of()));
        }
    }

    /**
     * Tenants from client certificates (mTLS). The server's TLS is Spring's ({@code spring.grpc.server.ssl.bundle},
     * {@code spring.grpc.server.ssl.client-auth=optional} so token clients still connect); this part verifies the
     * client's chain against {@code clientCa} on every call (whatever the TLS layer already did) and maps it to a
     * tenant. A certificate that does not verify, or names no mapped tenant, is UNAUTHENTICATED.
     *
     * @param enabled    take tenants from client certificates (default false)
     * @param clientCa   PEM file of the CA certificate(s) that issue client certificates (required when enabled)
     * @param tenantFrom which identity of the leaf certificate names the tenant: {@code cn} (subject CN, default),
     *                   {@code san-dns}, {@code san-uri} or {@code san-email} (the first such subject alternative name)
     * @param tenants    {@code identity=tenant} entries; when empty the identity itself is the tenant name, when not
     *                   empty an identity without an entry is refused
     */
    public record Mtls(@DefaultValue("false") boolean enabled, java.nio.file.Path clientCa,
            @DefaultValue("cn") String tenantFrom, @DefaultValue({}) java.util.List<String> tenants) {
    }

    /**
     * Per-tenant quotas (and, under {@code global}, machine-wide ones); exceeding one gives RESOURCE_EXHAUSTED with
     * the errno the kernel would give and {@code ErrnoInfo.reason = "QUOTA_EXCEEDED"}. Memory limits are a memory
     * cgroup per tenant (mm/memcontrol.c): a charge over {@code memory} first reclaims the tenant's own anonymous
     * pages to swap (up to {@code swap}), then fails: ENOMEM for syscalls and UFFDIO_*, SIGBUS for a page fault.
     * Defaults keep a 2-core, 24 GiB host healthy with the default 4 GB machine.
     *
     * @param maxProcesses        live processes per tenant (default 256; EAGAIN, like RLIMIT_NPROC)
     * @param requestsPerSecond   sustained calls per second per tenant (default 20000, burst of the same; EAGAIN)
     * @param maxHandleStreams    concurrent Handle streams per tenant (default 1024; EMFILE)
     * @param memory              memory.max of the tenant's memcg: resident emulated memory (default 1GB; ENOMEM/SIGBUS)
     * @param swap                memory.swap.max: swap the tenant's pages may use (default 512MB)
     * @param hugetlb             hugetlb max of the memcg: huge pages faulted in, all sizes (default 1GB; ENOMEM/SIGBUS)
     * @param hugetlbRsvd         hugetlb rsvd.max of the memcg: huge pages reserved at mmap time, plus those faulted
     *                            in without a reservation, all sizes (default: the {@code hugetlb} value; an mmap over
     *                            it is ENOMEM, a MAP_NORESERVE fault over it SIGBUS)
     * @param maxMappings         VMAs over all the tenant's processes, like vm.max_map_count (default 65530; ENOMEM)
     * @param maxUffds            open userfaultfds (default 256; EMFILE)
     * @param maxRegisteredRanges VMAs registered with a userfaultfd (default 16384; ENOMEM)
     * @param maxPendingFaults    userfaults queued and not yet read by a handler (default 4096; EAGAIN)
     * @param maxBlockedThreads   threads parked in a userfault, read or not (default 4096; EAGAIN)
     * @param maxMemfdGrants      live cross-tenant memfd grants a tenant has made (default 1024; EMFILE)
     * @param global              machine-wide caps over all tenants
     */
    public record Quotas(@DefaultValue("256") int maxProcesses, @DefaultValue("20000") int requestsPerSecond,
            @DefaultValue("1024") int maxHandleStreams, @DefaultValue("1GB") DataSize memory,
            @DefaultValue("512MB") DataSize swap, @DefaultValue("1GB") DataSize hugetlb, DataSize hugetlbRsvd,
            @DefaultValue("65530") int maxMappings, @DefaultValue("256") int maxUffds,
            @DefaultValue("16384") int maxRegisteredRanges, @DefaultValue("4096") int maxPendingFaults,
            @DefaultValue("4096") int maxBlockedThreads, @DefaultValue("1024") int maxMemfdGrants,
            @DefaultValue Global global) {

        @org.springframework.boot.context.properties.bind.ConstructorBinding
        public Quotas {
            if (hugetlbRsvd == null) {
                hugetlbRsvd = hugetlb;
            }
        }

        /** The three settings that existed first; everything else at its default. */
        public Quotas(int maxProcesses, int requestsPerSecond, int maxHandleStreams) {
            this(maxProcesses, requestsPerSecond, maxHandleStreams, DataSize.ofGigabytes(1), DataSize.ofMegabytes(512),
                    DataSize.ofGigabytes(1), null, 65530, 256, 16384, 4096, 4096, 1024, new Global(4096, 1_000_000,
                            8192, 1_000_000, 65536, 65536));
        }
    }

    /**
     * Machine-wide caps (the root memory cgroup's limits; memory itself is capped by {@code uffdemu.emulated.memory}).
     *
     * @param maxProcesses        live processes over all tenants (default 4096; EAGAIN)
     * @param maxMappings         VMAs over all processes (default 1000000; ENOMEM)
     * @param maxUffds            open userfaultfds (default 8192; EMFILE)
     * @param maxRegisteredRanges registered VMAs (default 1000000; ENOMEM)
     * @param maxPendingFaults    queued userfaults (default 65536; EAGAIN)
     * @param maxBlockedThreads   threads parked in userfaults (default 65536; EAGAIN)
     */
    public record Global(@DefaultValue("4096") int maxProcesses, @DefaultValue("1000000") int maxMappings,
            @DefaultValue("8192") int maxUffds, @DefaultValue("1000000") int maxRegisteredRanges,
            @DefaultValue("65536") int maxPendingFaults, @DefaultValue("65536") int maxBlockedThreads) {
    }

    /**
     * @param gracePeriod how long a uffd whose Handle stream dropped (cancelled or failed, not half-closed) stays
     *                    open for a reconnect before it is closed with the kernel's semantics (default 30s; 0 = never)
     */
    public record Handler(@DefaultValue("30s") Duration gracePeriod) {
    }

    /**
     * @param memory          emulated physical memory (default 4GB)
     * @param swap            emulated swap device (default 1GB; 0 disables swap)
     * @param hugepages2m     initial vm.nr_hugepages (default 0)
     * @param hugepages1g     initial 1 GiB huge pages (default 0)
     * @param checkInvariants run the debug invariant checker after every call (default false; slow)
     * @param kernelProfile   the Linux release the emulator imitates: UFFDIO_API answers, REGISTER rules, which
     *                        ioctls, madvise advices and /dev/userfaultfd exist (default {@code 6.18}; also
     *                        {@code 6.1}, {@code 5.19}, {@code 5.10} or any release in between)
     * @param pteMarkerUffdWp CONFIG_PTE_MARKER_UFFD_WP of the imitated kernel (default true); off, UFFDIO_API hides
     *                        WP_HUGETLBFS_SHMEM / WP_UNPOPULATED / WP_ASYNC and WP registration on shmem and
     *                        hugetlbfs fails with EINVAL
     */
    public record Emulated(@DefaultValue("4GB") DataSize memory, @DefaultValue("1GB") DataSize swap,
            @DefaultValue("0") long hugepages2m, @DefaultValue("0") long hugepages1g,
            @DefaultValue("false") boolean checkInvariants, @DefaultValue("6.18") String kernelProfile,
            @DefaultValue("true") boolean pteMarkerUffdWp) {
    }

    /**
     * @param maxAccessBytes   largest single Access / Pread / Copy payload (default 16MB)
     * @param maxPagemapPages  largest pagemap read (default 1048576 entries)
     * @param maxReadMessages  most messages one Read returns (default 4096)
     * @param defaultWait      how long an Access without a gRPC deadline may block on a userfault, and how long a
     *                         Storm without one may run (default 1h)
     * @param maxCopyRegionBytes largest copy region a Handle stream may ask for ({@code
     *                         HandleAttach.copy_region_bytes}; default 256MB; 0 = never give one)
     * @param copyRegionIdle   how long a copy region its client had mapped is kept after its stream ends, for that
     *                         client to ask back on its next stream ({@code HandleAttach.reuse_copy_region}; at most
     *                         4 per tenant; default 30s; 0 = never kept)
     */
    public record Limits(@DefaultValue("16MB") DataSize maxAccessBytes, @DefaultValue("1048576") int maxPagemapPages,
            @DefaultValue("4096") int maxReadMessages, @DefaultValue("1h") Duration defaultWait,
            @DefaultValue("256MB") DataSize maxCopyRegionBytes, @DefaultValue("30s") Duration copyRegionIdle) {
    }
}
