package io.uffdemu.server.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.mm.AccessMode;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.Userfaultfd;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link InstrumentedBackend}: every {@link MemoryBackend} method reaches the wrapped backend with its arguments,
 * and the uffd methods count ok / errno in {@code uffdemu.ioctls} like the reflective proxy did.
 */
class InstrumentedBackendTest {
    /** What the fake backend saw, and what it throws next (null: return normally). */
    private static final class Recorder {
        final List<Method> methods = new ArrayList<>();
        final List<Object[]> args = new ArrayList<>();
        /** What each call returned (a value the wrapper must hand back unchanged). */
        final List<Object> returned = new ArrayList<>();
        RuntimeException toThrow;

        MemoryBackend backend() {
            return (MemoryBackend) Proxy.newProxyInstance(MemoryBackend.class.getClassLoader(),
                    new Class<?>[] {MemoryBackend.class}, (proxy, method, a) -> {
                        if (method.getDeclaringClass() == Object.class) {
                            return switch (method.getName()) {
                                case "hashCode" -> System.identityHashCode(proxy);
                                case "equals" -> proxy == a[0];
                                default -> "Recorder";
                            };
                        }
                        methods.add(method);
                        args.add(a == null ? new Object[0] : a);
                        if (toThrow != null) {
                            throw toThrow;
                        }
                        Object r = distinct(method.getReturnType(), methods.size());
                        returned.add(r);
                        return r;
                    });
        }
    }

    private static List<Method> backendMethods() {
        return Arrays.stream(MemoryBackend.class.getMethods()).filter(m -> !Modifier.isStatic(m.getModifiers()))
                .toList();
    }

    /** Counted under its own ioctl name; uffdCopyBatch counts its ops as UFFDIO_COPY (its own test). */
    private static boolean counted(Method m) {
        return m.getName().startsWith("uffd") && !m.getName().equals("uffdRead") && !isBatch(m);
    }

    private static boolean isBatch(Method m) {
        return m.getName().equals("uffdCopyBatch");
    }

    @Test
    void declaresEveryMethodOfTheSpiIncludingTheDefaultOnes() {
        List<String> missing = new ArrayList<>();
        for (Method m : backendMethods()) {
            try {
                Method own = InstrumentedBackend.class.getDeclaredMethod(m.getName(), m.getParameterTypes());
                assertThat(own.getReturnType()).as(m.toString()).isEqualTo(m.getReturnType());
            } catch (NoSuchMethodException e) {
                missing.add(m.toString());
            }
        }
        assertThat(missing).as("MemoryBackend methods InstrumentedBackend does not delegate").isEmpty();
    }

    @Test
    void everyCallReachesTheBackendWithItsArguments() throws Exception {
        Recorder rec = new Recorder();
        MemoryBackend b = new InstrumentedBackend(rec.backend(), new SimpleMeterRegistry());
        for (Method m : backendMethods()) {
            rec.methods.clear();
            rec.args.clear();
            Object[] args = distinctArgs(m);
            m.invoke(b, args);
            assertThat(rec.methods).as(m.toString()).containsExactly(m);
            if (isBatch(m)) { // the outcome is wrapped to count the ops
                assertThat(rec.args.get(0)[0]).isSameAs(args[0]);
                assertThat(rec.args.get(0)[1]).isInstanceOf(Userfaultfd.CopyOutcome.class);
            } else {
                assertThat(rec.args.get(0)).as(m.toString()).containsExactly(args);
            }
            Object r = m.invoke(b, args);
            if (m.getReturnType().isPrimitive()) {
                assertThat(r).as("what %s returned", m).isEqualTo(rec.returned.getLast());
            } else {
                assertThat(r).as("what %s returned", m).isSameAs(rec.returned.getLast());
            }
        }
    }

    @Test
    void countsEachUffdMethodByIoctlAndResult() throws Exception {
        Recorder rec = new Recorder();
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        MemoryBackend b = new InstrumentedBackend(rec.backend(), registry);
        List<String> tags = new ArrayList<>();
        for (Method m : backendMethods()) {
            if (isBatch(m)) {
                continue;
            }
            Object[] args = distinctArgs(m);
            rec.toThrow = null;
            m.invoke(b, args);
            m.invoke(b, args);
            LinuxException eagain = new LinuxException(Errno.EAGAIN, m.getName(), 4096);
            rec.toThrow = eagain;
            assertThat(thrownBy(b, m, args)).as(m.toString()).isSameAs(eagain);
            IllegalStateException bug = new IllegalStateException("not an errno");
            rec.toThrow = bug;
            assertThat(thrownBy(b, m, args)).as(m.toString()).isSameAs(bug);
            String ioctl = BackendMetrics.ioctlName(m.getName());
            if (counted(m)) {
                tags.add(ioctl);
                assertThat(count(registry, ioctl, "ok")).as(m.toString()).isEqualTo(2.0);
                assertThat(count(registry, ioctl, "EAGAIN")).as(m.toString()).isEqualTo(1.0);
            } else {
                assertThat(registry.find("uffdemu.ioctls").tag("ioctl", ioctl).counters()).as(m.toString())
                        .isEmpty();
            }
        }
        // the names of today's catalogue (docs/metrics.md), and nothing counted for a bug or a non-ioctl
        assertThat(tags).contains("UFFDIO_API", "UFFDIO_REGISTER", "UFFDIO_UNREGISTER", "UFFDIO_COPY",
                "UFFDIO_ZEROPAGE", "UFFDIO_CONTINUE", "UFFDIO_WRITEPROTECT", "UFFDIO_WAKE", "UFFDIO_POISON",
                "UFFDIO_MOVE");
        assertThat(registry.find("uffdemu.ioctls").counters()).hasSize(2 * tags.size());
    }

    @Test
    void copyCountsOkAndErrnoAndLetsOtherFailuresPassUncounted() {
        Recorder rec = new Recorder();
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        MemoryBackend b = new InstrumentedBackend(rec.backend(), registry);
        b.uffdCopy(1, 3, 0x1000, new byte[4096], 0);
        rec.toThrow = new LinuxException(Errno.EEXIST, "UFFDIO_COPY");
        assertThatThrownBy(() -> b.uffdCopy(1, 3, 0x1000, new byte[4096], 0)).isInstanceOf(LinuxException.class);
        assertThatThrownBy(() -> b.uffdCopy(1, 3, 0x1000, new byte[4096], 0)).isInstanceOf(LinuxException.class);
        rec.toThrow = new IllegalArgumentException("boom");
        assertThatThrownBy(() -> b.uffdCopy(1, 3, 0x1000, new byte[4096], 0))
                .isInstanceOf(IllegalArgumentException.class);
        assertThat(count(registry, "UFFDIO_COPY", "ok")).isEqualTo(1.0);
        assertThat(count(registry, "UFFDIO_COPY", "EEXIST")).isEqualTo(2.0);
        assertThat(registry.find("uffdemu.ioctls").counters()).hasSize(2);
        // access is delegated, never counted
        rec.toThrow = new LinuxException(Errno.EFAULT, "access");
        assertThat(catchThrowable(() -> b.access(1, 0x1000, 1, false, null, AccessMode.USER, Long.MAX_VALUE)))
                .isInstanceOf(LinuxException.class);
        assertThat(registry.find("uffdemu.ioctls").counters()).hasSize(2);
    }

    /**
     * A batch of COPYs counts each op as the UFFDIO_COPY it is (as the ops one by one through uffdCopy would be) and
     * hands every outcome on: through the default loop of the SPI, which calls the wrapped backend's uffdCopy.
     */
    @Test
    void aCopyBatchCountsEachOpAsUffdioCopy() {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        List<String> delegated = new ArrayList<>();
        MemoryBackend fake = (MemoryBackend) Proxy.newProxyInstance(MemoryBackend.class.getClassLoader(),
                new Class<?>[] {MemoryBackend.class}, (proxy, method, a) -> {
                    if (method.isDefault()) {
                        return java.lang.reflect.InvocationHandler.invokeDefault(proxy, method, a);
                    }
                    delegated.add(method.getName());
                    if (!method.getName().equals("uffdCopy")) {
                        throw new AssertionError("unexpected " + method);
                    }
                    long dst = (long) a[2];
                    if (dst == 0x2000) {
                        throw new LinuxException(Errno.EEXIST, "UFFDIO_COPY");
                    }
                    if (dst == 0x3000) {
                        throw new LinuxException(Errno.EAGAIN, "UFFDIO_COPY", 4096);
                    }
                    return (long) ((byte[]) a[3]).length;
                });
        MemoryBackend b = new InstrumentedBackend(fake, registry);
        List<Userfaultfd.CopyOp> ops = List.of(new Userfaultfd.CopyOp(1, 3, 0x1000, new byte[4096], 0),
                new Userfaultfd.CopyOp(1, 3, 0x2000, new byte[4096], 0),
                new Userfaultfd.CopyOp(1, 3, 0x3000, new byte[8192], 0),
                new Userfaultfd.CopyOp(1, 3, 0x5000, new byte[8192], 0));
        List<String> outcomes = new ArrayList<>();
        b.uffdCopyBatch(ops, new Userfaultfd.CopyOutcome() {
            @Override
            public void copied(int index, long bytes) {
                outcomes.add(index + ":" + bytes);
            }

            @Override
            public void failed(int index, LinuxException e) {
                outcomes.add(index + ":" + e.errno() + "/" + e.bytesDone());
            }
        });
        assertThat(delegated).containsExactly("uffdCopy", "uffdCopy", "uffdCopy", "uffdCopy");
        assertThat(outcomes).containsExactly("0:4096", "1:EEXIST/0", "2:EAGAIN/4096", "3:8192");
        assertThat(count(registry, "UFFDIO_COPY", "ok")).isEqualTo(2.0);
        assertThat(count(registry, "UFFDIO_COPY", "EEXIST")).isEqualTo(1.0);
        assertThat(count(registry, "UFFDIO_COPY", "EAGAIN")).isEqualTo(1.0);
        assertThat(registry.find("uffdemu.ioctls").counters()).hasSize(3);
    }

    private static Throwable thrownBy(MemoryBackend b, Method m, Object[] args) {
        try {
            m.invoke(b, args);
            return null;
        } catch (InvocationTargetException e) {
            return e.getCause();
        } catch (IllegalAccessException e) {
            throw new AssertionError(e);
        }
    }

    private static double count(SimpleMeterRegistry registry, String ioctl, String result) {
        Counter c = registry.find("uffdemu.ioctls").tag("ioctl", ioctl).tag("result", result).counter();
        return c == null ? 0 : c.count();
    }

    /** Arguments that differ from each other, so a swapped or dropped argument shows. */
    private static Object[] distinctArgs(Method m) {
        Class<?>[] types = m.getParameterTypes();
        Object[] out = new Object[types.length];
        for (int i = 0; i < types.length; i++) {
            Class<?> t = types[i];
            int v = 11 + 7 * i;
            if (t == int.class) {
                out[i] = v;
            } else if (t == long.class) {
                out[i] = 1000L * v;
            } else if (t == boolean.class) {
                out[i] = i % 2 == 0;
            } else if (t == String.class) {
                out[i] = "arg" + i;
            } else if (t == byte[].class) {
                out[i] = new byte[v];
            } else if (t.isEnum()) {
                out[i] = t.getEnumConstants()[i % t.getEnumConstants().length];
            } else {
                out[i] = null; // records and files: identity is not checked for those
            }
        }
        return out;
    }

    /**
     * A return value a delegate could not invent: a number of its own per call, {@code true}, a fresh instance of an
     * interface type (List, Map, ...), or null for the record types (their constructors are not generic).
     */
    private static Object distinct(Class<?> t, int call) {
        if (t == long.class) {
            return 0x5eed_0000L + call;
        }
        if (t == int.class) {
            return 0x5eed + call;
        }
        if (t == boolean.class) {
            return true;
        }
        if (t.isInterface()) {
            return Proxy.newProxyInstance(t.getClassLoader() == null ? InstrumentedBackendTest.class.getClassLoader()
                    : t.getClassLoader(), new Class<?>[] {t}, (proxy, method, a) -> switch (method.getName()) {
                        case "hashCode" -> System.identityHashCode(proxy);
                        case "equals" -> proxy == a[0];
                        case "toString" -> "distinct " + t.getSimpleName() + " #" + call;
                        default -> throw new UnsupportedOperationException(method.getName());
                    });
        }
        return zero(t);
    }

    private static Object zero(Class<?> t) {
        if (!t.isPrimitive() || t == void.class) {
            return null;
        }
        if (t == boolean.class) {
            return false;
        }
        if (t == int.class) {
            return 0;
        }
        if (t == long.class) {
            return 0L;
        }
        throw new AssertionError("unexpected return type " + t);
    }
}
