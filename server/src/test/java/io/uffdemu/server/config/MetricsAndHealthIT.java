package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.Linux;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;

/** Scrapes /actuator/prometheus after a known workload and checks the numbers. */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = "spring.grpc.server.port=0")
class MetricsAndHealthIT {
    @LocalServerPort
    int http;
    @Autowired
    MemoryBackend backend;
    @Autowired
    org.springframework.boot.web.server.context.WebServerApplicationContext web;

    @Test
    void actuatorListensOnLoopbackByDefault() {
        // like gRPC (spring.grpc.server.address): a deployment that wants it elsewhere says so (server.address)
        Object address = ((org.springframework.boot.tomcat.TomcatWebServer) web.getWebServer()).getTomcat()
                .getConnector().getProperty("address");
        assertThat(address).isInstanceOfSatisfying(java.net.InetAddress.class,
                a -> assertThat(a.isLoopbackAddress()).as("%s", a).isTrue());
    }

    String get(String path) throws Exception {
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + http + path)).build(), HttpResponse.BodyHandlers.ofString());
        return r.body();
    }

    static double value(String scrape, String series) {
        return scrape.lines().filter(l -> l.startsWith(series + " ") || l.startsWith(series + "{")
                && l.substring(0, l.lastIndexOf(' ')).equals(series)).mapToDouble(l -> Double.parseDouble(
                        l.substring(l.lastIndexOf(' ') + 1))).findFirst().orElse(Double.NaN);
    }

    @Test
    @Timeout(60)
    void faultsAndIoctlsAreCounted() throws Exception {
        int pid = backend.createProcess("m", 0, true, "t").pid();
        long addr = backend.mmap(pid, 0, 3 * 4096, 3, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS, -1, 0);
        int fd = backend.userfaultfd(pid, 0, false);
        backend.uffdApi(pid, fd, 0xAA, 0);
        backend.uffdRegister(pid, fd, addr, 3 * 4096, Linux.UFFDIO_REGISTER_MODE_MISSING);
        for (int i = 0; i < 3; i++) {
            long a = addr + i * 4096L;
            CompletableFuture<?> f = CompletableFuture.runAsync(() -> {
                try {
                    backend.access(pid, a, 8, false, null, AccessMode.USER, Long.MAX_VALUE);
                } catch (InterruptedException e) {
                    throw new RuntimeException(e);
                }
            });
            while (backend.uffdRead(pid, fd, 1, System.nanoTime() + TimeUnit.SECONDS.toNanos(5)).isEmpty()) {
                Thread.onSpinWait();
            }
            backend.uffdZeropage(pid, fd, a, 4096, 0);
            f.get(10, TimeUnit.SECONDS);
        }
        try {
            backend.uffdZeropage(pid, fd, addr, 4096, 0);
        } catch (RuntimeException expected) {
            // EEXIST: counted as such
        }
        String s = get("/actuator/prometheus");
        assertThat(s).contains("uffdemu_faults_total{memory_type=\"anon\",mode=\"missing\",write=\"false\"} 3.0");
        assertThat(s).contains("uffdemu_ioctls_total{ioctl=\"UFFDIO_ZEROPAGE\",result=\"ok\"} 3.0");
        assertThat(s).contains("uffdemu_ioctls_total{ioctl=\"UFFDIO_ZEROPAGE\",result=\"EEXIST\"} 1.0");
        assertThat(s).contains("uffdemu_fault_latency_seconds_count 3");
        assertThat(s).contains("uffdemu_fault_latency_seconds_bucket");
        assertThat(s).contains("uffdemu_faults_pending 0.0");
        assertThat(s).contains("uffdemu_threads_blocked 0.0");
        assertThat(s).doesNotContain("pid=").doesNotContain("address=");
        assertThat(get("/actuator/health")).contains("\"backend\"").contains("UP");
    }
}
