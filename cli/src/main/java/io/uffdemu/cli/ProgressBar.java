package io.uffdemu.cli;

import io.uffdemu.client.recipes.Progress;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A one-line progress bar on stderr for long work (snapshot, restore, bench), redrawn with {@code \r} at most
 * every 100 ms. Drawn only when it helps: never in {@code --json} mode, and with {@code --progress=auto} (the
 * default) only when stderr is a terminal; stdout is never touched.
 *
 * <p>No library: the registry's lists hold no progress-bar artifact (me.tongfei:progressbar is not there), and
 * jline would bring a terminal stack for one line of text.
 */
final class ProgressBar implements Progress, AutoCloseable {
    /** {@code --progress}: when to draw. */
    enum When { AUTO, ALWAYS, NEVER }

    private static final long REDRAW_NANOS = 100_000_000L;
    private static final int WIDTH = 30;

    private final PrintWriter err;
    private final String label;
    private final boolean draw;
    private final AtomicLong done = new AtomicLong();
    private final AtomicLong total = new AtomicLong(-1);
    private final AtomicLong updates = new AtomicLong();
    private long lastDraw;
    private boolean drawn;

    ProgressBar(PrintWriter err, String label, boolean draw) {
        this.err = err;
        this.label = label;
        this.draw = draw;
    }

    /** The bar for {@code cli}'s current command: drawing decided by --json, --progress and the terminal. */
    static ProgressBar of(Cli cli, String label) {
        boolean draw = !cli.json && switch (cli.progress()) {
            case ALWAYS -> true;
            case NEVER -> false;
            case AUTO -> cli.stderrIsTerminal();
        };
        return new ProgressBar(cli.err, label, draw);
    }

    /** Whether stderr of this JVM is a terminal (Linux: fd 2 links to a tty; elsewhere the JVM's console). */
    static boolean stderrIsTerminal() {
        try {
            String t = Files.readSymbolicLink(Path.of("/proc/self/fd/2")).toString();
            return t.startsWith("/dev/pts/") || t.startsWith("/dev/tty");
        } catch (Exception e) {
            java.io.Console c = System.console();
            return c != null && c.isTerminal();
        }
    }

    boolean drawing() {
        return draw;
    }

    /** Updates received so far (whether drawn or not). */
    long updates() {
        return updates.get();
    }

    @Override
    public void update(long d, long t) {
        updates.incrementAndGet();
        done.accumulateAndGet(d, Math::max);
        total.set(t);
        if (!draw) {
            return;
        }
        long now = System.nanoTime();
        synchronized (this) {
            if (drawn && now - lastDraw < REDRAW_NANOS && (t < 0 || d < t)) {
                return;
            }
            lastDraw = now;
            drawLocked();
        }
    }

    private void drawLocked() {
        long d = done.get();
        long t = total.get();
        String line;
        if (t > 0) {
            int filled = (int) Math.min(WIDTH, d * WIDTH / t);
            line = String.format("%s [%s%s] %3d%% %d/%d", label, "#".repeat(filled), " ".repeat(WIDTH - filled),
                    Math.min(100, d * 100 / t), d, t);
        } else {
            line = String.format("%s %d", label, d);
        }
        err.print("\r" + line);
        err.flush();
        drawn = true;
    }

    /** Ends the line (only if something was drawn). */
    @Override
    public synchronized void close() {
        if (draw && drawn) {
            drawLocked();
            err.println();
            err.flush();
        }
    }
}
