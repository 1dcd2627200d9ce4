#!/usr/bin/env bash
# Builds the lab VM's boot files into the directory OUT (created here): `vmlinuz` (Debian's kernel, ip_vs as modules) and
# `initramfs.gz` (busybox-static, the modules the lab needs, tests/vm/init as /init).
# Usage: build-image.sh OUT KERNEL_PACKAGE
# Needs: apt-get (the package lists), dpkg-deb, depmod (kmod), cpio, gzip, /bin/busybox (busybox-static).
set -euo pipefail
out=$1 pkg=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${out}.build.XXXXXX")  # beside OUT: same filesystem, so the final rename is atomic
trap 'rm -rf "$work"' EXIT

cd "$work"
apt-get download "$pkg" >/dev/null 2>apt.err || {
    cat apt.err >&2
    echo "lab: cannot download $pkg (is 'apt-get update' done?)" >&2
    exit 1
}
dpkg-deb -x ./*.deb deb
kver=$(ls deb/lib/modules)
src=deb/lib/modules/$kver
root=initramfs
mkdir -p $root/bin $root/proc $root/sys $root/dev $root/mnt $root/lib/modules/"$kver"
cp /bin/busybox $root/bin/busybox
cp "$here/init" $root/init
chmod +x $root/init

# Only what the lab uses: networking (minus radios), 9p/overlay, virtio, veth, loop and device-mapper (hbeat's
# quorum-disk scenario suspends a dm device), libraries and crypto.
dst=$root/lib/modules/$kver
for d in kernel/net kernel/fs/9p kernel/fs/fscache kernel/fs/netfs kernel/fs/overlayfs kernel/drivers/virtio \
         kernel/drivers/net/veth.ko kernel/drivers/block/loop.ko kernel/drivers/md/dm-mod.ko kernel/drivers/dax \
         kernel/lib kernel/crypto kernel/arch/x86/crypto; do
    [ -e "$src/$d" ] || continue
    mkdir -p "$dst/$(dirname "$d")"
    cp -a "$src/$d" "$dst/$d"
done
rm -rf "$dst"/kernel/net/{wireless,mac80211,bluetooth,mac802154,ieee802154,nfc,6lowpan,rfkill}
cp "$src"/modules.order "$src"/modules.builtin* "$dst"/
depmod -b "$root" "$kver"

(cd $root && find . | cpio -o -H newc --quiet) | gzip -1 > initramfs.gz
cp deb/boot/vmlinuz-"$kver" vmlinuz
echo "$kver" > kernel-version
# Appears whole or not at all: several builds may race (parallel tests on a fresh machine); the first
# rename wins and the others find the image there.
mkdir image
mv vmlinuz initramfs.gz kernel-version image/
mv -T image "$out" 2>/dev/null || [ -f "$out/kernel-version" ]
