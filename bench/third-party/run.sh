#!/usr/bin/env bash
# Third-party load check: Tsung (Debian's `tsung`, Erlang) against examples/echo and a raw
# warp::ws echo, server pinned to CPU 0 and Tsung to CPU 1. Server CPU per message for 64 B and
# 16 KiB echoes, and VmRSS per idle connection at 5,000. Writes docs/third-party-load.md.
#
#   bash bench/third-party/run.sh                 # 5 rounds, 5,000 idle connections (~4 min)
#   bash bench/third-party/run.sh --rounds 3 --idle 0 --no-write   # echo only, print only
#   bash bench/third-party/run.sh --no-build      # use the binaries already in target/release
#
# Other options go to tsung_load.py (--help). Needs root for the one-time `apt-get install`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

# Debian 12 (bookworm) ships tsung 1.7.0-3.1; pin it so that every run uses the same client.
TSUNG_PIN=1.7.0-3.1

build=1
args=()
for arg in "$@"; do
    case $arg in
        --no-build) build=0 ;;
        *) args+=("$arg") ;;
    esac
done

if ! command -v tsung >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "tsung is not installed; as root: apt-get install tsung=$TSUNG_PIN" >&2
        exit 1
    fi
    echo "installing tsung $TSUNG_PIN (Debian package, with Erlang)" >&2
    apt-get update -qq
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "tsung=$TSUNG_PIN"; then
        echo "tsung $TSUNG_PIN is not available here; installing the candidate version" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tsung
    fi
fi
have=$(dpkg-query -W -f='${Version}' tsung 2>/dev/null || echo "?")
if [ "$have" != "$TSUNG_PIN" ]; then
    echo "note: tsung $have installed, not the pinned $TSUNG_PIN (the report records the version)" >&2
fi
for tool in taskset python3 pgrep; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool is required" >&2; exit 1; }
done

if [ "$build" = 1 ]; then
    # A rebuild replaces binaries that a running benchmark may still re-execute: wait first
    # for anyone else's benchmark (at most 15 minutes; the measurements wait again before
    # every run, and flag a run that could not wait).
    python3 "$here/tsung_load.py" --wait-quiet --max-wait 900 || true
    (cd "$root" && cargo build --release --example echo -p warpsocket && cargo build --release -p ws-bench)
fi

# 5,000 connections on each side.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec python3 "$here/tsung_load.py" ${args[@]+"${args[@]}"}
