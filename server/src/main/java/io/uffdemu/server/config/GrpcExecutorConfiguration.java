package io.uffdemu.server.config;

import java.util.concurrent.Executors;
import org.springframework.boot.grpc.server.autoconfigure.GrpcServerExecutorProvider;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * gRPC calls run on virtual threads: a call may block like a faulting thread (Access) or a thread raising a uffd
 * event (munmap, madvise, fork), so each call gets its own cheap thread and needs no further hand-off.
 */
@Configuration(proxyBeanMethods = false)
public class GrpcExecutorConfiguration {
    @Bean
    GrpcServerExecutorProvider grpcServerExecutorProvider() {
        var executor = Executors.newThreadPerTaskExecutor(Thread.ofVirtual().name("uffdemu-grpc-", 0).factory());
        return () -> executor;
    }
}
