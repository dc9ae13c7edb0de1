#!/usr/bin/env bash
# Builds the local runtime base image for machines that cannot pull from a registry:
# FROM scratch + a jlink'ed JDK 25 runtime (at /opt/java/openjdk, the eclipse-temurin layout) + the glibc
# files the JVM loads + /etc/passwd with the uffdemu user (uid/gid 10001) + an empty /tmp (mode 1777).
# Pass the tag as RUNTIME_IMAGE to the top-level Dockerfile.
#
#   deploy/base-image/build.sh [--force] [tag]     (default tag: uffdemu/jre25-base:local)
#
# Needs: JAVA_HOME pointing at a JDK 25 (jlink), a running dockerd. Skips the build when the tag exists
# unless --force is given. Takes about 15-25 s on 2 cores; the image is about 70 MB.
set -euo pipefail

force=false
if [ "${1:-}" = "--force" ]; then force=true; shift; fi
tag="${1:-uffdemu/jre25-base:local}"

if ! $force && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag exists (use --force to rebuild)"
  exit 0
fi

: "${JAVA_HOME:?set JAVA_HOME to a JDK 25}"
"${JAVA_HOME}/bin/java" -version 2>&1 | grep -q 'version "25' || { echo "JAVA_HOME is not a JDK 25" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/opt/java" "$root/etc" "$root/tmp" "$root/lib64" "$root/lib/x86_64-linux-gnu"
chmod 1777 "$root/tmp"

# 1. the Java runtime: the modules a Spring Boot + gRPC + Micrometer server needs (JDK 25 links from the
#    runtime image itself, JEP 493, so there is no jmods/ directory to point at)
modules=java.base,java.compiler,java.desktop,java.instrument,java.logging,java.management,java.naming
modules=$modules,java.net.http,java.prefs,java.rmi,java.scripting,java.security.jgss,java.sql,java.xml
modules=$modules,jdk.jfr,jdk.management,jdk.management.agent,jdk.naming.dns,jdk.net,jdk.unsupported
modules=$modules,jdk.zipfs,jdk.crypto.cryptoki
"${JAVA_HOME}/bin/jlink" --add-modules "$modules" --strip-debug --no-man-pages --no-header-files \
  --compress=zip-6 --output "$root/opt/java/openjdk"

# 2. the glibc files the JVM and netty's epoll library load (ldd of libjvm.so and the netty .so)
libdir=/lib/x86_64-linux-gnu
for lib in libc.so.6 libdl.so.2 libm.so.6 libpthread.so.0 librt.so.1 libz.so.1; do
  cp -L "$libdir/$lib" "$root/lib/x86_64-linux-gnu/$lib"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"

# 3. a user for the numeric uid the Dockerfile runs as (the JVM looks its name up for user.name)
printf 'root:x:0:0:root:/:/sbin/nologin\nuffdemu:x:10001:10001:uffdemu:/tmp:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nuffdemu:x:10001:\n' > "$root/etc/group"

cat > "$work/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV JAVA_HOME=/opt/java/openjdk PATH=/opt/java/openjdk/bin
LABEL org.opencontainers.image.title="uffdemu JRE 25 base (jlink, FROM scratch)"
ENTRYPOINT ["/opt/java/openjdk/bin/java"]
DOCKERFILE

# the legacy builder: Debian's dockerd 20.10 has no buildx here (its deprecation notice is shown only on failure)
if ! out=$(DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$work" 2>&1); then
  echo "$out" >&2
  exit 1
fi
echo "built base image $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}'))"
