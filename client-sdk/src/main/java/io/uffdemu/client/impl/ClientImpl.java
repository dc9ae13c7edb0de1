package io.uffdemu.client.impl;

import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.uffdemu.api.v1.CreateProcessRequest;
import io.uffdemu.api.v1.GetBackendRequest;
import io.uffdemu.api.v1.ListProcessesRequest;
import io.uffdemu.api.v1.MeminfoRequest;
import io.uffdemu.api.v1.SysctlRequest;
import io.uffdemu.api.v1.SysctlValue;
import io.uffdemu.client.BackendInfo;
import io.uffdemu.client.ClientConfig;
import io.uffdemu.client.Credentials;
import io.uffdemu.client.Process;
import io.uffdemu.client.ProcessInfo;
import io.uffdemu.client.UffdemuClient;
import io.uffdemu.client.impl.RpcExecutor.Idempotency;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

final class ClientImpl implements UffdemuClient {
  private final RpcExecutor rpc;
  private final ManagedChannel owned;
  private final Channel raw; // the channel before interceptors: probed for shutdown
  private final ExecutorService async = Executors.newVirtualThreadPerTaskExecutor();
  private final Set<HandlerLoopImpl> loops = ConcurrentHashMap.newKeySet();
  /** Copy regions of ended Handle streams, still mapped, for the next stream to ask back. */
  private final CopyRegionCache regions = new CopyRegionCache();
  private volatile boolean closed;

  ClientImpl(Channel channel, ManagedChannel owned, ClientConfig config) {
    this(channel, owned, owned, config);
  }

  ClientImpl(Channel channel, ManagedChannel owned, Channel raw, ClientConfig config) {
    this.rpc = new RpcExecutor(channel, config);
    this.owned = owned;
    this.raw = raw;
  }

  /** Whether no new call can succeed: the client was closed or its channel shut down (reconnecting is pointless). */
  boolean channelShutdown() {
    return closed || (raw instanceof ManagedChannel m && m.isShutdown());
  }

  RpcExecutor rpc() {
    return rpc;
  }

  ExecutorService asyncExecutor() {
    return async;
  }

  CopyRegionCache copyRegions() {
    return regions;
  }

  void register(HandlerLoopImpl loop) {
    if (closed) {
      loop.close();
      throw new IllegalStateException("client closed");
    }
    loops.add(loop);
  }

  void unregister(HandlerLoopImpl loop) {
    loops.remove(loop);
  }

  @Override
  public Process createProcess(String name, Credentials credentials) {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(credentials, "credentials");
    var info = rpc.execute("create_process", Idempotency.NOT_IDEMPOTENT, null, s -> s.process().create(
        CreateProcessRequest.newBuilder().setName(name).setCredentials(io.uffdemu.api.v1.Credentials.newBuilder()
            .setUid(credentials.uid()).setCapSysPtrace(credentials.capSysPtrace())).build()));
    return new ProcessImpl(this, info.getPid(), null);
  }

  @Override
  public Process process(int pid) {
    return new ProcessImpl(this, pid, null);
  }

  @Override
  public List<ProcessInfo> processes() {
    return rpc.execute("list_processes", Idempotency.IDEMPOTENT, null,
        s -> s.process().list(ListProcessesRequest.getDefaultInstance()).getProcessesList().stream()
            .map(ProtoMapper::processInfo).toList());
  }

  @Override
  public BackendInfo backend() {
    var b = rpc.execute("get_backend", Idempotency.IDEMPOTENT, null,
        s -> s.system().getBackend(GetBackendRequest.getDefaultInstance()));
    return new BackendInfo(b.getName(), b.getAvailable(), b.getUnavailableReason(), b.getFeatures(), b.getIoctls(),
        b.getKernelRelease());
  }

  @Override
  public String sysctl(String name) {
    Objects.requireNonNull(name, "name");
    return rpc.execute("sysctl", Idempotency.IDEMPOTENT, null,
        s -> s.system().getSysctl(SysctlRequest.newBuilder().setName(name).build()).getValue());
  }

  @Override
  public String setSysctl(String name, String value) {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(value, "value");
    return rpc.execute("sysctl", Idempotency.IDEMPOTENT, null,
        s -> s.system().setSysctl(SysctlValue.newBuilder().setName(name).setValue(value).build()).getValue());
  }

  @Override
  public Map<String, Long> meminfo() {
    return rpc.execute("meminfo", Idempotency.IDEMPOTENT, null,
        s -> Map.copyOf(s.system().meminfo(MeminfoRequest.getDefaultInstance()).getFieldsMap()));
  }

  @Override
  public ClientConfig config() {
    return rpc.config();
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (HandlerLoopImpl loop : List.copyOf(loops)) {
      loop.close();
    }
    regions.close(); // a region a loop retires after this is unmapped at once
    async.shutdownNow();
    if (owned != null) {
      owned.shutdown();
      try {
        if (!owned.awaitTermination(5, TimeUnit.SECONDS)) {
          owned.shutdownNow();
        }
      } catch (InterruptedException e) {
        owned.shutdownNow();
        Thread.currentThread().interrupt();
      }
    }
  }
}
