package io.uffdemu.bench;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The real kernel's figures, from the C programs vendored in resources ({@code uffd_kernel_bench.c} is the
 * project's yardstick, copied unchanged from ../shared/bench; {@code uffd_hugetlb_bench.c} is the same round
 * trip on 2 MiB hugetlbfs pages; {@code uffd_bulk_bench.c} times bulk ioctls).
 * They are compiled with gcc at run time, so both sides are measured in the same run on the same machine.
 */
public final class KernelYardstick {
    private static final Pattern LINE = Pattern.compile(
            "^(\\S+)\\s+threads=(\\d+)\\s+pages=(\\d+)\\s+(\\d+) faults/s\\s+([0-9.]+) us/fault");
    private final Path dir;
    private String unavailable;

    public KernelYardstick() throws IOException {
        dir = Files.createTempDirectory("uffdemu-kbench");
    }

    /** Why the kernel side cannot run here (no gcc, no permission), or null. */
    public String unavailableReason() {
        return unavailable;
    }

    private Path build(String source) throws IOException, InterruptedException {
        Path bin = dir.resolve(source.replace(".c", ""));
        if (Files.exists(bin)) {
            return bin;
        }
        Path c = dir.resolve(source);
        try (InputStream in = KernelYardstick.class.getResourceAsStream("/" + source)) {
            Files.copy(in, c);
        }
        Process p = new ProcessBuilder("gcc", "-O2", "-pthread", c.toString(), "-o", bin.toString())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException("gcc failed: " + out);
        }
        return bin;
    }

    /** Runs the yardstick; case label → faults/s. Empty (with {@link #unavailableReason()}) when it cannot run. */
    public Map<String, Double> roundTrip(long pages, int threads) {
        return roundTrip("uffd_kernel_bench.c", pages, threads);
    }

    /**
     * The yardstick's round trip on hugetlbfs ({@code uffd_hugetlb_bench.c}: hugetlb-missing, hugetlb-wp) over
     * {@code hugePages} 2 MiB pages, which must be free on the host (vm.nr_hugepages); empty (with
     * {@link #unavailableReason()}) when it cannot run.
     */
    public Map<String, Double> hugetlbRoundTrip(long hugePages, int threads) {
        return roundTrip("uffd_hugetlb_bench.c", hugePages, threads);
    }

    /** The best of {@code rounds} runs of {@link #hugetlbRoundTrip} per case. */
    public Map<String, Double> bestHugetlbRoundTrip(long hugePages, int threads, int rounds) {
        return best(rounds, () -> hugetlbRoundTrip(hugePages, threads));
    }

    /** The best figure per case over {@code rounds} runs. */
    private static Map<String, Double> best(int rounds, java.util.function.Supplier<Map<String, Double>> run) {
        Map<String, Double> best = new LinkedHashMap<>();
        for (int r = 0; r < rounds; r++) {
            run.get().forEach((c, v) -> best.merge(c, v, Math::max));
        }
        return best;
    }

    private Map<String, Double> roundTrip(String source, long pages, int threads) {
        Map<String, Double> out = new LinkedHashMap<>();
        try {
            Path bin = build(source);
            Process p = new ProcessBuilder(bin.toString(), Long.toString(pages), Integer.toString(threads))
                    .redirectErrorStream(true).start();
            String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(600, TimeUnit.SECONDS) || p.exitValue() != 0) {
                unavailable = source + " failed: " + text.strip();
                return out;
            }
            for (String line : text.split("\n")) {
                Matcher m = LINE.matcher(line.strip());
                if (m.find()) {
                    out.put(m.group(1), Double.parseDouble(m.group(4)));
                }
            }
        } catch (IOException e) {
            unavailable = e.getMessage();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            unavailable = "interrupted";
        }
        return out;
    }

    /** The best of {@code rounds} runs of {@link #roundTrip} per case (empty when the yardstick cannot run). */
    public Map<String, Double> bestRoundTrip(long pages, int threads, int rounds) {
        return best(rounds, () -> roundTrip(pages, threads));
    }

    /** Runs the bulk program; operation label → microseconds. */
    public Map<String, Double> bulk(long bytes) {
        Map<String, Double> out = new LinkedHashMap<>();
        try {
            Path bin = build("uffd_bulk_bench.c");
            Process p = new ProcessBuilder(List.of(bin.toString(), Long.toString(bytes))).redirectErrorStream(true)
                    .start();
            String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(600, TimeUnit.SECONDS) || p.exitValue() != 0) {
                unavailable = "kernel bulk bench failed: " + text.strip();
                return out;
            }
            for (String line : text.split("\n")) {
                String[] f = line.strip().split("\\s+");
                if (f.length == 3 && f[2].equals("us")) {
                    out.put(f[0], Double.parseDouble(f[1]));
                }
            }
        } catch (IOException e) {
            unavailable = e.getMessage();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            unavailable = "interrupted";
        }
        return out;
    }
}
