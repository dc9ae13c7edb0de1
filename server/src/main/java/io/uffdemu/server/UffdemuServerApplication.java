package io.uffdemu.server;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

/** The uffdemu server: a gRPC service hosting emulated (or real) address spaces with userfaultfd. */
@SpringBootApplication
@ConfigurationPropertiesScan
public class UffdemuServerApplication {
    public static void main(String[] args) {
        SpringApplication.run(UffdemuServerApplication.class, args);
    }
}
