package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.uffdemu.server.config.VirtualThreadSchedulerConfiguration.VirtualThreadParallelism;
import java.lang.management.ManagementFactory;
import jdk.management.VirtualThreadSchedulerMXBean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;

class VirtualThreadSchedulerConfigurationTest {
    private final VirtualThreadSchedulerMXBean scheduler =
            ManagementFactory.getPlatformMXBean(VirtualThreadSchedulerMXBean.class);
    private final int before = scheduler.getParallelism();
    private final ApplicationContextRunner runner = new ApplicationContextRunner()
            .withUserConfiguration(VirtualThreadSchedulerConfiguration.class);

    @AfterEach
    void restore() {
        scheduler.setParallelism(before);
    }

    static int chosen(String setting, String backend, int processors, String jdk) {
        return VirtualThreadSchedulerConfiguration.chosen(setting, backend, processors, jdk);
    }

    @Test
    void autoGivesOneCarrierToTheEmulatedBackendOnTwoProcessorsAndLeavesLargerHostsAlone() {
        assertThat(chosen("auto", "emulated", 1, null)).isEqualTo(1);
        assertThat(chosen("auto", "emulated", 2, null)).isEqualTo(1);
        assertThat(chosen(" AUTO ", " Emulated ", 2, null)).isEqualTo(1);
        assertThat(chosen(null, null, 2, null)).as("both unset: auto, emulated").isEqualTo(1);
        assertThat(chosen("auto", "emulated", 3, null)).as("the JDK's choice").isZero();
        assertThat(chosen("auto", "emulated", 64, null)).isZero();
        assertThat(chosen("auto", "emulated", 2, "2")).as("-D given: kept").isZero();
    }

    @Test
    void autoLeavesTheLinuxBackendAlone() {
        // a call may block in the real kernel on its carrier (an FFM downcall), waiting for a handler that needs one
        assertThat(chosen("auto", "linux", 2, null)).isZero();
        assertThat(chosen("auto", "auto", 2, null)).isZero();
        assertThat(chosen("auto", "linux", 1, null)).isZero();
    }

    @Test
    void aNumberIsSetOutrightEvenOverTheJdkPropertyAndWhateverTheBackend() {
        assertThat(chosen("4", "emulated", 2, null)).isEqualTo(4);
        assertThat(chosen("1", "emulated", 64, "8")).isEqualTo(1);
        assertThat(chosen("256", "emulated", 2, null)).isEqualTo(256);
        assertThat(chosen("2", "linux", 2, null)).isEqualTo(2);
    }

    @Test
    void anythingElseNamesTheProperty() {
        for (String bad : new String[] {"0", "-1", "257", "two", "", "1.5", "2147483648"}) {
            assertThatThrownBy(() -> chosen(bad, "emulated", 2, null)).as(bad)
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("uffdemu.virtual-threads.parallelism must be auto or a number from 1 to 256");
        }
    }

    @Test
    void theConfiguredNumberReachesTheSchedulerAndIsPutBackAtClose() {
        scheduler.setParallelism(2);
        runner.withPropertyValues("uffdemu.virtual-threads.parallelism=3").run(ctx -> {
            assertThat(ctx).hasNotFailed();
            assertThat(scheduler.getParallelism()).isEqualTo(3);
            assertThat(ctx.getBean(VirtualThreadParallelism.class).parallelism()).isEqualTo(3);
            // virtual threads still run (and on the changed scheduler)
            Thread t = Thread.ofVirtual().start(() -> { });
            t.join();
            assertThat(t.isAlive()).isFalse();
        });
        assertThat(scheduler.getParallelism()).as("after the context closed").isEqualTo(2);
    }

    @Test
    void autoOnThisHostFollowsItsProcessorCount() {
        scheduler.setParallelism(2);
        boolean small = Runtime.getRuntime().availableProcessors() <= 2
                && System.getProperty("jdk.virtualThreadScheduler.parallelism") == null;
        runner.run(ctx -> {
            assertThat(ctx).hasNotFailed();
            assertThat(scheduler.getParallelism()).isEqualTo(small ? 1 : 2);
            assertThat(ctx.getBean(VirtualThreadParallelism.class).reason()).startsWith("auto: ");
        });
        runner.withPropertyValues("uffdemu.backend=linux").run(ctx -> {
            assertThat(ctx).hasNotFailed();
            assertThat(scheduler.getParallelism()).as("linux backend: left alone").isEqualTo(2);
            assertThat(ctx.getBean(VirtualThreadParallelism.class).reason())
                    .isEqualTo("auto: left alone with the linux backend");
        });
    }

    @Test
    void aBadValueStopsTheStartNamingTheProperty() {
        runner.withPropertyValues("uffdemu.virtual-threads.parallelism=many").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(ctx.getStartupFailure()).rootCause()
                    .hasMessageContaining("uffdemu.virtual-threads.parallelism must be auto or a number");
        });
        assertThat(scheduler.getParallelism()).isEqualTo(before);
    }
}
