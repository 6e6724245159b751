#!/bin/busybox sh
# init of the test guest: Debian's kernel on the qxl DRM driver (fbcon on
# its framebuffer), driven over the serial port. Every line the harness
# reads starts with "GUEST ". Commands, one per line on ttyS0:
#   scroll N      print N lines of log-like text on the console (tty1)
#   idle S        do nothing for S seconds
#   modes         the qxl connector's mode list and the framebuffer size
#   agent         open the agent's virtio-serial port (QEMU then attaches
#                 the agent to the server) and read it, as an idle agent
#   tone S        play S seconds of a 500 Hz square wave on the sound card
#                 (intel-hda, through the kernel's OSS emulation: /dev/dsp
#                 takes unsigned 8-bit mono at 8 kHz by default)
#   video N [F]   write N frames of a photographic video into the framebuffer
#                 with dd, as a framebuffer player would: /video holds 10
#                 frames, each 160 whole rows of a 1024-pixel framebuffer
#                 (B, G, R, x), written from row 320 on (seek=2 frames);
#                 with F, at F frames a second as a player paces a video
#                 (frame i is due i/F s after the first), else back to back
#   off           power off
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do
    insmod /mods/$m.ko || echo "GUEST ERROR insmod $m" > /dev/ttyS0
done
# The qxl framebuffer takes over the console.
i=0
while [ ! -e /sys/class/graphics/fb0/virtual_size ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
stty -F /dev/ttyS0 raw -echo 2>/dev/null
echo "GUEST READY $(cat /sys/class/graphics/fb0/virtual_size)" > /dev/ttyS0
while read -r cmd a < /dev/ttyS0; do
    case "$cmd" in
    scroll)
        i=0
        while [ $i -lt "$a" ]; do
            echo "[$i] kernel: audit: type=1400 op=open pid=$((i * 7 % 9973)) comm=\"worker/$((i % 13))\" name=\"/var/log/syslog.$((i % 5))\" result=$((i % 3))"
            i=$((i+1))
        done > /dev/tty1
        echo "GUEST DONE scroll $a" > /dev/ttyS0
        ;;
    idle)
        sleep "$a"
        echo "GUEST DONE idle $a" > /dev/ttyS0
        ;;
    modes)
        for c in /sys/class/drm/card0-*; do
            echo "GUEST MODES $(basename "$c") $(cat "$c/status") $(head -n 1 "$c/modes" 2>/dev/null)" > /dev/ttyS0
        done
        echo "GUEST FB $(cat /sys/class/graphics/fb0/virtual_size)" > /dev/ttyS0
        echo "GUEST DONE modes" > /dev/ttyS0
        ;;
    agent)
        port=$(ls /dev/vport*p1 2>/dev/null | head -n 1)
        if [ -z "$port" ]; then
            echo "GUEST ERROR no virtio-serial port" > /dev/ttyS0
        else
            cat "$port" > /dev/null &
            echo "GUEST DONE agent $port" > /dev/ttyS0
        fi
        ;;
    tone)
        i=0
        while [ ! -e /dev/dsp ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        if [ ! -e /dev/dsp ]; then
            echo "GUEST ERROR no /dev/dsp" > /dev/ttyS0
        else
            # One period: 8 samples at +32, 8 at -32; doubled 9 times, 1.02 s.
            printf '\240\240\240\240\240\240\240\240\140\140\140\140\140\140\140\140' > /tone
            for k in 1 2 3 4 5 6 7 8 9; do cat /tone /tone > /tone2; mv /tone2 /tone; done
            j=0
            while [ $j -lt "$a" ]; do cat /tone; j=$((j+1)); done > /dev/dsp
            echo "GUEST DONE tone $a" > /dev/ttyS0
        fi
        ;;
    video)
        stride=$(cat /sys/class/graphics/fb0/stride)
        if [ "$stride" != 4096 ]; then
            echo "GUEST ERROR video needs a 1024-pixel framebuffer, not stride $stride" > /dev/ttyS0
        else
            set -- $a
            frames=$1
            fps=${2:-0}
            # Centiseconds since boot (never below a second here, so the
            # fraction's leading zero cannot make the number octal).
            read up _ < /proc/uptime
            start=$(( ${up%.*} * 100 + 1${up#*.} - 100 ))
            i=0
            while [ $i -lt "$frames" ]; do
                dd if=/video of=/dev/fb0 bs=655360 skip=$((i % 10)) seek=2 count=1 2>/dev/null
                i=$((i+1))
                if [ "$fps" -gt 0 ]; then
                    read up _ < /proc/uptime
                    now=$(( ${up%.*} * 100 + 1${up#*.} - 100 ))
                    ahead=$(( start * 10000 + i * 1000000 / fps - now * 10000 ))
                    [ $ahead -gt 0 ] && usleep $ahead
                fi
            done
            echo "GUEST DONE video $a" > /dev/ttyS0
        fi
        ;;
    off)
        echo "GUEST DONE off" > /dev/ttyS0
        poweroff -f
        ;;
    *)
        echo "GUEST ERROR unknown command $cmd" > /dev/ttyS0
        ;;
    esac
done
echo "GUEST ERROR serial closed" > /dev/ttyS0
poweroff -f
