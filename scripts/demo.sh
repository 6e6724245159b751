#!/usr/bin/env bash
# Builds and runs the test-card demo; opens remote-viewer on it when a desktop is available.
# Usage: scripts/demo.sh [spice-demo flags, e.g. --port 5900 --password secret]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

# remote-viewer, and the GStreamer elements spice-gtk plays the demo's key
# tones with ("appsrc ! audioconvert ! audioresample ! autoaudiosink"):
# plugins-base has the first three, plugins-good autoaudiosink and the
# PulseAudio/PipeWire sink, gstreamer1.0-alsa the sink for machines without a
# sound server. Without them no tone plays and every key makes remote-viewer
# print GStreamer criticals. libopus-dev and pkg-config: the server links
# Debian's libopus for Opus audio.
ensure_packages virt-viewer gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-alsa \
    libopus-dev pkg-config
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
    # Its GTK and GStreamer chatter goes to a file, not over the demo's log.
    log=target/remote-viewer.log
    echo "==> remote-viewer spice://127.0.0.1:$port (its messages: $log)"
    remote-viewer "spice://127.0.0.1:$port" >"$log" 2>&1 &
fi
wait $demo
