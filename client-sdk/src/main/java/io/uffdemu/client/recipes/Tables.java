package io.uffdemu.client.recipes;

import java.util.List;
import java.util.Map;

/** Plain-text tables for the results' {@code toTable()}. */
final class Tables {
  private Tables() {}

  static String keyValue(String title, Map<String, Object> m) {
    int w = m.keySet().stream().mapToInt(String::length).max().orElse(0);
    StringBuilder sb = new StringBuilder(title).append('\n');
    m.forEach((k, v) -> sb.append("  ").append(k).append(" ".repeat(w - k.length() + 2)).append(format(v))
        .append('\n'));
    return sb.toString();
  }

  static String grid(List<String> header, List<List<Object>> rows) {
    int[] w = new int[header.size()];
    for (int i = 0; i < w.length; i++) {
      w[i] = header.get(i).length();
      for (List<Object> r : rows) {
        w[i] = Math.max(w[i], format(r.get(i)).length());
      }
    }
    StringBuilder sb = new StringBuilder();
    line(sb, header.stream().map(Object.class::cast).toList(), w);
    for (List<Object> r : rows) {
      line(sb, r, w);
    }
    return sb.toString();
  }

  private static void line(StringBuilder sb, List<Object> cells, int[] w) {
    for (int i = 0; i < w.length; i++) {
      String s = format(cells.get(i));
      sb.append(i == 0 ? "" : "  ").append(" ".repeat(w[i] - s.length())).append(s);
    }
    sb.append('\n');
  }

  static String format(Object v) {
    if (v instanceof Double d) {
      return String.format("%.3f", d);
    }
    return String.valueOf(v);
  }
}
