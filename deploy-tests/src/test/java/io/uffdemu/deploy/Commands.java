package io.uffdemu.deploy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Assumptions;

/** Runs host commands (docker-compose, the docker CLI) from the repository root. */
final class Commands {

    record Result(int exit, String output) {
    }

    private Commands() {
    }

    /** docker-compose v1 from Debian's package (.ci/run installs it); required when CI_REQUIRE_DOCKER=1. */
    static Path dockerCompose() {
        return onPath("docker-compose", "apt-get install docker-compose");
    }

    /** The docker CLI (Debian's docker.io); required when CI_REQUIRE_DOCKER=1. */
    static Path docker() {
        return onPath("docker", "apt-get install docker.io");
    }

    private static Path onPath(String name, String install) {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
            Path candidate = Path.of(dir, name);
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        String reason = name + " is not on PATH (" + install + ")";
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

    /**
     * Like {@link #run(Map, long, Path, String...)} for long, talkative commands (docker build): the output goes to
     * {@code log} as it comes, and the result carries all of it.
     */
    static Result runLogged(Map<String, String> env, long timeoutSeconds, Path log, Path binary, String... args)
            throws Exception {
        List<String> command = new ArrayList<>(List.of(binary.toString()));
        command.addAll(List.of(args));
        Files.createDirectories(log.toAbsolutePath().getParent());
        ProcessBuilder builder = new ProcessBuilder(command).directory(RepoFiles.root().toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile());
        builder.environment().putAll(env);
        Process process = builder.start();
        if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            throw new AssertionError(command + " did not finish in " + timeoutSeconds + " s; output: " + log);
        }
        return new Result(process.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    }

    static Result run(Path binary, String... args) throws Exception {
        return run(Map.of(), 50, binary, args);
    }
}
