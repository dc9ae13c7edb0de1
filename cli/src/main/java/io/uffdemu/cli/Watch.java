package io.uffdemu.cli;

import io.uffdemu.client.AddrRange;
import io.uffdemu.client.FaultContext;
import io.uffdemu.client.FaultHandler;
import io.uffdemu.client.HandlerLoop;
import io.uffdemu.client.HandlerOptions;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.UffdemuException;
import io.uffdemu.client.Userfaultfd;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code uffdemu watch PID FD}: attaches to the uffd's Handle stream and prints every message as it arrives.
 * Watching makes this command the uffd's handler (there is one Handle stream per uffd): by default faults are
 * left unresolved while watching and their pages are woken on exit, so the threads re-fault and the next
 * handler gets them; {@code --zero} resolves them with UFFDIO_ZEROPAGE instead.
 */
@Command(name = "watch", mixinStandardHelpOptions = true,
        description = {"Print the uffd messages of fd FD of PID as they arrive (Ctrl-C ends).",
            "Watching takes the uffd's single Handle stream: faults stay pending while watching and are woken on "
                    + "exit (the threads re-fault for the next handler), unless --zero resolves them."})
final class Watch extends Commands.Base {
    @Parameters(index = "0", paramLabel = "PID")
    int pid;

    @Parameters(index = "1", paramLabel = "FD")
    int fd;

    @Option(names = "--count", paramLabel = "N", description = "exit after N messages (default: until Ctrl-C)")
    long count;

    @Option(names = "--timeout", paramLabel = "SECONDS", description = "exit after this long (default: never)")
    long timeoutSeconds;

    @Option(names = "--zero", description = "resolve page faults with UFFDIO_ZEROPAGE")
    boolean zero;

    @Override
    int run(Cli cli, UffdemuClient c) throws Exception {
        Userfaultfd uffd = c.process(pid).userfaultfd(fd);
        CountDownLatch stop = new CountDownLatch(1);
        CountDownLatch cleaned = new CountDownLatch(1);
        AtomicLong seen = new AtomicLong();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        Set<Long> unresolved = new ConcurrentSkipListSet<>();
        FaultHandler printer = new FaultHandler() {
            @Override
            public void onFault(FaultContext ctx) {
                print(cli, ctx.message());
                if (zero) {
                    ctx.zeropage();
                } else {
                    unresolved.add(ctx.pageAddress());
                }
                counted();
            }

            @Override
            public void onEvent(UffdMessage event) {
                print(cli, event);
                counted();
            }

            @Override
            public void onError(Throwable error) {
                failed.set(error);
                stop.countDown();
            }

            private void counted() {
                if (count > 0 && seen.incrementAndGet() >= count) {
                    stop.countDown();
                }
            }
        };
        Thread hook = new Thread(() -> {
            stop.countDown();
            try {
                cleaned.await(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "uffdemu-watch-ctrl-c");
        Runtime.getRuntime().addShutdownHook(hook);
        try (HandlerLoop loop = uffd.handle(printer, HandlerOptions.DEFAULT.withWorkers(1)
                .withFaultDeadline(Duration.ofSeconds(10), io.uffdemu.client.FallbackPolicy.FAIL))) {
            loop.termination().whenComplete((v, t) -> stop.countDown());
            if (!cli.json) {
                cli.err.println("watching uffd " + fd + " of pid " + pid + (count > 0 ? " for " + count
                        + " messages" : "") + " (Ctrl-C ends)");
            }
            if (timeoutSeconds > 0) {
                stop.await(timeoutSeconds, TimeUnit.SECONDS);
            } else {
                stop.await();
            }
        } finally {
            for (long page : unresolved) {
                try {
                    uffd.wake(new AddrRange(page, 4096));
                } catch (UffdemuException e) {
                    cli.err.println("uffdemu: wake of 0x" + Long.toHexString(page) + " failed: " + Cli.describe(e));
                }
            }
            cleaned.countDown();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // Ctrl-C: the hook is running
            }
        }
        Throwable t = failed.get();
        if (t != null) {
            throw t instanceof Exception e ? e : new RuntimeException(t);
        }
        return 0;
    }

    static void print(Cli cli, UffdMessage m) {
        String line;
        if (cli.json) {
            Map<String, Object> j = new LinkedHashMap<>();
            j.put("seq", m.seq());
            switch (m) {
                case UffdMessage.PageFault pf -> {
                    j.put("event", "PAGEFAULT");
                    j.put("address", Commands.hex(pf.address()));
                    j.put("flags", pf.flags());
                    j.put("write", pf.write());
                    j.put("wp", pf.wp());
                    j.put("minor", pf.minor());
                    j.put("ptid", pf.ptid());
                }
                case UffdMessage.ForkEvent f -> {
                    j.put("event", "FORK");
                    j.put("ufd", f.ufd());
                    j.put("childPid", f.childPid());
                }
                case UffdMessage.RemapEvent r -> {
                    j.put("event", "REMAP");
                    j.put("from", Commands.hex(r.from()));
                    j.put("to", Commands.hex(r.to()));
                    j.put("len", r.len());
                }
                case UffdMessage.RemoveEvent r -> {
                    j.put("event", "REMOVE");
                    j.put("start", Commands.hex(r.start()));
                    j.put("end", Commands.hex(r.end()));
                }
                case UffdMessage.UnmapEvent u -> {
                    j.put("event", "UNMAP");
                    j.put("start", Commands.hex(u.start()));
                    j.put("end", Commands.hex(u.end()));
                }
            }
            line = io.uffdemu.client.impl.Json.compact(j);
        } else {
            line = switch (m) {
                case UffdMessage.PageFault pf -> {
                    List<String> f = new ArrayList<>();
                    f.add(pf.write() ? "WRITE" : "READ");
                    if (pf.wp()) {
                        f.add("WP");
                    }
                    if (pf.minor()) {
                        f.add("MINOR");
                    }
                    yield String.format("%6d PAGEFAULT %s %s ptid=%d", pf.seq(), Commands.hex(pf.address()),
                            String.join("|", f), pf.ptid());
                }
                case UffdMessage.ForkEvent f -> String.format("%6d FORK      ufd=%d child=%d", f.seq(), f.ufd(),
                        f.childPid());
                case UffdMessage.RemapEvent r -> String.format("%6d REMAP     %s -> %s len=%d", r.seq(),
                        Commands.hex(r.from()), Commands.hex(r.to()), r.len());
                case UffdMessage.RemoveEvent r -> String.format("%6d REMOVE    %s-%s", r.seq(),
                        Commands.hex(r.start()), Commands.hex(r.end()));
                case UffdMessage.UnmapEvent u -> String.format("%6d UNMAP     %s-%s", u.seq(),
                        Commands.hex(u.start()), Commands.hex(u.end()));
            };
        }
        synchronized (cli.out) {
            cli.out.println(line);
            cli.out.flush();
        }
    }
}
