/**
 * Implementation of the SDK; not an API. Only {@link io.uffdemu.client.impl.ClientFactory} is public, because
 * Java packages do not nest.
 *
 * <ul>
 *   <li>{@code RpcExecutor}: the one execute path: deadline, retry of idempotent calls on UNAVAILABLE
 *       without an errno, error mapping through {@code StatusMapper}.</li>
 *   <li>{@code StatusMapper}: {@code ErrnoInfo} detail to typed exception; negative kernel byte counts decoded
 *       as {@code -errno}.</li>
 *   <li>{@code ProtoMapper}: proto to SDK records.</li>
 *   <li>{@code HandlerLoopImpl}: the Handle stream, flow control, workers, event thread; see its class
 *       comment for the threading model and the credit rule.</li>
 * </ul>
 *
 * <pre>{@code
 * UffdemuClient c = ClientFactory.connect(ClientConfig.DEFAULT); // what UffdemuClient.connect does
 * }</pre>
 */
package io.uffdemu.client.impl;
