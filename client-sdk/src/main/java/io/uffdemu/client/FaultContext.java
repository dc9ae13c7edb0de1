package io.uffdemu.client;

/**
 * One page fault being served, with helpers that resolve it over the Handle stream. Helpers address the
 * page containing the fault ({@link #pageAddress()}, {@link HandlerOptions#pageSize()}).
 * After the fault's deadline has passed the helpers throw {@link IllegalStateException}.
 *
 * <pre>{@code
 * uffd.handle(ctx -> {
 *   if (ctx.message().wp()) ctx.writeUnprotect();
 *   else if (ctx.message().minor()) ctx.continue_();
 *   else ctx.copy(source.read(ctx.pageAddress(), ctx.pageSize()));
 * }, HandlerOptions.DEFAULT);
 * }</pre>
 */
public interface FaultContext {
  UffdMessage.PageFault message();

  /** The fault address rounded down to the handler's page size. */
  long pageAddress();

  long pageSize();

  Userfaultfd uffd();

  /** UFFDIO_COPY of {@code data} (a multiple of the page size) to the page; returns bytes copied (0 on EEXIST). */
  long copy(byte[] data);

  /** UFFDIO_COPY with explicit destination and UFFDIO_COPY_MODE_* bits. */
  long copy(long dst, byte[] data, long mode);

  /** UFFDIO_ZEROPAGE of the page. */
  long zeropage();

  /** UFFDIO_CONTINUE of the page (MINOR faults). */
  long continue_();

  /** UFFDIO_WRITEPROTECT mode 0 on the page: remove write protection and wake (WP faults). */
  void writeUnprotect();

  /** UFFDIO_WAKE of the page. */
  void wake();
}
