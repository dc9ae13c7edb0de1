package io.uffdemu.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.Status;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

@Timeout(20)
class ErrorMappingTest {
  FakeServer fake;
  UffdemuClient client;
  Process process;

  @BeforeEach
  void setUp() throws Exception {
    fake = new FakeServer();
    client = fake.client();
    process = client.createProcess("t");
  }

  @AfterEach
  void tearDown() throws Exception {
    client.close();
    fake.close();
  }

  static Stream<Arguments> errnos() {
    return Stream.of(
        Arguments.of(Status.Code.ALREADY_EXISTS, 17, "EEXIST", EexistException.class),
        Arguments.of(Status.Code.ABORTED, 11, "EAGAIN", EagainException.class),
        Arguments.of(Status.Code.NOT_FOUND, 2, "ENOENT", EnoentException.class),
        Arguments.of(Status.Code.INVALID_ARGUMENT, 22, "EINVAL", EinvalException.class),
        Arguments.of(Status.Code.INVALID_ARGUMENT, 14, "EFAULT", EfaultException.class),
        Arguments.of(Status.Code.RESOURCE_EXHAUSTED, 12, "ENOMEM", EnomemException.class),
        Arguments.of(Status.Code.FAILED_PRECONDITION, 16, "EBUSY", EbusyException.class),
        Arguments.of(Status.Code.PERMISSION_DENIED, 1, "EPERM", EpermException.class),
        Arguments.of(Status.Code.PERMISSION_DENIED, 13, "EACCES", EaccesException.class),
        Arguments.of(Status.Code.NOT_FOUND, 9, "EBADF", EbadfException.class),
        Arguments.of(Status.Code.NOT_FOUND, 3, "ESRCH", EsrchException.class),
        Arguments.of(Status.Code.RESOURCE_EXHAUSTED, 28, "ENOSPC", EnospcException.class),
        Arguments.of(Status.Code.CANCELLED, 4, "EINTR", EintrException.class),
        Arguments.of(Status.Code.UNIMPLEMENTED, 38, "ENOSYS", EnotsupException.class),
        Arguments.of(Status.Code.UNIMPLEMENTED, 95, "EOPNOTSUPP", EnotsupException.class),
        Arguments.of(Status.Code.INVALID_ARGUMENT, 34, "ERANGE", ErrnoException.class));
  }

  @ParameterizedTest(name = "{2} -> {3}")
  @MethodSource("errnos")
  void errnoInfoDecodesToTypedException(Status.Code code, int errno, String name, Class<?> type) {
    fake.failNext("Munmap", FakeServer.errno(code, errno, name, "munmap", 0));

    assertThatThrownBy(() -> process.munmap(0x1000, 4096))
        .isExactlyInstanceOf(type)
        .isInstanceOfSatisfying(ErrnoException.class, e -> {
          assertThat(e.errno()).isEqualTo(errno);
          assertThat(e.name()).isEqualTo(name);
          assertThat(e.call()).isEqualTo("munmap");
          assertThat(e.bytesDone()).isZero();
          assertThat(e.grpcCode()).isEqualTo(code.name());
        });
  }

  @Test
  void decodesByDetailNotByStatusCodeOrText() {
    // a mismatching code and a misleading message: only the ErrnoInfo detail counts
    fake.failNext("Munmap", FakeServer.errno(Status.Code.INTERNAL, 17, "EEXIST", "munmap", 0));
    assertThatThrownBy(() -> process.munmap(0x1000, 4096)).isExactlyInstanceOf(EexistException.class);
  }

  @Test
  void quotaFailuresAreTheKernelsErrnoMarkedAsQuota() {
    fake.failNext("Munmap", FakeServer.errno(Status.Code.RESOURCE_EXHAUSTED, 11, "EAGAIN", "handle_userfault", 0,
        "QUOTA_EXCEEDED"));
    assertThatThrownBy(() -> process.munmap(0x1000, 4096)).isInstanceOfSatisfying(EagainException.class, e -> {
      assertThat(e.isQuota()).isTrue();
      assertThat(e.reason()).isEqualTo("QUOTA_EXCEEDED");
      assertThat(e.grpcCode()).isEqualTo("RESOURCE_EXHAUSTED");
    });
    fake.failNext("Munmap", FakeServer.errno(Status.Code.ABORTED, 11, "EAGAIN", "munmap", 0));
    assertThatThrownBy(() -> process.munmap(0x1000, 4096))
        .isInstanceOfSatisfying(EagainException.class, e -> assertThat(e.isQuota()).isFalse());
  }

  @Test
  void partialCopyExposesBytesDone() throws Exception {
    Userfaultfd uffd = process.userfaultfd(UffdOptions.DEFAULT);
    fake.failNext("Copy", FakeServer.errno(Status.Code.ABORTED, 11, "EAGAIN", "UFFDIO_COPY", 8192));

    assertThatThrownBy(() -> uffd.copy(0x10000, new byte[16384], 0))
        .isInstanceOfSatisfying(EagainException.class, e -> {
          assertThat(e.bytesDone()).isEqualTo(8192);
          assertThat(e.call()).isEqualTo("UFFDIO_COPY");
        });
  }

  @Test
  void negativeBytesDoneIsNeverAHugeCount() {
    fake.failNext("Munmap", FakeServer.errno(Status.Code.ABORTED, 11, "EAGAIN", "munmap", -11));
    assertThatThrownBy(() -> process.munmap(0x1000, 4096))
        .isInstanceOfSatisfying(EagainException.class, e -> assertThat(e.bytesDone()).isZero());
  }

  @Test
  void negativeIoctlByteCountIsDecodedAsErrno() throws Exception {
    FakeServer hostile = new FakeServer(new io.uffdemu.api.v1.UserfaultfdServiceGrpc.UserfaultfdServiceImplBase() {
      @Override
      public void open(io.uffdemu.api.v1.OpenRequest r, io.grpc.stub.StreamObserver<io.uffdemu.api.v1.OpenResponse> o) {
        o.onNext(io.uffdemu.api.v1.OpenResponse.newBuilder().setFd(5).build());
        o.onCompleted();
      }

      @Override
      public void copy(io.uffdemu.api.v1.CopyRequest r,
          io.grpc.stub.StreamObserver<io.uffdemu.api.v1.IoctlResponse> o) {
        o.onNext(io.uffdemu.api.v1.IoctlResponse.newBuilder().setBytes(-11).build()); // -EAGAIN, kernel style
        o.onCompleted();
      }
    });
    try (hostile; UffdemuClient c = hostile.client()) {
      Userfaultfd uffd = c.process(1).userfaultfd(UffdOptions.DEFAULT);
      assertThatThrownBy(() -> uffd.copy(0x10000, new byte[4096], 0))
          .isInstanceOfSatisfying(EagainException.class, e -> assertThat(e.bytesDone()).isZero());
    }
  }

  @Test
  void statusWithoutErrnoIsPlainUffdemuException() {
    fake.failNext("Munmap", Status.INTERNAL.withDescription("boom").asRuntimeException());
    assertThatThrownBy(() -> process.munmap(0x1000, 4096))
        .isExactlyInstanceOf(UffdemuException.class)
        .satisfies(e -> assertThat(((UffdemuException) e).grpcCode()).isEqualTo("INTERNAL"));
  }

  @Test
  void unavailableIsServerUnavailable() {
    for (int i = 0; i < 3; i++) {
      fake.failNext("Munmap", Status.UNAVAILABLE.asRuntimeException());
    }
    assertThatThrownBy(() -> process.munmap(0x1000, 4096)).isExactlyInstanceOf(ServerUnavailableException.class);
  }

  @Test
  void asyncViewFailsWithTheTypedException() {
    fake.failNext("Munmap", FakeServer.errno(Status.Code.INVALID_ARGUMENT, 22, "EINVAL", "munmap", 0));
    assertThat(process.async().munmap(0x1001, 1)).failsWithin(java.time.Duration.ofSeconds(5))
        .withThrowableOfType(java.util.concurrent.ExecutionException.class)
        .havingCause().isExactlyInstanceOf(EinvalException.class);
  }
}
