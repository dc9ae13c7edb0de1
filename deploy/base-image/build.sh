#!/usr/bin/env bash
# Builds the local base images for machines that cannot pull from a registry, FROM scratch, with Java at
# /opt/java/openjdk (the eclipse-temurin layout), the glibc files it loads, an /etc/passwd and an empty /tmp
# (mode 1777). Pass the tags to the top-level Dockerfile:
#
#   deploy/base-image/build.sh [--force] [tag]         RUNTIME_IMAGE (default tag: uffdemu/jre25-base:local):
#       a jlink'ed JDK 25 runtime and the uffdemu user (uid/gid 10001); about 71 MB
#   deploy/base-image/build.sh [--force] --jdk [tag]   BUILD_IMAGE (default tag: uffdemu/jdk25-base:local):
#       the whole JDK 25 of JAVA_HOME (javac, jar; no src.zip), /bin/sh and the few host tools that mvnw and
#       Maven's launcher call (coreutils, tar, gzip), the C++ runtime the protoc-gen-grpc-java plugin needs,
#       root's home /root; about 275 MB
#
# Needs: JAVA_HOME pointing at a JDK 25 (jlink), a running dockerd, a glibc x86_64 host (Debian 12 here: the
# JDK base copies the host's own binaries and their libraries, found by ldd). Skips the build when the tag
# exists unless --force is given. Each takes about 15-25 s on 2 cores.
set -euo pipefail

force=false
kind=jre
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=true; shift ;;
    --jdk) kind=jdk; shift ;;
    *) break ;;
  esac
done
tag="${1:-uffdemu/${kind}25-base:local}"

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
libdir=/lib/x86_64-linux-gnu

# copies a host library (by name, from $libdir) into the same place in the image
copy_lib() {
  cp -L "$libdir/$1" "$root/lib/x86_64-linux-gnu/$1"
}

# 1. the glibc files the JVM and netty's epoll library load (ldd of libjvm.so and the netty .so)
for lib in libc.so.6 libdl.so.2 libm.so.6 libpthread.so.0 librt.so.1 libz.so.1; do
  copy_lib "$lib"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"

if [ "$kind" = jre ]; then
  # 2. the Java runtime: the modules a Spring Boot + gRPC + Micrometer server needs (JDK 25 links from the
  #    runtime image itself, JEP 493, so there is no jmods/ directory to point at)
  modules=java.base,java.compiler,java.desktop,java.instrument,java.logging,java.management,java.naming
  modules=$modules,java.net.http,java.prefs,java.rmi,java.scripting,java.security.jgss,java.sql,java.xml
  modules=$modules,jdk.jfr,jdk.management,jdk.management.agent,jdk.naming.dns,jdk.net,jdk.unsupported
  modules=$modules,jdk.zipfs,jdk.crypto.cryptoki
  "${JAVA_HOME}/bin/jlink" --add-modules "$modules" --strip-debug --no-man-pages --no-header-files \
    --compress=zip-6 --output "$root/opt/java/openjdk"

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
else
  # 2. the whole JDK (the Dockerfile's build stage runs javac through Maven), without the sources; every
  #    symbolic link resolved, since the JDK's lib/security/cacerts points at the host's /etc/ssl/certs/java
  cp -rL --preserve=mode,timestamps "${JAVA_HOME}" "$root/opt/java/openjdk"
  rm -f "$root/opt/java/openjdk/lib/src.zip"

  # 3. what mvnw (only-script) and Maven's bin/mvn run: /bin/sh, a few coreutils, and tar + gzip to unpack the
  #    Maven distribution (without unzip, mvnw fetches the .tar.gz; without curl or wget it downloads with the
  #    JDK's own Java, so neither is copied). /bin is a link to usr/bin, as on Debian 12 (merged /usr).
  mkdir -p "$root/usr/bin" "$root/root"
  ln -s usr/bin "$root/bin"
  tools="dash basename cat chmod cp cut dirname env expr head id ls mkdir mktemp mv pwd readlink rm rmdir sleep"
  tools="$tools sort tail touch tr uname wc tar gzip"
  for tool in $tools; do
    path=$(type -P "$tool") || { echo "host tool $tool not found" >&2; exit 1; }
    cp -L "$path" "$root/usr/bin/$tool"
    # the libraries it links beyond glibc (tar, ls: libacl, libselinux, libpcre2)
    for lib in $(ldd "$path" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'); do
      [ -e "$root/lib/x86_64-linux-gnu/${lib##*/}" ] || copy_lib "${lib##*/}"
    done
  done
  ln -s dash "$root/usr/bin/sh"
  # the api module's protoc-gen-grpc-java (a native binary from Maven Central) links the C++ runtime; Maven's
  # jansi console library loads libutil (without it Maven prints an UnsatisfiedLinkError and carries on)
  copy_lib libstdc++.so.6
  copy_lib libgcc_s.so.1
  copy_lib libutil.so.1

  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\n' > "$root/etc/group"

  cat > "$work/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV JAVA_HOME=/opt/java/openjdk PATH=/opt/java/openjdk/bin:/usr/bin:/bin HOME=/root
LABEL org.opencontainers.image.title="uffdemu JDK 25 build base (host JDK + tools, FROM scratch)" \
      io.uffdemu.base-image=jdk25
CMD ["/opt/java/openjdk/bin/jshell"]
DOCKERFILE
fi

# the legacy builder: Debian's dockerd 20.10 has no buildx here (its deprecation notice is shown only on failure)
if ! out=$(DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$work" 2>&1); then
  echo "$out" >&2
  exit 1
fi
echo "built base image $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}'))"
