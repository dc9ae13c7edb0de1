package io.uffdemu.examples;

import io.uffdemu.client.UffdemuClient;

/** {@code [host [port]]}, default 127.0.0.1 9090. */
final class Args {
    private Args() {
    }

    static UffdemuClient connect(String[] args) {
        String host = args.length > 0 ? args[0] : "127.0.0.1";
        int port = args.length > 1 ? Integer.parseInt(args[1]) : 9090;
        return UffdemuClient.connect(host, port);
    }
}
