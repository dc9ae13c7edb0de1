package io.uffdemu.client;

import io.grpc.Channel;
import io.uffdemu.client.impl.ClientFactory;
import java.util.List;
import java.util.Map;

/**
 * Entry point of the uffdemu SDK: one gRPC channel to a uffdemu server, and the facades over it.
 * Closing the client closes every handler loop it started and shuts down its channel.
 *
 * <pre>{@code
 * try (UffdemuClient client = UffdemuClient.connect("localhost", 9090)) {
 *   Process p = client.createProcess("demo");
 *   long addr = p.mmap(MmapOptions.anonymous(16 * 4096));
 *   Userfaultfd uffd = p.userfaultfd(UffdOptions.DEFAULT);
 *   uffd.register(new AddrRange(addr, 16 * 4096), Linux.UFFDIO_REGISTER_MODE_MISSING);
 *   try (HandlerLoop loop = uffd.handle(ctx -> ctx.zeropage(), HandlerOptions.DEFAULT)) {
 *     AccessResult r = p.read(addr, 8); // blocks until the handler resolves the fault
 *   }
 * }
 * }</pre>
 */
public interface UffdemuClient extends AutoCloseable {

  /** Connects (lazily, as gRPC does) with {@code config}. */
  static UffdemuClient connect(ClientConfig config) {
    return ClientFactory.connect(config);
  }

  /** Plaintext connection with {@link ClientConfig#DEFAULT} settings. */
  static UffdemuClient connect(String host, int port) {
    return connect(ClientConfig.DEFAULT.withTarget(host + ":" + port));
  }

  /**
   * A client over an existing channel (in-process servers in tests, custom transports). The channel is not
   * shut down by {@link #close()}; {@code config} supplies deadline and retry settings only.
   */
  static UffdemuClient create(Channel channel, ClientConfig config) {
    return ClientFactory.create(channel, config);
  }

  /** Creates a process with {@link Credentials#ROOT}. */
  default Process createProcess(String name) {
    return createProcess(name, Credentials.ROOT);
  }

  Process createProcess(String name, Credentials credentials);

  /** A facade for an existing process; no call is made. */
  Process process(int pid);

  List<ProcessInfo> processes();

  BackendInfo backend();

  /** Reads a sysctl by its /proc/sys path, e.g. "vm/unprivileged_userfaultfd". */
  String sysctl(String name);

  /** Sets a sysctl and returns the value now in effect. */
  String setSysctl(String name, String value);

  /** /proc/meminfo-like counters. */
  Map<String, Long> meminfo();

  ClientConfig config();

  /** Closes handler loops, then the channel (when owned). Idempotent. */
  @Override
  void close();
}
