"""802.1Q tagging through Open vSwitch, for hosts whose kernel cannot make VLAN devices
(no 8021q, no modules) — OVS's userspace datapath (``datapath_type=netdev``) tags in
ovs-vswitchd and needs no kernel module.

The shape, per guest uplink: one OVS bridge owns the uplink as a trunk port (the uplink's
own bridge when the label names an OVS bridge or a port of one, else a ``netdev`` bridge
Strato makes, ``<prefix>k<hash of the uplink>``, which stays while the host runs: it is the
uplink's configuration, not any one network's). Each VLAN network joins it through a veth
pair: one end in the network's Linux guest bridge, the other an access port ``tag=<vlan>``.

The userspace datapath reads and writes frames through packet sockets and never completes
checksums a sender left to the hardware ("checksum offload"): every end that transmits
towards an OVS port has its tx checksumming switched off (``ethtool -K <dev> tx off``), so
the kernel completes the checksum before the frame reaches OVS.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from core.errors import ResourceUnavailableError

from . import system

#: where ovsdb-server's socket is (Debian's default; OVS_RUNDIR moves it, as for ovs-vsctl)
RUN_DIR = Path(os.environ.get("OVS_RUNDIR", "/var/run/openvswitch"))


def vsctl(*args: str, check: bool = True, timeout: int = 10):
    return system.run("ovs-vsctl", f"--timeout={timeout}", *args, check=check, timeout=timeout + 5)


def reachable() -> bool:
    """Whether ovs-vsctl is installed and ovsdb-server and ovs-vswitchd run (their pid
    files; no process started). Without ovs-vswitchd every ovs-vsctl change would wait
    for its timeout."""
    return (shutil.which("ovs-vsctl") is not None and (RUN_DIR / "db.sock").exists()
            and all(system.read_pid(RUN_DIR / f"{daemon}.pid", daemon) for daemon in ("ovsdb-server", "ovs-vswitchd")))


def require(why: str) -> None:
    """Raise 534 saying what needs OVS when it is not running."""
    if not reachable():
        raise ResourceUnavailableError(
            f"{why} needs Open vSwitch, which is not running here (no live ovsdb-server and ovs-vswitchd with "
            f"pid files in {RUN_DIR}): install openvswitch-switch and start both (scripts/services/openvswitch.sh)")


def is_bridge(name: str) -> bool:
    return vsctl("br-exists", name, check=False).returncode == 0


def bridge_of(name: str) -> str | None:
    """The OVS bridge the port ``name`` belongs to, or None."""
    done = vsctl("port-to-br", name, check=False)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def trunk_name(uplink: str, prefix: str) -> str:
    return f"{prefix}k{hashlib.sha256(uplink.encode()).hexdigest()[:10]}"


def trunk_bridge(uplink: str, prefix: str) -> str:
    """The OVS bridge carrying ``uplink``'s tagged frames, made (userspace datapath, the
    uplink a trunk port of it) when the uplink is neither an OVS bridge nor a port of one."""
    if is_bridge(uplink):
        return uplink
    existing = bridge_of(uplink)
    if existing:
        return existing
    bridge = trunk_name(uplink, prefix)
    vsctl("--may-exist", "add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev",
          "--", "--may-exist", "add-port", bridge, uplink)
    return bridge


def port(name: str) -> tuple[str, int | None] | None:
    """(bridge, tag) of the OVS port ``name`` (tag None: untagged), or None when it is no port."""
    bridge = bridge_of(name)
    if bridge is None:
        return None
    tag = vsctl("get", "Port", name, "tag").stdout.strip()
    return bridge, int(tag) if tag.isdigit() else None


def attach(bridge: str, name: str, tag: int | None) -> None:
    """Make ``name`` a port of ``bridge``: an access port of VLAN ``tag``, or untagged."""
    current = bridge_of(name)
    if current is not None and current != bridge:
        vsctl("del-port", current, name)
    setting = ["set", "Port", name, f"tag={tag}"] if tag is not None else ["clear", "Port", name, "tag"]
    vsctl("--may-exist", "add-port", bridge, name, "--", *setting)


def detach(*names: str) -> None:
    """Remove the ports ``names`` from whatever OVS bridge has them. Idempotent; nothing to
    do (and no process started) when OVS is not installed or not running."""
    if not names or not reachable():
        return
    args: list[str] = []
    for name in names:
        args += ["--", "--if-exists", "del-port", name]
    vsctl(*args[1:])


def no_tx_checksum(dev: str, ns: str | None = None) -> None:
    """Let the kernel complete the checksums of frames ``dev`` sends (see the module docstring)."""
    system.run("ethtool", "-K", dev, "tx", "off", ns=ns)
