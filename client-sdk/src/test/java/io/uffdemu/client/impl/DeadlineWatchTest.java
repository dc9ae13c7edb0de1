package io.uffdemu.client.impl;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The handler loop's untimed waits with a deadline: the result or the failure of the future comes through, a wait
 * past its deadline ends in a TimeoutException without completing the future itself (others observe its real
 * outcome), and the ticker forgets finished waits and wakes again after it went idle.
 */
@Timeout(30) // a lost wake-up of the ticker hangs a wait: fail instead
class DeadlineWatchTest {
  private final DeadlineWatch watch = new DeadlineWatch("deadline-watch-test");

  @AfterEach
  void stopTicker() {
    watch.stop();
  }

  @Test
  void resultAndFailureComeThrough() throws Exception {
    CompletableFuture<String> f = new CompletableFuture<>();
    Thread.ofVirtual().start(() -> {
      sleep(20);
      f.complete("done");
    });
    assertThat(watch.await(f, TimeUnit.SECONDS.toNanos(10))).isEqualTo("done");
    assertThat(watch.await(f, 0)).as("a finished future needs no time").isEqualTo("done");

    CompletableFuture<String> g = new CompletableFuture<>();
    Thread.ofVirtual().start(() -> {
      sleep(20);
      g.completeExceptionally(new IllegalStateException("server said no"));
    });
    assertThatThrownBy(() -> watch.await(g, TimeUnit.SECONDS.toNanos(10)))
        .isInstanceOf(ExecutionException.class)
        .cause().isInstanceOf(IllegalStateException.class).hasMessage("server said no");
    assertThat(watch.watching()).isZero();
  }

  @Test
  void expiresWithoutCompletingTheFuture() throws Exception {
    CompletableFuture<String> f = new CompletableFuture<>();
    long start = System.nanoTime();
    assertThatThrownBy(() -> watch.await(f, TimeUnit.MILLISECONDS.toNanos(50)))
        .isInstanceOf(TimeoutException.class);
    long took = System.nanoTime() - start;
    assertThat(took).as("not before the deadline").isGreaterThanOrEqualTo(TimeUnit.MILLISECONDS.toNanos(50));
    assertThat(f).as("the future itself is left to its real outcome").isNotDone();
    assertThat(watch.watching()).isZero();
    f.complete("late");
    assertThat(f.get()).isEqualTo("late");
    assertThatThrownBy(() -> watch.await(new CompletableFuture<>(), 0)).isInstanceOf(TimeoutException.class);
  }

  @Test
  void manyWaitsAtOnceEachEndTheirOwnWay() throws Exception {
    int n = 64;
    CompletableFuture<Integer>[] fs = newArray(n);
    CompletableFuture<?>[] outcomes = new CompletableFuture<?>[n];
    for (int i = 0; i < n; i++) {
      fs[i] = new CompletableFuture<>();
      int j = i;
      outcomes[i] = CompletableFuture.supplyAsync(() -> {
        try {
          return watch.await(fs[j], TimeUnit.MILLISECONDS.toNanos(j % 2 == 0 ? 60_000 : 30));
        } catch (TimeoutException e) {
          return -1;
        } catch (Exception e) {
          throw new IllegalStateException(e);
        }
      }, r -> Thread.ofVirtual().start(r));
    }
    sleep(200); // the odd waits expire meanwhile; then the ticker has nothing but the even ones
    for (int i = 0; i < n; i += 2) {
      fs[i].complete(i);
    }
    for (int i = 0; i < n; i++) {
      assertThat(outcomes[i].get(10, TimeUnit.SECONDS)).isEqualTo(i % 2 == 0 ? i : -1);
    }
    assertThat(watch.watching()).isZero();
    // idle now: a new wait must still expire (the ticker is woken by it)
    sleep(50);
    assertThatThrownBy(() -> watch.await(new CompletableFuture<>(), TimeUnit.MILLISECONDS.toNanos(20)))
        .isInstanceOf(TimeoutException.class);
  }

  @SuppressWarnings("unchecked")
  private static CompletableFuture<Integer>[] newArray(int n) {
    return new CompletableFuture[n];
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
