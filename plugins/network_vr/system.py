"""The system calls the router is built from: commands (iproute2, nft, the daemons) run in
the host or in a router's namespace, and daemons tracked by pid files.

Every failure is raised as ``ResourceUnavailableError`` carrying the command and what it
printed, so the job that asked for the change reports the system's own words.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

from core.errors import ResourceUnavailableError

NETNS_DIR = Path("/run/netns")
#: Linux interface names are at most 15 characters
IFNAMSIZ = 15


class Names:
    """The host-side names of one network's router, all derived from the network's uuid
    (so a rebuild after a crash finds what an earlier process made)."""

    def __init__(self, network_uuid: str, prefix: str = "s"):
        key = network_uuid.replace("-", "")[:10]
        self.key = key
        self.prefix = prefix
        self.namespace = f"strato-{prefix}r-{key}"
        self.bridge = f"{prefix}b{key}"
        self.guest_veth = f"{prefix}g{key}"
        self.public_veth = f"{prefix}p{key}"
        #: in the guest bridge: the VLAN/VXLAN device, or (Open vSwitch tagging) a veth end ...
        self.vlan_link = f"{prefix}v{key}"
        #: ... whose peer is the network's access port on the uplink's OVS bridge
        self.ovs_port = f"{prefix}q{key}"
        for name in (self.bridge, self.guest_veth, self.public_veth, self.vlan_link, self.ovs_port):
            if len(name) > IFNAMSIZ:
                raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ} characters: shorten the prefix")

    def mac(self, role: str) -> str:
        """A stable, locally administered MAC for the router's ``role`` interface."""
        digest = hashlib.sha256(f"{self.key}/{role}".encode()).digest()
        return "02:5e:" + ":".join(f"{b:02x}" for b in digest[:4])


def run(*args: str, ns: str | None = None, input: str | None = None, check: bool = True,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a command (in namespace ``ns`` when given); raise 534 with its output on failure."""
    if ns and args[0] == "ip" and args[1:3] != ("netns", "exec"):
        argv = ["ip", "-n", ns, *args[1:]]  # iproute2 enters the namespace itself: one process less
    else:
        argv = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    try:
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise ResourceUnavailableError(f"{args[0]} is not installed on the management host ({exc})") from None
    except subprocess.TimeoutExpired:
        raise ResourceUnavailableError(f"{' '.join(args)} did not finish within {timeout:.0f} s") from None
    if check and done.returncode != 0:
        where = f" in namespace {ns}" if ns else ""
        output = (done.stderr or done.stdout).strip()
        raise ResourceUnavailableError(f"'{' '.join(args)}'{where} failed (exit {done.returncode}): {output}")
    return done


# -- links and namespaces ---------------------------------------------------------------


def link_exists(name: str, ns: str | None = None) -> bool:
    if ns is None:
        return Path(f"/sys/class/net/{name}").exists()
    return run("ip", "link", "show", "dev", name, ns=ns, check=False).returncode == 0


_KERNEL_VLANS: bool | None = None


def kernel_makes_vlans() -> bool:
    """Whether this kernel can make 802.1Q VLAN devices (found out once per process, by
    trying: a kernel without 8021q that loads no modules answers "Unknown device type")."""
    global _KERNEL_VLANS
    if _KERNEL_VLANS is None:
        probe = f"vlp{os.getpid() % 10**8}"
        run("ip", "link", "add", probe, "type", "veth", "peer", "name", f"{probe}x")
        try:
            _KERNEL_VLANS = run("ip", "link", "add", "link", probe, "name", f"{probe}.5", "type", "vlan", "id", "5",
                                check=False).returncode == 0
        finally:
            run("ip", "link", "delete", probe, check=False)
    return _KERNEL_VLANS


def is_linux_bridge(name: str) -> bool:
    return Path(f"/sys/class/net/{name}/bridge").is_dir()


def has_master(dev: str) -> bool:
    """Whether ``dev`` (in the host) is enslaved to a Linux bridge (an OVS port is not)."""
    return Path(f"/sys/class/net/{dev}/master").exists()


def namespace_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def namespace_pids(name: str) -> list[int]:
    if not namespace_exists(name):
        return []
    done = run("ip", "netns", "pids", name, check=False)
    return [int(p) for p in done.stdout.split() if p.strip().isdigit()]


def delete_namespace(name: str) -> None:
    """Kill every process left in the namespace, then remove it. Idempotent."""
    for pid in namespace_pids(name):
        _kill(pid)
    if namespace_exists(name):
        run("ip", "netns", "delete", name)


def delete_link(name: str) -> None:
    if link_exists(name):
        run("ip", "link", "delete", name, check=False)
        if link_exists(name):
            raise ResourceUnavailableError(f"could not delete interface {name}")


def addresses(dev: str, ns: str | None = None) -> set[str]:
    """The IPv4 addresses (``a.b.c.d/len``) on ``dev``."""
    done = run("ip", "-o", "-4", "addr", "show", "dev", dev, ns=ns, check=False)
    found = set()
    for line in done.stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            found.add(parts[parts.index("inet") + 1])
    return found


def sync_addresses(dev: str, wanted: list[str], ns: str | None = None) -> None:
    """Make ``dev`` carry exactly the addresses ``wanted`` (``a.b.c.d/len``), primary first."""
    present = addresses(dev, ns)
    for address in sorted(present - set(wanted)):
        run("ip", "addr", "del", address, "dev", dev, ns=ns)
    for address in wanted:
        if address not in present:
            run("ip", "addr", "add", address, "dev", dev, ns=ns)


# -- daemons ------------------------------------------------------------------------------


def pid_alive(pid: int, marker: str | None = None) -> bool:
    """True when ``pid`` runs (and its command line contains ``marker``, when given: a
    recycled pid of some other program must not count as ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[-1].startswith("Z"):
        return False
    return marker is None or marker in cmdline


def read_pid(pidfile: Path, marker: str | None = None) -> int | None:
    """The pid in ``pidfile`` when that process is alive (and is ours), else None."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid, marker) else None


def wait_for_pid(pidfile: Path, marker: str, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = read_pid(pidfile, marker)
        if pid is not None:
            return pid
        time.sleep(0.02)
    raise ResourceUnavailableError(f"{marker} did not start within {timeout:.0f} s (no live pid in {pidfile})")


def stop_pidfile(pidfile: Path, marker: str | None = None, timeout: float = 5.0) -> None:
    """Stop the daemon of ``pidfile`` (TERM, then KILL) and remove the file. Idempotent."""
    pid = read_pid(pidfile, marker)
    if pid is not None:
        _kill(pid, timeout)
    pidfile.unlink(missing_ok=True)


def _kill(pid: int, timeout: float = 5.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            _reap(pid)
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _reap(pid)


def _reap(pid: int) -> None:
    # a daemon we started ourselves (Popen) is our child: collect it so it does not linger as a zombie
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def signal_pid(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        raise ResourceUnavailableError(f"process {pid} is gone") from None


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write ``text`` to ``path`` atomically when it differs; True when it was written."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)
    return True
