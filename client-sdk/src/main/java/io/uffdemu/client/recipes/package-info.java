/**
 * Ready, tested recipes on top of the SDK, one per job users bring to uffdemu (docs/recipes.md):
 *
 * <ul>
 *   <li>{@link io.uffdemu.client.recipes.LiveSnapshot} + {@link io.uffdemu.client.recipes.SnapshotVerifier}:
 *       a background snapshot of a running process (anon, shmem, hugetlb) into a crash-safe directory;</li>
 *   <li>{@link io.uffdemu.client.recipes.DistributedSnapshot}: one consistent cut across processes on several
 *       servers;</li>
 *   <li>{@link io.uffdemu.client.recipes.SharedMemoryDevice}: a hypervisor and a device sharing a memfd, with
 *       dirty tracking by sync uffd-wp or WP_ASYNC + PAGEMAP_SCAN;</li>
 *   <li>{@link io.uffdemu.client.recipes.LazyRestore}: Firecracker-style lazy restore of a snapshot;</li>
 *   <li>{@link io.uffdemu.client.recipes.LoadTest}: a load tester for fault handlers with an integrity oracle.</li>
 * </ul>
 *
 * Each takes a plain options record and returns a result record with {@code toTable()} and {@code toJson()}
 * (the CLI prints either). {@link io.uffdemu.client.recipes.RecipeMetrics} exports their Micrometer meters.
 */
package io.uffdemu.client.recipes;
