#!/usr/bin/env bash
# Starts virtlogd and libvirtd if they are not running (there is no systemd here), then waits
# until `virsh -c qemu:///system version` answers. Idempotent: a running daemon is left alone.
# Exit status 0 when libvirtd answers; non-zero with a message on stderr otherwise.
# Usage: scripts/services/libvirtd.sh [timeout-seconds (default 30)]
set -euo pipefail
timeout=${1:-30}

for bin in virtlogd libvirtd virsh; do
  command -v "$bin" >/dev/null || { echo "libvirtd.sh: $bin not found (run scripts/install-system.sh)" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "libvirtd.sh: must run as root to start the system daemons" >&2; exit 2; }

# A daemon is "running" when its pid file names a live process. Stale pid files (left by a
# killed daemon) make the daemon refuse to start, so they are removed first.
running() {
  local pidfile=$1 pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then return 0; fi
  rm -f "$pidfile"
  return 1
}

# Without udev /dev/kvm stays root:root 0600. libvirt then judges KVM unusable for the QEMU user
# and re-probes QEMU's capabilities on every call (about 4 s each). Give it the mode Debian's udev
# rule gives it (group kvm), which the libvirt-qemu user is a member of.
if [ -c /dev/kvm ] && [ "$(stat -c %G /dev/kvm)" = root ] && getent group kvm >/dev/null; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

mkdir -p /run/libvirt
running /run/virtlogd.pid || virtlogd -d
running /run/libvirtd.pid || libvirtd -d

deadline=$((SECONDS + timeout))
until virsh -c qemu:///system version >/dev/null 2>&1; do
  if [ $SECONDS -ge $deadline ]; then
    echo "libvirtd.sh: libvirtd did not answer within ${timeout}s:" >&2
    virsh -c qemu:///system version >&2 || true
    exit 1
  fi
  sleep 0.2
done
