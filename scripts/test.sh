#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, fuzz-corpus replay, and the
# interop tests against the real spice-gtk client. Installs what they need.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

# spice-gtk through GObject introspection, driven by Debian's /usr/bin/python3;
# remote-viewer in a private Xvfb, screenshots through GDK; the C library and its
# headers for the drop-in's layout and differential tests; QEMU as the host;
# mke2fs (e2fsprogs) for the Xorg guest's root disk; libopus (through
# pkg-config) for Opus audio; spice-html5 in headless Chromium through selenium;
# Cyrus SASL (libsasl2-dev to link, the mechanisms, saslpasswd2 for a sasldb);
# GStreamer for VP8/H.264 streams (the headers to link; vp8enc/vp8dec in
# -good, x264enc in -ugly, and spice-gtk's H.264 decoder "h264parse ! avdec_h264"
# from -bad and -libav); libjpeg62-turbo-dev to link libjpeg for MJPEG frames and JPEG images.
ensure_packages python3-gi gir1.2-spiceclientglib-2.0 virt-viewer xvfb gir1.2-gtk-3.0 gdb \
    libspice-server-dev libspice-server1 qemu-system-x86 gcc e2fsprogs libpixman-1-dev libglib2.0-dev openssl \
    libopus-dev pkg-config chromium chromium-driver python3-selenium spice-html5 \
    libsasl2-dev sasl2-bin libsasl2-modules libjpeg62-turbo-dev \
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly \
    gstreamer1.0-plugins-bad gstreamer1.0-libav
ensure_rust

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo xtask capi (libspice-server.so.1)"
cargo xtask capi
echo "==> cargo test"
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-2}"
echo "==> all tests passed"
