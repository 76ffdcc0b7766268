#!/usr/bin/env bash
# Builds the Strato test guest: a small bootable qcow2 made from Debian packages alone.
#
#   scripts/build-test-template.sh OUTPUT.qcow2
#
# The guest: Debian's kernel (linux-image-*-amd64) and busybox-static, booted by syslinux
# from a FAT partition; everything runs from an initramfs, so the disk is never written.
# On its serial console (ttyS0) it prints
#   STRATO-GUEST-READY             once it is up and will power off on an ACPI shutdown
#   STRATO-GUEST-IP <addr>         when udhcpc got a lease on eth0 (STRATO-GUEST-NO-NIC without one)
#   STRATO-GUEST-DISKS <vda ...>   the virtio disks it sees, again whenever they change
#   STRATO-GUEST-POWEROFF          when the ACPI power button makes it power off
# and keeps running until then.
#
# Needs no root, loop device or mount (mtools writes the FAT partition, syslinux installs
# onto the image file). The .debs are fetched with `apt-get download` (not installed) into
# $STRATO_CACHE_DIR/guest (default ~/.cache/strato/guest) and reused. A re-run with the
# same script and packages does nothing (OUTPUT.inputs records them). Host tools:
# scripts/apt/kvm.txt. Exit status non-zero on any failure; OUTPUT is then left as it was.
set -euo pipefail

out=${1:?usage: $0 OUTPUT.qcow2}
cache=${STRATO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strato}/guest

for tool in apt-get apt-cache dpkg-deb sfdisk mkfs.fat mcopy syslinux cpio gzip qemu-img sha256sum; do
  command -v "$tool" >/dev/null || { echo "build-test-template: $tool not found (scripts/install-system.sh installs it)" >&2; exit 2; }
done
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -r "$mbr" ] || { echo "build-test-template: $mbr missing (package syslinux-common)" >&2; exit 2; }

# -- the packages --------------------------------------------------------------------------
kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kernel_pkg" ] || { echo "build-test-template: apt knows no linux-image-amd64 (run apt-get update)" >&2; exit 2; }
mkdir -p "$cache"
fetch() {  # fetch PACKAGE -> prints the path of its .deb in the cache
  local pkg=$1 version deb
  version=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  deb=$(ls "$cache/${pkg}_"*"${version#*:}"_amd64.deb 2>/dev/null | head -n1 || true)
  if [ -z "$deb" ]; then
    # apt's sandbox user cannot write into root's cache; download as root, quietly
    (cd "$cache" && apt-get download -o APT::Sandbox::User=root "$pkg" >/dev/null)
    deb=$(ls "$cache/${pkg}_"*"${version#*:}"_amd64.deb | head -n1)
  fi
  echo "$deb"
}
kernel_deb=$(fetch "$kernel_pkg")
busybox_deb=$(fetch busybox-static)

inputs="$(sha256sum "$0" | cut -d' ' -f1) $(basename "$kernel_deb") $(basename "$busybox_deb")"
if [ -f "$out" ] && [ "$(cat "$out.inputs" 2>/dev/null)" = "$inputs" ]; then
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/strato-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$kernel_deb" "$work/kernel"
dpkg-deb -x "$busybox_deb" "$work/busybox"
kver=${kernel_pkg#linux-image-}
moddir="$work/kernel/lib/modules/$kver"

# -- the initramfs --------------------------------------------------------------------------
root="$work/initramfs"
mkdir -p "$root"/{bin,sbin,etc/acpi/PWRF,lib/modules,proc,sys,dev,tmp,run,var/log,var/run}
cp "$work/busybox/bin/busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done

# Modules in load order, each after what it depends on (the package has no modules.dep and
# this host may have no depmod: read "depends=" from each module's .modinfo strings).
declare -A loaded=()
order=()
modpath() { find "$moddir" -name "$1.ko" -print -quit; }
add_module() {
  local name=${1//-/_} path dep
  [ -n "${loaded[$name]:-}" ] && return 0
  path=$(modpath "$name")
  [ -n "$path" ] || { echo "build-test-template: kernel $kver has no module $name" >&2; exit 1; }
  loaded[$name]=1
  for dep in $(tr '\0' '\n' < "$path" | sed -n 's/^depends=//p' | tr ',' ' '); do
    add_module "$dep"
  done
  cp "$path" "$root/lib/modules/$name.ko"
  order+=("$name.ko")
}
# virtio bus and PCI transport, disks, NICs (virtio and e1000), the ACPI power button + evdev
for module in virtio_ring virtio virtio_pci virtio_blk virtio_net e1000 button evdev; do
  add_module "$module"
done
printf '%s\n' "${order[@]}" > "$root/etc/modules.load"

cat > "$root/init" <<'INIT'
#!/bin/sh
# PID 1 of the Strato test guest (scripts/build-test-template.sh). Never exits.
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
while read -r module; do insmod "/lib/modules/$module" || echo "STRATO-GUEST-ERROR insmod $module"; done < /etc/modules.load
# acpid reads the power button from evdev nodes, which appear once evdev has bound
n=0
while [ ! -e /dev/input/event0 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
acpid -c /etc/acpi -l /var/log/acpid.log
hostname strato-guest
ip link set lo up
echo "STRATO-GUEST-READY"
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  udhcpc -i eth0 -s /etc/udhcpc.sh -b -T 1 -A 2 >/dev/null 2>&1
else
  echo "STRATO-GUEST-NO-NIC"
fi
disks=""
while :; do
  now=$(cd /sys/block && ls -d vd* 2>/dev/null | tr '\n' ' ')
  if [ "$now" != "$disks" ]; then echo "STRATO-GUEST-DISKS ${now% }"; disks=$now; fi
  sleep 1
done
INIT

cat > "$root/etc/udhcpc.sh" <<'DHCP'
#!/bin/sh
# udhcpc's hook: configure eth0 from the lease and say which address it got
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "${router:-}" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "STRATO-GUEST-IP $ip" > /dev/console ;;
esac
DHCP

cat > "$root/etc/acpi/PWRF/00000080" <<'POWER'
#!/bin/sh
# busybox acpid runs this on the ACPI power button
echo "STRATO-GUEST-POWEROFF" > /dev/console
sync
poweroff -f
POWER
chmod 0755 "$root/init" "$root/etc/udhcpc.sh" "$root/etc/acpi/PWRF/00000080"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 > "$work/initrd.gz"

# -- the disk: MBR + one FAT partition at 1 MiB holding syslinux, kernel and initramfs ----------
cat > "$work/syslinux.cfg" <<'CFG'
DEFAULT guest
PROMPT 0
TIMEOUT 0
LABEL guest
  LINUX /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0 quiet loglevel=3 panic=-1
CFG
kernel_size=$(stat -c %s "$work/kernel/boot/vmlinuz-$kver")
initrd_size=$(stat -c %s "$work/initrd.gz")
part_mib=$(( (kernel_size + initrd_size) / 1048576 + 8 ))
part="$work/part.img"
mkfs.fat -C -F 16 -h 2048 -n STRATO "$part" $((part_mib * 1024)) >/dev/null
syslinux --install "$part"
mcopy -i "$part" "$work/kernel/boot/vmlinuz-$kver" ::/vmlinuz
mcopy -i "$part" "$work/initrd.gz" ::/initrd.gz
mcopy -i "$part" "$work/syslinux.cfg" ::/syslinux.cfg

disk="$work/disk.raw"
truncate -s $(( (part_mib + 1) * 1048576 )) "$disk"
printf 'label: dos\nstart=2048, type=e, bootable\n' | sfdisk -q "$disk"
dd if="$part" of="$disk" bs=1M seek=1 conv=notrunc status=none
dd if="$mbr" of="$disk" bs=440 count=1 conv=notrunc status=none

mkdir -p "$(dirname "$out")"
qemu-img convert -c -f raw -O qcow2 "$disk" "$work/out.qcow2"
mv "$work/out.qcow2" "$out"
echo "$inputs" > "$out.inputs"
