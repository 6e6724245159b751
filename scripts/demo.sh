#!/usr/bin/env bash
# Builds and runs the test-card demo; opens remote-viewer on it when a desktop is available.
# Usage: scripts/demo.sh [spice-demo flags, e.g. --port 5900 --password secret]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

ensure_packages virt-viewer
ensure_rust
cargo build --release -p spice-demo

port=5900
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[$i]}" = "--port" ] && port="${args[$((i + 1))]:-5900}"
done

./target/release/spice-demo "$@" &
demo=$!
trap 'kill $demo 2>/dev/null' EXIT INT TERM
sleep 1
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && command -v remote-viewer >/dev/null; then
    remote-viewer "spice://127.0.0.1:$port" &
fi
wait $demo
