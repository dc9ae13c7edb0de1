package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.backend.emulated.EmulatedBackend;
import io.uffdemu.server.mm.KernelProfile;
import org.junit.jupiter.api.Test;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;
import org.springframework.context.annotation.Configuration;

/**
 * {@code uffdemu.emulated.kernel-profile} and {@code pte-marker-uffd-wp} reach the emulated kernel; bad values stop
 * the start.
 */
class KernelProfileConfigTest {
    @Configuration(proxyBeanMethods = false)
    @EnableConfigurationProperties(UffdemuProperties.class)
    static class Props {
    }

    private final ApplicationContextRunner runner = new ApplicationContextRunner()
            .withUserConfiguration(Props.class, BackendConfiguration.class)
            .withPropertyValues("uffdemu.backend=emulated", "uffdemu.emulated.memory=64MB", "uffdemu.emulated.swap=0");

    private static KernelProfile profileOf(MemoryBackend b) {
        return ((EmulatedBackend) b).kernel().profile();
    }

    @Test
    void defaultIs618WithMarkers() {
        runner.run(ctx -> {
            assertThat(ctx).hasNotFailed();
            MemoryBackend b = ctx.getBean(MemoryBackend.class);
            assertThat(profileOf(b)).isEqualTo(KernelProfile.DEFAULT);
            assertThat(b.status().kernelRelease()).isEqualTo("6.18.0-uffdemu");
            assertThat(b.status().features()).isEqualTo(0x1ffffL);
        });
    }

    @Test
    void propertySelectsTheProfile() {
        runner.withPropertyValues("uffdemu.emulated.kernel-profile=5.19",
                "uffdemu.emulated.pte-marker-uffd-wp=false").run(ctx -> {
                    assertThat(ctx).hasNotFailed();
                    MemoryBackend b = ctx.getBean(MemoryBackend.class);
                    assertThat(profileOf(b)).isEqualTo(new KernelProfile(5, 19, false));
                    assertThat(b.status().kernelRelease()).isEqualTo("5.19.0-uffdemu-nopte-marker-uffd-wp");
                    assertThat(b.status().features()).isEqualTo(0x0fffL); // no WP_HUGETLBFS_SHMEM
                    assertThat(b.status().ioctls()).isEqualTo(0x8000000000000003L | 0xdcL); // no POISON, no MOVE
                });
    }

    @Test
    void relaxedBindingOf510() {
        runner.withPropertyValues("uffdemu.emulated.kernelProfile=5.10").run(ctx -> {
            assertThat(ctx).hasNotFailed();
            assertThat(profileOf(ctx.getBean(MemoryBackend.class))).isEqualTo(new KernelProfile(5, 10, true));
        });
    }

    @Test
    void badReleaseFailsTheStartWithTheProperty() {
        runner.withPropertyValues("uffdemu.emulated.kernel-profile=4.19").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(ctx.getStartupFailure()).hasStackTraceContaining("uffdemu.emulated.kernel-profile: ")
                    .hasStackTraceContaining("5.10 .. 6.18");
        });
        runner.withPropertyValues("uffdemu.emulated.kernel-profile=latest").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(ctx.getStartupFailure()).hasStackTraceContaining("not 'latest'");
        });
    }

    @Test
    void badReleaseFailsTheStartWithTheLinuxBackendToo() {
        runner.withPropertyValues("uffdemu.backend=auto", "uffdemu.emulated.kernel-profile=7.0").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(ctx.getStartupFailure()).hasStackTraceContaining("uffdemu.emulated.kernel-profile: ");
        });
    }

    @Test
    void badSwitchFailsTheStart() {
        runner.withPropertyValues("uffdemu.emulated.pte-marker-uffd-wp=maybe").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(ctx.getStartupFailure()).hasStackTraceContaining("pte-marker-uffd-wp");
        });
    }
}
