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
        @DefaultValue Limits limits) {

    /**
     * @param memory          emulated physical memory (default 4GB)
     * @param swap            emulated swap device (default 1GB; 0 disables swap)
     * @param hugepages2m     initial vm.nr_hugepages (default 0)
     * @param hugepages1g     initial 1 GiB huge pages (default 0)
     * @param checkInvariants run the debug invariant checker after every call (default false; slow)
     */
    public record Emulated(@DefaultValue("4GB") DataSize memory, @DefaultValue("1GB") DataSize swap,
            @DefaultValue("0") long hugepages2m, @DefaultValue("0") long hugepages1g,
            @DefaultValue("false") boolean checkInvariants) {
    }

    /**
     * @param maxAccessBytes   largest single Access / Pread / Copy payload (default 16MB)
     * @param maxPagemapPages  largest pagemap read (default 1048576 entries)
     * @param maxReadMessages  most messages one Read returns (default 4096)
     * @param defaultWait      how long an Access without a gRPC deadline may block on a userfault (default 1h)
     */
    public record Limits(@DefaultValue("16MB") DataSize maxAccessBytes, @DefaultValue("1048576") int maxPagemapPages,
            @DefaultValue("4096") int maxReadMessages, @DefaultValue("1h") Duration defaultWait) {
    }
}
