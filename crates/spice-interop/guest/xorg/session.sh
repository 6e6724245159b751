#!/bin/busybox sh
# Stage two of the X guest (on the read-only root disk): Xorg on the qxl
# driver with twm, an xterm, xclock and xeyes, spice-vdagentd and the
# session's spice-vdagent, then commands over the serial port. Every line
# the harness reads starts with "GUEST ". Commands, one per line on ttyS0:
#   xrandr        the screen's current size: "GUEST XRANDR WxH", then each
#                 output line of xrandr as "GUEST XRANDR-OUT ..."
#   preferred     probes the outputs (the kernel's qxl driver learns the
#                 client's size from the device) and prints the first
#                 connected output's preferred mode: "GUEST PREFERRED WxH"
#   auto          sets that output to its preferred mode, as a desktop
#                 environment does when the kernel reports a hotplug
#   x11perf ARGS  runs x11perf with ARGS; its result lines as
#                 "GUEST X11PERF ...", then "GUEST DONE x11perf STATUS"
#   type TEXT     types TEXT into the focused window (xdotool)
#   sh COMMAND    runs COMMAND; its output lines as "GUEST OUT ..."
#   off           power off
# Each command ends with "GUEST DONE <command>".
bb=/bin/busybox
$bb mkdir -p /run
$bb mount -t tmpfs run /run
$bb mkdir -p /run/bin
$bb --install -s /run/bin
export PATH=/usr/bin:/usr/sbin:/usr/lib/xorg:/run/bin
for d in /tmp /var /root /home; do mount -t tmpfs tmp $d; done
chmod 1777 /tmp
mkdir -p /tmp/.X11-unix /var/log /var/lib/xkb /var/run /run/spice-vdagentd /run/user/0 /dev/virtio-ports
chmod 1777 /tmp/.X11-unix
chmod 700 /run/user/0
# xterm needs pseudo-terminals.
mkdir -p /dev/pts
mount -t devpts -o ptmxmode=0666 devpts /dev/pts
[ -c /dev/ptmx ] || ln -sf pts/ptmx /dev/ptmx
stty -F /dev/ttyS0 raw -echo 2>/dev/null
say() { echo "GUEST $*" > /dev/ttyS0; }
syslogd -O /var/log/messages
# No udev: the agent's port gets its well-known name by hand.
for p in /sys/class/virtio-ports/*; do
    [ -e "$p/name" ] && [ "$(cat "$p/name")" = com.redhat.spice.0 ] &&
        ln -sf "/dev/$(basename "$p")" /dev/virtio-ports/com.redhat.spice.0
done
# No udev either for Xorg's input: every event device is listed. The PS/2
# mouse is probed after its module loads: wait for it (up to 10 s), or Xorg
# would start without a core pointer.
i=0
until grep -q Mouse /proc/bus/input/devices || [ $i -gt 50 ]; do
    sleep 0.2
    i=$((i+1))
done
{
    echo 'Section "ServerFlags"'
    echo '    Option "AutoAddDevices" "off"'
    echo '    Option "AutoAddGPU" "off"'
    echo 'EndSection'
    echo 'Section "Device"'
    echo '    Identifier "qxl"'
    echo '    Driver "qxl"'
    echo 'EndSection'
    echo 'Section "Screen"'
    echo '    Identifier "screen"'
    echo '    Device "qxl"'
    echo '    DefaultDepth 24'
    echo 'EndSection'
    for e in /dev/input/event*; do
        [ -e "$e" ] || continue
        echo 'Section "InputDevice"'
        echo "    Identifier \"$(basename "$e")\""
        echo '    Driver "evdev"'
        echo "    Option \"Device\" \"$e\""
        echo 'EndSection'
    done
    echo 'Section "ServerLayout"'
    echo '    Identifier "layout"'
    echo '    Screen "screen"'
    # Without a device marked core Xorg adds a default "kbd" one of its own.
    for e in /dev/input/event*; do
        [ -e "$e" ] || continue
        case "$(cat "/sys/class/input/$(basename "$e")/device/name")" in
        *[Kk]eyboard*) role=' "CoreKeyboard"' ;;
        *[Mm]ouse*) role=' "CorePointer"' ;;
        *) role= ;;
        esac
        echo "    InputDevice \"$(basename "$e")\"$role"
    done
    echo 'EndSection'
} > /run/xorg.conf
export HOME=/root SHELL=/bin/sh USER=root DISPLAY=:0 XDG_RUNTIME_DIR=/run/user/0 NO_AT_BRIDGE=1
# The same picture on every boot: the clock shows the same time.
date -s "2024-01-01 10:08:00" > /dev/null
Xorg :0 -config /run/xorg.conf -logfile /var/log/Xorg.0.log -nolisten tcp -noreset vt1 > /var/log/Xorg.out 2>&1 &
i=0
until xsetroot -solid "#306090" 2>/dev/null; do
    sleep 0.2
    i=$((i+1))
    if [ $i -gt 300 ] || ! pidof Xorg > /dev/null; then
        say "ERROR Xorg did not start: $(grep EE /var/log/Xorg.0.log | tr '\n' '|')"
        poweroff -f
    fi
done
if [ -e /dev/virtio-ports/com.redhat.spice.0 ]; then
    spice-vdagentd -x -X > /var/log/vdagentd.log 2>&1 &
fi
# Debian's own twmrc is made by the menu package's trigger: a plain one.
# Windows move opaquely and without a server grab, so the guest still
# answers commands while a window is dragged.
cat > /run/twmrc <<'TWMRC'
NoGrabServer
OpaqueMove
RandomPlacement
BorderWidth 2
TitleFont "fixed"
MenuFont "fixed"
IconFont "fixed"
Color
{
    BorderColor "gray30"
    TitleBackground "gray70"
    TitleForeground "black"
}
TWMRC
twm -f /run/twmrc > /var/log/twm.log 2>&1 &
cd /root
xterm -geometry 80x24+20+20 > /var/log/xterm.log 2>&1 &
xclock -geometry 160x160+600+20 > /dev/null 2>&1 &
xeyes -geometry 160x100+600+240 > /dev/null 2>&1 &
if [ -e /dev/virtio-ports/com.redhat.spice.0 ]; then
    (sleep 1; spice-vdagent -x -d > /var/log/vdagent.log 2>&1) &
fi
# The desktop is up once its windows are mapped (polled: busybox's timeout
# leaves its watcher behind, which could kill a reused pid later).
for class in XTerm XClock XEyes; do
    i=0
    until xdotool search --onlyvisible --class "$class" > /dev/null 2>&1; do
        sleep 0.2
        i=$((i+1))
        if [ $i -gt 300 ]; then
            say "MISSING $class window; $(ps | grep -v '\[' | tr '\n' '|')"
            break
        fi
    done
done
current() { xrandr --current 2>/dev/null | sed -n 's/.*current \([0-9]*\) x \([0-9]*\),.*/\1x\2/p'; }
say "READY $(current)"
while read -r cmd a < /dev/ttyS0; do
    case "$cmd" in
    xrandr)
        say "XRANDR $(current)"
        xrandr --current 2>&1 | while read -r line; do say "XRANDR-OUT $line"; done
        ;;
    preferred)
        say "PREFERRED $(xrandr | awk '/ connected/ { c = 1; next } /^[^ ]/ { c = 0 } c && /\+/ { print $1; exit }')"
        ;;
    auto)
        xrandr --output "$(xrandr | awk '/ connected/ { print $1; exit }')" --auto
        ;;
    x11perf)
        # shellcheck disable=SC2086 # the arguments are x11perf's words
        x11perf $a > /tmp/x11perf.log 2>&1
        status=$?
        grep -E 'reps|trep|ERROR|error' /tmp/x11perf.log | while read -r line; do say "X11PERF $line"; done
        say "DONE x11perf $status"
        continue
        ;;
    type)
        xdotool type --delay 20 "$a"
        ;;
    sh)
        sh -c "$a" 2>&1 | while read -r line; do say "OUT $line"; done
        ;;
    off)
        say "DONE off"
        poweroff -f
        ;;
    *)
        say "ERROR unknown command $cmd"
        continue
        ;;
    esac
    say "DONE $cmd"
done
say "ERROR serial closed"
poweroff -f
