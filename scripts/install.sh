#!/usr/bin/env bash
# Installs what zkgrid needs to build and test, skipping whatever is already there (safe to re-run):
# pnpm, a Java runtime, ZooKeeper (Debian's package, unless ZOOKEEPER_HOME points at a release), Python's
# kazoo (Debian's python3-kazoo), iproute2 and nftables (test hosts), then the workspace's npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'install: %s\n' "$*"; }

apt_updated=0
# apt_install PKG...: installs with apt-get when we are root on Debian; returns 1 otherwise.
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "cannot install $* here: that needs root and apt-get"
    return 1
  fi
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 update -qq
    apt_updated=1
  fi
  say "apt-get install $*"
  # Another apt-get may hold the dpkg lock: wait for it rather than give up.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "$@" >/dev/null
}

# Node.js: the machine's own; we do not install it.
if ! command -v node >/dev/null 2>&1; then
  say "Node.js >= 20.11 is required and was not found"
  exit 1
fi
say "node $(node --version) present"

# pnpm: corepack cannot fetch it here, npm can.
if command -v pnpm >/dev/null 2>&1; then
  say "pnpm $(pnpm --version) present"
else
  say "installing pnpm 10 (npm i -g pnpm@10)"
  npm i -g pnpm@10 >/dev/null
  say "pnpm $(pnpm --version) installed"
fi

# ZooKeeper: an explicit release wins; otherwise Debian's package (jars in /usr/share/java).
if [ -n "${ZOOKEEPER_HOME:-}" ]; then
  say "ZooKeeper from ZOOKEEPER_HOME=$ZOOKEEPER_HOME"
elif [ -f /usr/share/java/zookeeper.jar ] && [ -f /usr/share/zookeeper/bin/zkEnv.sh ]; then
  say "ZooKeeper present (Debian package $(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo '?'))"
elif apt_install zookeeper; then
  say "ZooKeeper installed (Debian package)"
else
  say "ZooKeeper is missing: run \`apt-get install zookeeper\` as root, or set ZOOKEEPER_HOME to an" \
    "Apache ZooKeeper 3.6+ release"
  exit 1
fi

# Java: the zookeeper package depends on a JRE, a release tarball does not bring one.
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
  say "java from JAVA_HOME=$JAVA_HOME"
elif command -v java >/dev/null 2>&1; then
  say "java present ($(java -version 2>&1 | head -n 1))"
elif apt_install default-jre-headless; then
  say "java installed (default-jre-headless)"
else
  say "Java is missing: run \`apt-get install default-jre-headless\` as root, or set JAVA_HOME"
  exit 1
fi

# Python with kazoo: the protocol's conformance test (tests/conformance) plays submitter and worker in
# Python. Debian's python3-kazoo lands in /usr/bin/python3's dist-packages, so that is the interpreter
# it checks.
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import kazoo' 2>/dev/null; then
  say "python3-kazoo present"
elif apt_install python3-kazoo; then
  say "python3-kazoo installed"
else
  say "python3-kazoo is missing: run \`apt-get install python3-kazoo\` as root (the conformance test needs it)"
  exit 1
fi

# Test hosts (tests/network, @zkgrid/testing's startTestNet): network namespaces, veths and `tc` from
# iproute2, drop rules from nftables. They also need root.
if command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; then
  say "iproute2 present"
elif apt_install iproute2; then
  say "iproute2 installed"
else
  # Only tests/network needs it; everything else still builds and tests without it.
  say "iproute2 is missing: run \`apt-get install iproute2\` as root (tests/network needs it)"
fi
if command -v nft >/dev/null 2>&1; then
  say "nftables present"
elif apt_install nftables; then
  say "nftables installed"
else
  # Only tests/network needs it; everything else still builds and tests without it.
  say "nftables is missing: run \`apt-get install nftables\` as root (tests/network needs it)"
fi

# Chromium for the browser test: CI installs it here, because there the test fails without it.
if [ "${CI:-}" = true ]; then
  if [ -x /usr/bin/chromium ]; then
    say "chromium present"
  elif apt_install chromium; then
    say "chromium installed (Debian package)"
  else
    say "chromium is missing and could not be installed: the browser test will fail"
    exit 1
  fi
fi

# npm dependencies: CI must use the lockfile as committed.
if [ "${CI:-}" = true ]; then
  say "pnpm install --frozen-lockfile"
  pnpm install --frozen-lockfile
else
  say "pnpm install"
  pnpm install
fi
say "done"
