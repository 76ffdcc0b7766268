#!/usr/bin/env bash
# Starts Open vSwitch (ovsdb-server and ovs-vswitchd) if it is not running: there is no systemd
# here. The virtual router tags guest VLANs through OVS's userspace datapath where the kernel
# cannot make 802.1Q devices (plugins/network_vr/ovs.py); it needs no kernel module.
# Idempotent and quiet when both daemons run. Exit 0 when ovs-vsctl answers; non-zero with a
# message on stderr otherwise (not installed: scripts/apt/network.txt).
set -uo pipefail
ctl=/usr/share/openvswitch/scripts/ovs-ctl
rundir=${OVS_RUNDIR:-/var/run/openvswitch}

command -v ovs-vsctl >/dev/null && [ -x "$ctl" ] || {
  echo "openvswitch.sh: Open vSwitch is not installed (openvswitch-switch; run scripts/install-system.sh)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "openvswitch.sh: must run as root" >&2; exit 2; }

alive() {  # daemon name: its pid file names a live process
  local pid
  pid=$(cat "$rundir/$1.pid" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}
if alive ovsdb-server && alive ovs-vswitchd && ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
  exit 0
fi
# ovs-ctl starts whichever is down (a fresh database on first use); the kernel module it tries to
# load is not needed by the userspace datapath, and raising the core-file limit may be refused
if ! log=$("$ctl" --system-id=random start 2>&1); then
  echo "openvswitch.sh: ovs-ctl start failed:" >&2; echo "$log" >&2; exit 1
fi
if ! ovs-vsctl --timeout=10 show >/dev/null 2>&1 || ! alive ovs-vswitchd; then
  echo "openvswitch.sh: Open vSwitch did not come up:" >&2; echo "$log" >&2; exit 1
fi
echo "openvswitch.sh: started ovsdb-server and ovs-vswitchd"
