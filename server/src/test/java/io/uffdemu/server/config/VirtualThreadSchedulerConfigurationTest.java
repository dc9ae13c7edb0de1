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

    @Test
    void autoGivesOneCarrierOnTwoProcessorsAndLeavesLargerHostsAlone() {
        assertThat(VirtualThreadSchedulerConfiguration.chosen("auto", 1, null)).isEqualTo(1);
        assertThat(VirtualThreadSchedulerConfiguration.chosen("auto", 2, null)).isEqualTo(1);
        assertThat(VirtualThreadSchedulerConfiguration.chosen(" AUTO ", 2, null)).isEqualTo(1);
        assertThat(VirtualThreadSchedulerConfiguration.chosen(null, 2, null)).isEqualTo(1);
        assertThat(VirtualThreadSchedulerConfiguration.chosen("auto", 3, null)).as("the JDK's choice").isZero();
        assertThat(VirtualThreadSchedulerConfiguration.chosen("auto", 64, null)).isZero();
        assertThat(VirtualThreadSchedulerConfiguration.chosen("auto", 2, "2")).as("-D given: kept").isZero();
    }

    @Test
    void aNumberIsSetOutrightEvenOverTheJdkProperty() {
        assertThat(VirtualThreadSchedulerConfiguration.chosen("4", 2, null)).isEqualTo(4);
        assertThat(VirtualThreadSchedulerConfiguration.chosen("1", 64, "8")).isEqualTo(1);
        assertThat(VirtualThreadSchedulerConfiguration.chosen("256", 2, null)).isEqualTo(256);
    }

    @Test
    void anythingElseNamesTheProperty() {
        for (String bad : new String[] {"0", "-1", "257", "two", "", "1.5", "2147483648"}) {
            assertThatThrownBy(() -> VirtualThreadSchedulerConfiguration.chosen(bad, 2, null)).as(bad)
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("uffdemu.virtual-threads.parallelism must be auto or a number from 1 to 256");
        }
    }

    @Test
    void theConfiguredNumberReachesTheScheduler() {
        int other = before == 3 ? 2 : 3;
        runner.withPropertyValues("uffdemu.virtual-threads.parallelism=" + other).run(ctx -> {
            assertThat(ctx).hasNotFailed();
            assertThat(scheduler.getParallelism()).isEqualTo(other);
            assertThat(ctx.getBean(VirtualThreadParallelism.class).parallelism()).isEqualTo(other);
            // virtual threads still run (and on the changed scheduler)
            Thread t = Thread.ofVirtual().start(() -> { });
            t.join();
            assertThat(t.isAlive()).isFalse();
        });
    }

    @Test
    void autoOnThisHostFollowsItsProcessorCount() {
        scheduler.setParallelism(2);
        runner.run(ctx -> {
            assertThat(ctx).hasNotFailed();
            boolean small = Runtime.getRuntime().availableProcessors() <= 2
                    && System.getProperty("jdk.virtualThreadScheduler.parallelism") == null;
            assertThat(scheduler.getParallelism()).isEqualTo(small ? 1 : 2);
            assertThat(ctx.getBean(VirtualThreadParallelism.class).reason()).startsWith("auto: ");
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
