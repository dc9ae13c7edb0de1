package io.uffdemu.client.impl;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** How many faults a worker's joined message batch may reach ({@link HandlerLoopImpl#joinLimit}). */
class JoinLimitTest {
  private static final long KIB4 = 4096;
  private static final long MIB2 = 2L << 20;
  private static final long GIB1 = 1L << 30;

  @Test
  void smallPagesJoinUpToMaxBatch() {
    assertThat(HandlerLoopImpl.joinLimit(64, 16, KIB4)).isEqualTo(64);
    assertThat(HandlerLoopImpl.joinLimit(3, 1, KIB4)).isEqualTo(3);
    assertThat(HandlerLoopImpl.joinLimit(4096, 16, KIB4)).as("16 MiB of 4 KiB pages").isEqualTo(4096);
  }

  /** Huge pages keep the groups they had: 16 x 2 MiB, whose COPY sources fit the copy region 4 workers share. */
  @Test
  void hugePagesJoinNoFurtherThanSixteenMibOrTheServersBatch() {
    assertThat(HandlerLoopImpl.joinLimit(64, 16, MIB2)).as("the server's batch is more than 16 MiB").isEqualTo(16);
    assertThat(HandlerLoopImpl.joinLimit(64, 1, MIB2)).as("16 MiB").isEqualTo(8);
    assertThat(HandlerLoopImpl.joinLimit(4, 1, MIB2)).as("maxBatch").isEqualTo(4);
    assertThat(HandlerLoopImpl.joinLimit(64, 1, GIB1)).as("one 1 GiB page: no joining").isEqualTo(1);
  }
}
