package io.uffdemu.cli;

import java.io.PrintWriter;

/** Entry point of {@code java -jar uffdemu-cli.jar}. */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) {
        PrintWriter out = new PrintWriter(System.out, true);
        PrintWriter err = new PrintWriter(System.err, true);
        int code = Cli.run(args, System.getenv(), out, err, ProgressBar.stderrIsTerminal());
        out.flush();
        err.flush();
        System.exit(code);
    }
}
