package io.uffdemu.client.impl;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A minimal JSON writer and parser for manifests and reports (objects, arrays, strings, numbers, booleans,
 * null), so the SDK needs no JSON library. Numbers parse to {@link Long} when integral, else {@link Double}.
 */
public final class Json {
  private Json() {}

  public static String write(Object value) {
    StringBuilder sb = new StringBuilder();
    write(sb, value, 0, true);
    return sb.append('\n').toString();
  }

  /** One-line form. */
  public static String compact(Object value) {
    StringBuilder sb = new StringBuilder();
    write(sb, value, 0, false);
    return sb.toString();
  }

  private static void write(StringBuilder sb, Object v, int indent, boolean pretty) {
    switch (v) {
      case null -> sb.append("null");
      case String s -> quote(sb, s);
      case Boolean b -> sb.append(b);
      case Double d -> sb.append(d.isNaN() || d.isInfinite() ? "null" : d.toString());
      case Float f -> write(sb, f.doubleValue(), indent, pretty);
      case Number n -> sb.append(n);
      case Enum<?> e -> quote(sb, e.name());
      case Map<?, ?> m -> {
        sb.append('{');
        boolean first = true;
        for (var e : m.entrySet()) {
          if (!first) {
            sb.append(',');
          }
          first = false;
          newline(sb, indent + 1, pretty);
          quote(sb, String.valueOf(e.getKey()));
          sb.append(pretty ? ": " : ":");
          write(sb, e.getValue(), indent + 1, pretty);
        }
        if (!m.isEmpty()) {
          newline(sb, indent, pretty);
        }
        sb.append('}');
      }
      case Iterable<?> it -> {
        sb.append('[');
        boolean first = true;
        boolean scalars = true;
        for (Object o : it) {
          scalars &= !(o instanceof Map<?, ?> || o instanceof Iterable<?>);
        }
        for (Object o : it) {
          if (!first) {
            sb.append(',');
          }
          if (!scalars) {
            newline(sb, indent + 1, pretty);
          }
          first = false;
          write(sb, o, indent + 1, pretty);
        }
        if (!first && !scalars) {
          newline(sb, indent, pretty);
        }
        sb.append(']');
      }
      default -> quote(sb, v.toString());
    }
  }

  private static void newline(StringBuilder sb, int indent, boolean pretty) {
    if (pretty) {
      sb.append('\n').append("  ".repeat(indent));
    }
  }

  private static void quote(StringBuilder sb, String s) {
    sb.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> sb.append("\\\"");
        case '\\' -> sb.append("\\\\");
        case '\n' -> sb.append("\\n");
        case '\r' -> sb.append("\\r");
        case '\t' -> sb.append("\\t");
        default -> {
          if (c < 0x20) {
            sb.append(String.format("\\u%04x", (int) c));
          } else {
            sb.append(c);
          }
        }
      }
    }
    sb.append('"');
  }

  public static Object parse(String text) {
    Parser p = new Parser(text);
    Object v = p.value();
    p.ws();
    if (p.i != text.length()) {
      throw p.error("trailing characters");
    }
    return v;
  }

  private static final class Parser {
    final String s;
    int i;

    Parser(String s) {
      this.s = s;
    }

    IllegalArgumentException error(String what) {
      return new IllegalArgumentException("bad JSON at " + i + ": " + what);
    }

    void ws() {
      while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
        i++;
      }
    }

    Object value() {
      ws();
      if (i >= s.length()) {
        throw error("unexpected end");
      }
      char c = s.charAt(i);
      switch (c) {
        case '{' -> {
          i++;
          Map<String, Object> m = new LinkedHashMap<>();
          ws();
          if (s.charAt(i) == '}') {
            i++;
            return m;
          }
          while (true) {
            ws();
            String k = string();
            ws();
            expect(':');
            m.put(k, value());
            ws();
            if (s.charAt(i) == ',') {
              i++;
            } else {
              expect('}');
              return m;
            }
          }
        }
        case '[' -> {
          i++;
          List<Object> l = new ArrayList<>();
          ws();
          if (s.charAt(i) == ']') {
            i++;
            return l;
          }
          while (true) {
            l.add(value());
            ws();
            if (s.charAt(i) == ',') {
              i++;
            } else {
              expect(']');
              return l;
            }
          }
        }
        case '"' -> {
          return string();
        }
        case 't' -> {
          literal("true");
          return Boolean.TRUE;
        }
        case 'f' -> {
          literal("false");
          return Boolean.FALSE;
        }
        case 'n' -> {
          literal("null");
          return null;
        }
        default -> {
          int start = i;
          while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
            i++;
          }
          String num = s.substring(start, i);
          if (num.isEmpty()) {
            throw error("unexpected '" + c + "'");
          }
          if (num.contains(".") || num.contains("e") || num.contains("E")) {
            return Double.parseDouble(num);
          }
          return Long.parseLong(num);
        }
      }
    }

    void literal(String lit) {
      if (!s.startsWith(lit, i)) {
        throw error("expected " + lit);
      }
      i += lit.length();
    }

    void expect(char c) {
      if (i >= s.length() || s.charAt(i) != c) {
        throw error("expected '" + c + "'");
      }
      i++;
    }

    String string() {
      expect('"');
      StringBuilder sb = new StringBuilder();
      while (true) {
        if (i >= s.length()) {
          throw error("unterminated string");
        }
        char c = s.charAt(i++);
        if (c == '"') {
          return sb.toString();
        }
        if (c == '\\') {
          char e = s.charAt(i++);
          switch (e) {
            case 'n' -> sb.append('\n');
            case 'r' -> sb.append('\r');
            case 't' -> sb.append('\t');
            case 'b' -> sb.append('\b');
            case 'f' -> sb.append('\f');
            case 'u' -> {
              sb.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
              i += 4;
            }
            default -> sb.append(e);
          }
        } else {
          sb.append(c);
        }
      }
    }
  }
}
