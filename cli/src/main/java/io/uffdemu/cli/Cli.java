package io.uffdemu.cli;

import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.ErrnoException;
import io.uffdemu.client.UffdemuClient;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * The {@code uffdemu} command: global options and the subcommands. Run it with {@link #run}, which returns the
 * exit code (see cli/README.md) instead of exiting, so tests can run it in-process.
 */
@Command(name = "uffdemu", mixinStandardHelpOptions = true, version = "uffdemu-cli 0.1.0",
        description = "Inspect and drive a uffdemu server (the Linux memory manager with userfaultfd, emulated).",
        subcommands = {Commands.Ps.class, Commands.Maps.class, Commands.Pagemap.class, Commands.Uffd.class,
            Commands.Sysctl.class, Commands.Meminfo.class, Commands.Backend.class, Watch.class,
            Commands.Snapshot.class, Commands.Restore.class, Commands.Bench.class, Commands.SoakCmd.class,
            CommandLine.HelpCommand.class},
        footer = {"", "Environment: UFFDEMU_SERVER (host:port, default 127.0.0.1:9090), UFFDEMU_TOKEN (bearer token).",
            "Exit codes: 0 ok, 1 usage, 2 not found, 3 invalid, 4 permission, 5 resource exhausted, 6 unavailable, "
                    + "7 other."})
public final class Cli implements Callable<Integer> {
    static final String DEFAULT_SERVER = "127.0.0.1:9090";

    final Map<String, String> env;
    final PrintWriter out;
    final PrintWriter err;
    String server;
    String token;
    boolean json;
    boolean tls;
    Path caFile;
    ProgressBar.When progressWhen;
    /** Whether stderr is a terminal; Main asks the OS, in-process runs (tests) say no. */
    boolean stderrTerminal;

    @CommandLine.Mixin
    GlobalOptions global;

    @Spec
    CommandSpec spec;

    Cli(Map<String, String> env, PrintWriter out, PrintWriter err) {
        this.env = env;
        this.out = out;
        this.err = err;
    }

    @Override
    public Integer call() {
        throw new CommandLine.ParameterException(spec.commandLine(), "Missing required subcommand");
    }

    /** Parses and runs {@code args}; returns the exit code. */
    public static int run(String[] args, Map<String, String> env, PrintWriter out, PrintWriter err) {
        return run(args, env, out, err, false);
    }

    /** {@link #run} where stderr is (or is not) a terminal: progress bars are drawn only on one by default. */
    static int run(String[] args, Map<String, String> env, PrintWriter out, PrintWriter err, boolean stderrTerminal) {
        Cli cli = new Cli(env, out, err);
        cli.stderrTerminal = stderrTerminal;
        CommandLine cmd = new CommandLine(cli);
        cmd.setOut(out);
        cmd.setErr(err);
        cmd.setParameterExceptionHandler((ex, a) -> {
            err.println("uffdemu: " + ex.getMessage());
            ex.getCommandLine().usage(err);
            return ExitCodes.USAGE;
        });
        cmd.setExecutionExceptionHandler((ex, c, parsed) -> {
            err.println("uffdemu: " + describe(ex));
            return ExitCodes.of(ex);
        });
        cmd.setExitCodeExceptionMapper(ExitCodes::of);
        int code = cmd.execute(args);
        out.flush();
        err.flush();
        return code;
    }

    static String describe(Throwable t) {
        if (t instanceof ErrnoException e) {
            return e.call() + ": " + e.name() + " (errno " + e.errno() + ")";
        }
        return t.getMessage() == null ? t.toString() : t.getMessage();
    }

    /** --progress, else $UFFDEMU_PROGRESS, else auto. */
    ProgressBar.When progress() {
        if (progressWhen != null) {
            return progressWhen;
        }
        String e = env.get("UFFDEMU_PROGRESS");
        if (e != null && !e.isBlank()) {
            try {
                return ProgressBar.When.valueOf(e.strip().toUpperCase(java.util.Locale.ROOT));
            } catch (IllegalArgumentException ignored) {
                // unknown value: auto
            }
        }
        return ProgressBar.When.AUTO;
    }

    boolean stderrIsTerminal() {
        return stderrTerminal;
    }

    String target() {
        if (server != null) {
            return server;
        }
        String e = env.get("UFFDEMU_SERVER");
        return e == null || e.isBlank() ? DEFAULT_SERVER : e;
    }

    UffdemuClient connect() {
        return UffdemuClient.connect(config());
    }

    ClientConfig config() {
        // keep-alive no more often than grpc-java servers permit by default (5 min): with the SDK's 30 s the
        // server ends an idle `watch` with GOAWAY too_many_pings after about a minute (e2e KeepAliveIT)
        ClientConfig cfg = ClientConfig.DEFAULT.withTarget(target()).withDeadline(Duration.ofSeconds(10))
                .withKeepAlive(Duration.ofMinutes(5));
        String tok = token != null ? token : env.get("UFFDEMU_TOKEN");
        if (tok != null && !tok.isBlank()) {
            cfg = cfg.withBearerToken(tok);
        }
        if (tls || caFile != null) {
            cfg = cfg.withTls(caFile, null, null);
        }
        return cfg;
    }

    void printJson(Object v) {
        out.println(io.uffdemu.client.impl.Json.compact(v));
        out.flush();
    }

    /**
     * Options accepted before or after the subcommand. Each command gets its own instance; the values are
     * stored on the root {@link Cli} (picocli's MIXEE pattern), only when given, so a subcommand's defaults
     * never undo what was given before it.
     */
    static final class GlobalOptions {
        @Spec(Spec.Target.MIXEE)
        CommandSpec mixee;

        private Cli root() {
            return mixee == null ? null : (Cli) mixee.root().userObject();
        }

        @Option(names = "--server", paramLabel = "TARGET",
                description = "server endpoint: host:port, or unix:///path for a Unix domain socket (default: "
                        + "$UFFDEMU_SERVER, else " + DEFAULT_SERVER + ")")
        void setServer(String s) {
            Cli r = root();
            if (r != null && s != null) {
                r.server = s;
            }
        }

        @Option(names = "--token", paramLabel = "TOKEN", description = "bearer token (default: $UFFDEMU_TOKEN)")
        void setToken(String t) {
            Cli r = root();
            if (r != null && t != null) {
                r.token = t;
            }
        }

        @Option(names = "--json", description = "machine-readable JSON output")
        void setJson(boolean j) {
            Cli r = root();
            if (r != null && j) {
                r.json = true;
            }
        }

        @Option(names = "--progress", paramLabel = "WHEN", description = "progress bars on stderr for snapshot, "
                + "restore and bench: auto (only when stderr is a terminal), always, never; never with --json "
                + "(default: $UFFDEMU_PROGRESS, else auto)")
        void setProgress(String w) {
            Cli r = root();
            if (r != null && w != null) {
                try {
                    r.progressWhen = ProgressBar.When.valueOf(w.strip().toUpperCase(java.util.Locale.ROOT));
                } catch (IllegalArgumentException e) {
                    throw new CommandLine.ParameterException(mixee.commandLine(),
                            "--progress must be auto, always or never, not '" + w + "'");
                }
            }
        }

        @Option(names = "--tls", description = "connect with TLS (JVM trust store unless --ca)")
        void setTls(boolean t) {
            Cli r = root();
            if (r != null && t) {
                r.tls = true;
            }
        }

        @Option(names = "--ca", paramLabel = "PEM", description = "CA bundle for TLS (implies --tls)")
        void setCa(Path p) {
            Cli r = root();
            if (r != null && p != null) {
                r.caFile = p;
            }
        }
    }
}
