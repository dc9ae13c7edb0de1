package io.uffdemu.server.conformance;

import java.util.Set;

/** One conformance scenario, written once against the backend SPI through a {@link Harness}. */
public record Scenario(String name, Set<MemType> types, Body body) {
    @FunctionalInterface
    public interface Body {
        void run(Harness h) throws Exception;
    }

    /** Name of one run: the scenario over one memory type. */
    public String id(MemType t) {
        return types.size() == 1 && types.contains(MemType.ANON) && !name.startsWith("S") ? name
                : name + "[" + t.name().toLowerCase() + "]";
    }
}
