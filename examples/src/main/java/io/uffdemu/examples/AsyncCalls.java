package io.uffdemu.examples;

import io.uffdemu.client.AccessResult;
import io.uffdemu.client.AddrRange;
import io.uffdemu.client.EexistException;
import io.uffdemu.client.Linux;
import io.uffdemu.client.MmapOptions;
import io.uffdemu.client.Process;
import io.uffdemu.client.UffdOptions;
import io.uffdemu.client.UffdMessage;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.Userfaultfd;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * The asynchronous calls without a handler loop: a read that faults is started as a future, the fault is read
 * with {@code read(2)} ({@code Userfaultfd.async().read}), resolved by an async UFFDIO_COPY, and the read
 * completes. An EEXIST from a second copy counts as "someone else mapped it".
 */
public final class AsyncCalls {
    private AsyncCalls() {
    }

    public static void main(String[] args) throws Exception {
        try (UffdemuClient client = Args.connect(args)) {
            Process p = client.createProcess("async");
            long addr = p.mmap(MmapOptions.anonymous(4096));
            Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
            uffd.register(new AddrRange(addr, 4096), Linux.UFFDIO_REGISTER_MODE_MISSING);

            CompletableFuture<AccessResult> load = p.async().read(addr, 5);
            List<UffdMessage> msgs = uffd.async().read(16, Duration.ofSeconds(5)).get();
            System.out.println("messages: " + msgs);
            byte[] page = new byte[4096];
            System.arraycopy("hello".getBytes(), 0, page, 0, 5);
            long copied = uffd.async().copy(addr, page, 0).get();
            System.out.println("copied " + copied + " bytes; load returned '" + new String(load.get().data()) + "'");
            long again = uffd.async().copy(addr, page, 0)
                    .exceptionally(e -> e instanceof EexistException ? 0L : -1L).get();
            System.out.println("second copy: " + (again == 0 ? "EEXIST (already mapped)" : again + " bytes"));
            p.async().exit().get();
        }
    }
}
