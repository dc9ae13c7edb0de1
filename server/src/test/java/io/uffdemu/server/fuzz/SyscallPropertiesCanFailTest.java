package io.uffdemu.server.fuzz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.uffdemu.server.fuzz.SyscallFuzzer.Focus;
import io.uffdemu.server.fuzz.SyscallFuzzer.Step;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import org.junit.jupiter.api.Test;
import org.junit.platform.engine.discovery.DiscoverySelectors;
import org.junit.platform.launcher.EngineFilter;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;

/**
 * The property tests can fail, and shrink: a property over the same sequences as {@link SyscallPropertiesTest},
 * with one operation sabotaged (it throws a non-errno exception, as a bug would), is run through the JUnit
 * Platform launcher on the jqwik engine; it must fail, with a sample shrunk to the single sabotaged step.
 */
class SyscallPropertiesCanFailTest {
    /** Not picked up by surefire on its own (nested classes are excluded); launched by the test below. */
    static class Sabotaged {
        @Property(tries = 300)
        void wakeIsBroken(@ForAll("anyOps") List<Step> steps) {
            SyscallFuzzer f = new SyscallFuzzer(0, Focus.ANON);
            f.sabotage = op -> op == 23; // UFFDIO_WAKE
            f.run(steps);
        }

        @net.jqwik.api.Provide
        net.jqwik.api.Arbitrary<List<Step>> anyOps() {
            return new SyscallPropertiesTest().anyOps();
        }
    }

    @Test
    void aBrokenOperationFailsThePropertyAndShrinksToOneStep() {
        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request()
                .selectors(DiscoverySelectors.selectClass(Sabotaged.class))
                .filters(EngineFilter.includeEngines("jqwik"))
                .configurationParameter("jqwik.database", "target/jqwik-canfail-database")
                .configurationParameter("jqwik.failures.runfirst", "false")
                .build();
        SummaryGeneratingListener listener = new SummaryGeneratingListener();
        LauncherFactory.create().execute(request, listener);
        TestExecutionSummary summary = listener.getSummary();
        assertEquals(1, summary.getTestsFoundCount(), "the sabotaged property was discovered");
        assertEquals(1, summary.getTestsFailedCount(), "the sabotaged property failed");
        Throwable t = summary.getFailures().getFirst().getException();
        String msg = String.valueOf(t.getMessage());
        assertTrue(msg.contains("sabotaged op 23"), msg);
        // shrunk: the failing sequence is the sabotaged step alone
        assertTrue(msg.contains("failed at step 0:"), msg);
    }
}
