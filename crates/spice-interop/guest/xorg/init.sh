#!/bin/busybox sh
# Stage one of the X guest (in the initramfs): loads the kernel modules the
# guest needs (qxl, virtio, the root disk's ext4, evdev for Xorg's input),
# mounts the root file system from the virtio disk read-only and hands over
# to its session script, /spice-test/session.sh.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do
    insmod /mods/$m.ko || echo "GUEST ERROR insmod $m" > /dev/ttyS0
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /newroot
if ! mount -t ext4 -o ro /dev/vda /newroot; then
    echo "GUEST ERROR cannot mount the root disk" > /dev/ttyS0
    poweroff -f
fi
for d in dev proc sys; do
    mount --move /$d /newroot/$d
done
exec switch_root /newroot /bin/busybox sh /spice-test/session.sh
