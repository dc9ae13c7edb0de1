package io.uffdemu.client.recipes;

import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

/**
 * A self-checking version stamp that oracles write into pages: {@code magic "UFSTAMP1" | page address |
 * version | writer id | CRC32C of the first 28 bytes}, followed by filler bytes derived from the address and
 * the version up to the stamp length. A torn or foreign page does not decode.
 *
 * <pre>{@code
 * process.write(page, Stamp.encode(page, 7, 0, 4096));
 * Stamp s = Stamp.decode(process.read(page, 4096).data(), 4096); // s.version() == 7
 * }</pre>
 *
 * @param address the page address written into the stamp
 * @param version the writer's version counter for this page (0 = never written)
 * @param writer id of the writer
 */
public record Stamp(long address, long version, int writer) {
  static final long MAGIC = 0x55465354414d5031L; // "UFSTAMP1"
  public static final int HEADER = 32;

  /** {@code length} bytes (at least {@link #HEADER}) of stamp for (address, version, writer). */
  public static byte[] encode(long address, long version, int writer, int length) {
    if (length < HEADER) {
      throw new IllegalArgumentException("stamp length < " + HEADER);
    }
    ByteBuffer b = ByteBuffer.allocate(length);
    b.putLong(MAGIC).putLong(address).putLong(version).putInt(writer);
    CRC32C crc = new CRC32C();
    crc.update(b.array(), 0, 28);
    b.putInt((int) crc.getValue());
    for (int i = HEADER; i < length; i++) {
      b.put(filler(address, version, i));
    }
    return b.array();
  }

  private static byte filler(long address, long version, int i) {
    long x = address * 0x9E3779B97F4A7C15L + version * 31 + i;
    return (byte) (x ^ (x >>> 29));
  }

  /**
   * Decodes the first {@code length} bytes of {@code data}: the stamp, {@code null} when all of them are zero
   * (a never-written page), or {@link IllegalArgumentException} when they are neither (torn or corrupt).
   */
  public static Stamp decode(byte[] data, int length) {
    boolean zero = true;
    for (int i = 0; i < length; i++) {
      if (data[i] != 0) {
        zero = false;
        break;
      }
    }
    if (zero) {
      return null;
    }
    ByteBuffer b = ByteBuffer.wrap(data, 0, length);
    long magic = b.getLong();
    long address = b.getLong();
    long version = b.getLong();
    int writer = b.getInt();
    int sum = b.getInt();
    CRC32C crc = new CRC32C();
    crc.update(data, 0, 28);
    if (magic != MAGIC || sum != (int) crc.getValue()) {
      throw new IllegalArgumentException("not a stamp (torn or corrupt)");
    }
    for (int i = HEADER; i < length; i++) {
      if (data[i] != filler(address, version, i)) {
        throw new IllegalArgumentException("torn stamp of 0x" + Long.toHexString(address) + " v" + version
            + " at byte " + i);
      }
    }
    return new Stamp(address, version, writer);
  }
}
