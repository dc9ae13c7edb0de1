package io.uffdemu.deploy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Assumptions;

/** Runs host commands (docker-compose) from the repository root. */
final class Commands {

    record Result(int exit, String output) {
    }

    private Commands() {
    }

    /** docker-compose v1 from Debian's package (.ci/run installs it); required when CI_REQUIRE_DOCKER=1. */
    static Path dockerCompose() {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
            Path candidate = Path.of(dir, "docker-compose");
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        String reason = "docker-compose is not on PATH (apt-get install docker-compose)";
        if (RepoFiles.ciRequiresDocker()) {
            throw new AssertionError(reason + "; CI_REQUIRE_DOCKER=1 forbids skipping");
        }
        Assumptions.abort(reason);
        return null;
    }

    static Result run(Map<String, String> env, long timeoutSeconds, Path binary, String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of(binary.toString()));
        command.addAll(List.of(args));
        ProcessBuilder builder = new ProcessBuilder(command).directory(RepoFiles.root().toFile()).redirectErrorStream(true);
        builder.environment().putAll(env);
        Process process = builder.start();
        // compose's output is small; reading it to the end also waits for the process
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError(command + " did not finish in " + timeoutSeconds + " s: " + output);
        }
        return new Result(process.exitValue(), output);
    }

    static Result run(Path binary, String... args) throws Exception {
        return run(Map.of(), 50, binary, args);
    }
}
