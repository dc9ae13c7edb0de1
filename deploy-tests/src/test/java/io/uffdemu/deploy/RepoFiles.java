package io.uffdemu.deploy;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;

/** Paths of the repository (system property {@code uffdemu.repo.root}, set by the pom) and YAML helpers. */
final class RepoFiles {

    private RepoFiles() {
    }

    static Path root() {
        return Path.of(System.getProperty("uffdemu.repo.root", "..")).toAbsolutePath().normalize();
    }

    static Path path(String relative) {
        return root().resolve(relative);
    }

    /** True when CI demands the Docker-backed checks (set by .ci/run): they must fail, never skip. */
    static boolean ciRequiresDocker() {
        return "1".equals(System.getenv("CI_REQUIRE_DOCKER"));
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> loadYaml(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return (Map<String, Object>) new Yaml(new LoaderOptions()).load(in);
        }
    }

    /** Every non-empty document of a multi-document YAML string (helm template output). */
    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> loadAll(String yaml) {
        List<Map<String, Object>> docs = new ArrayList<>();
        for (Object doc : new Yaml(new LoaderOptions()).loadAll(yaml)) {
            if (doc != null) {
                docs.add((Map<String, Object>) doc);
            }
        }
        return docs;
    }

    /** Walks maps and lists: {@code at(doc, "spec", "template", "spec", "containers", 0)}. */
    @SuppressWarnings("unchecked")
    static <T> T at(Object node, Object... keys) {
        Object current = node;
        for (Object key : keys) {
            if (current == null) {
                return null;
            }
            current = key instanceof Integer i ? ((List<Object>) current).get(i) : ((Map<String, Object>) current).get(key);
        }
        return (T) current;
    }
}
