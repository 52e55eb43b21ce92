#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test against a real
# redis-server and a real local Redis Cluster (started and stopped by the
# tests themselves, on free loopback ports; the cluster tests also need
# redis-cli, and the HTTP cache tests the curl binary). Installs
# redis-server, redis-tools and curl when missing and we are root.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server, redis-cli or curl not found: installing them with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq redis-server redis-tools curl >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server redis-tools curl >/dev/null; }
    # Package scripts may start a system service; the tests start their own.
    (service redis-server stop || /etc/init.d/redis-server stop) >/dev/null 2>&1 || true
  else
    echo "error: redis-server, redis-cli and curl are required by the tests but are not all installed." >&2
    echo "  Debian/Ubuntu: sudo apt-get install -y redis-server redis-tools curl" >&2
    echo "  macOS:         brew install redis curl" >&2
    exit 1
  fi
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --quiet
cargo test --workspace --all-features
