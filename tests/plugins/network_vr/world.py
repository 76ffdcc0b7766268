"""A small world of network namespaces for the virtual router's tests.

* ``internet``: a namespace on the public bridge at 198.51.100.1 (TEST-NET-2, the public
  ranges' gateway), with a web server that answers with the caller's address;
* guests: a namespace per guest NIC, on a network's guest bridge with the NIC's MAC,
  taking its address with busybox udhcpc;
* Open vSwitch bridges (userspace datapath) for 802.1Q: another host's switch behind a
  trunk, guests as access ports of a VLAN, a capture of the tags on a trunk;
* helpers to run servers and clients in them.

Only addresses inside these namespaces are ever used. Everything made is recorded and
removed by ``close()`` (the fixture calls it even when the test fails); ``sweep()`` removes
what an interrupted earlier run left (names start with ``tw`` / ``strato-tr-``; OVS bridges
``tw...`` and the routers' trunk bridges ``tk...``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

PUBLIC_NET = "198.51.100.0/24"
PUBLIC_GATEWAY = "198.51.100.1"
#: the routers' interface names in tests (the element's ``prefix``)
ROUTER_PREFIX = "t"

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    printf '{"ip": "%s", "mask": "%s", "router": "%s", "dns": "%s", "hostname": "%s", "domain": "%s"}\\n' \\
      "$ip" "$mask" "$router" "$dns" "$hostname" "$domain" > "$LEASE_FILE" ;;
esac
exit 0
"""

ECHO_SERVER = r"""
import http.server, socketserver, sys
name, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if "Cookie" not in self.headers:
            self.send_header("Set-Cookie", f"app={name}")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
S(("0.0.0.0", port), H).serve_forever()
"""


def sh(*args: str, check: bool = True, timeout: float = 30, input: str | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, input=input)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
    return done


def missing_tools() -> list[str]:
    return [t for t in ("ip", "nft", "dnsmasq", "busybox", "curl", "haproxy", "openvpn", "openssl")
            if shutil.which(t) is None]


def ovs_running() -> bool:
    """Do ovsdb-server and ovs-vswitchd answer (scripts/services/openvswitch.sh starts them)?"""
    from plugins.network_vr import ovs

    return ovs.reachable() and sh("ovs-vsctl", "--timeout=5", "show", check=False).returncode == 0


#: one file per open World, named by its tag, holding its process's pid: another test run's
#: sweep leaves a live world (and, while any lives, the routers) alone
LIVE_WORLDS = Path(tempfile.gettempdir()) / "strato-test-worlds"


def _live_tags() -> set[str]:
    tags = set()
    for entry in LIVE_WORLDS.glob("*"):
        try:
            os.kill(int(entry.read_text()), 0)
            tags.add(entry.name)
        except (ValueError, ProcessLookupError, FileNotFoundError):
            entry.unlink(missing_ok=True)
    return tags


def _leftover(name: str, live: set[str]) -> bool:
    """Whether ``name`` (a namespace, link or OVS bridge) is a test's and nobody's any more."""
    world = re.match(r"^tw-?([0-9a-f]{4})", name)
    if world:
        return world.group(1) not in live
    router = re.match(rf"^(strato-{ROUTER_PREFIX}r-[0-9a-f]{{10}}|{ROUTER_PREFIX}[bgpvqk][0-9a-f]{{10}})$", name)
    return bool(router) and not live  # routers carry no world's tag: only when no test runs anywhere


def _ovs_bridges() -> list[str]:
    return sh("ovs-vsctl", "list-br").stdout.split() if ovs_running() else []


def sweep() -> None:
    """Remove the namespaces, links and OVS bridges interrupted runs of these tests left
    behind (those of runs still going are theirs)."""
    live = _live_tags()
    for bridge in _ovs_bridges():
        if _leftover(bridge, live):
            sh("ovs-vsctl", "--if-exists", "del-br", bridge, check=False)
    for name in sh("ip", "netns", "list", check=False).stdout.split():
        if _leftover(name, live):
            for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "delete", name, check=False)
    for link in json.loads(sh("ip", "-j", "link", "show", check=False).stdout or "[]"):
        name = link.get("ifname", "")
        if _leftover(name, live):
            sh("ip", "link", "delete", name, check=False)


class Guest:
    """A namespace with one interface on a bridge: a guest NIC as the router sees it."""

    def __init__(self, world: World, name: str, bridge: str, mac: str, vlan: int | None = None):
        self.world, self.name, self.mac = world, name, mac
        self.ns = world.namespace(name)
        self.dev = world.veth_into(self.ns, bridge, mac=mac, vlan=vlan)
        self.lease: dict | None = None

    def dhcp(self, timeout: float = 15) -> dict:
        """Take a lease with udhcpc (applying it to the interface); the lease's fields."""
        lease_file = self.world.tmp / f"lease-{self.name}.json"
        lease_file.unlink(missing_ok=True)
        script = self.world.tmp / "udhcpc.sh"
        if not script.exists():
            script.write_text(UDHCPC_SCRIPT)
            script.chmod(0o755)
        env = {**os.environ, "LEASE_FILE": str(lease_file)}
        tries = max(1, int(timeout) - 1)
        try:
            done = subprocess.run(["ip", "netns", "exec", self.ns, "busybox", "udhcpc", "-i", self.dev, "-n", "-q",
                                   "-f", "-t", str(tries), "-T", "1", "-s", str(script), "-x",
                                   f"hostname:{self.name}"], capture_output=True, text=True, timeout=timeout + 5,
                                  env=env)
            output = f"{done.stdout} {done.stderr}"
        except subprocess.TimeoutExpired as exc:
            output = f"udhcpc did not finish: {exc}"
        if not lease_file.exists():
            raise AssertionError(f"guest {self.name} got no lease: {output}")
        self.lease = json.loads(lease_file.read_text())
        return self.lease

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.ns, *args, check=check, timeout=timeout)

    def serve_http(self, port: int = 80) -> None:
        self.world.spawn(self.ns, [sys.executable, "-c", ECHO_SERVER, self.name, str(port)])
        self.world.wait_listening(self.ns, port)

    def get(self, url: str, timeout: float = 3, **kw) -> str | None:
        return self.world.get(self.ns, url, timeout=timeout, **kw)

    def neighbour_mac(self, ip: str) -> str | None:
        """The MAC this guest learnt for ``ip`` after pinging it (None: no answer)."""
        self.run("busybox", "ping", "-c", "1", "-W", "2", ip, check=False)
        for entry in json.loads(self.run("ip", "-j", "neigh", "show", ip).stdout or "[]"):
            if entry.get("lladdr") and "FAILED" not in entry.get("state", []):
                return entry["lladdr"]
        return None


class TrunkCapture:
    """Frames seen on a host device while the ``with`` block runs, as (vlan or None, source
    MAC, destination MAC): a raw packet socket, the 802.1Q tag read from the frame or, where
    the kernel took it off on receipt, from the socket's auxiliary data."""

    SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 1 << 4

    def __init__(self, dev: str):
        self.frames: list[tuple[int | None, str, str]] = []
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
        self._sock.setsockopt(self.SOL_PACKET, self.PACKET_AUXDATA, 1)
        self._sock.bind((dev, 0))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> TrunkCapture:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _, _ = self._sock.recvmsg(65535, socket.CMSG_SPACE(32))
            except socket.timeout:
                continue
            vlan = struct.unpack("!H", data[14:16])[0] & 0xFFF if data[12:14] == b"\x81\x00" else None
            for level, kind, payload in ancillary:
                if level == self.SOL_PACKET and kind == self.PACKET_AUXDATA:
                    status, _, _, _, _, tci, _ = struct.unpack("IIIHHHH", payload[:20])
                    if status & self.TP_STATUS_VLAN_VALID:
                        vlan = tci & 0xFFF
            self.frames.append((vlan, data[6:12].hex(":"), data[0:6].hex(":")))

    def vlans_from(self, mac: str) -> set[int | None]:
        """The tags of the frames sent by ``mac``."""
        return {vlan for vlan, source, _ in self.frames if source == mac.lower()}


class World:
    def __init__(self):
        self.tag = uuid.uuid4().hex[:4]
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.ovs_bridges: list[str] = []
        #: the ends of ``wire()`` cables a router may have made a trunk port of
        self.trunks: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.tmp = Path(tempfile.mkdtemp(prefix=f"tw-{self.tag}-"))
        LIVE_WORLDS.mkdir(exist_ok=True)
        (LIVE_WORLDS / self.tag).write_text(str(os.getpid()))
        self._n = 0
        self.public_bridge = self.bridge("p")
        self.internet, self.internet_dev = self.internet_on(self.public_bridge, "inet", "internet")
        # a second address on the internet side, for source-CIDR firewall rules
        sh("ip", "-n", self.internet, "addr", "add", "198.51.100.200/24", "dev", self.internet_dev)
        self.spawn(self.internet, [sys.executable, "-c", ECHO_SERVER, "internet", "8001"])
        self.wait_listening(self.internet, 8001)

    def internet_on(self, bridge: str, name: str, answer: str, vlan: int | None = None) -> tuple[str, str]:
        """(namespace, device): a namespace ``name`` on ``bridge`` (VLAN ``vlan`` of an OVS
        bridge) at the public gateway's address, whose web server on port 8000 answers
        ``"<answer> <caller's address>"``."""
        ns = self.namespace(name)
        dev = self.veth_into(ns, bridge, vlan=vlan)
        sh("ip", "-n", ns, "addr", "add", f"{PUBLIC_GATEWAY}/24", "dev", dev)
        self.spawn(ns, [sys.executable, "-c", ECHO_SERVER, answer, "8000"])
        self.wait_listening(ns, 8000)
        return ns, dev

    # -- building -----------------------------------------------------------------------------

    def _name(self, suffix: str) -> str:
        name = f"tw{self.tag}{suffix}"
        assert len(name) <= 15, name
        return name

    def bridge(self, suffix: str) -> str:
        name = self._name(suffix)
        sh("ip", "link", "add", name, "type", "bridge")
        self.links.append(name)
        sh("ip", "link", "set", name, "type", "bridge", "forward_delay", "0", "stp_state", "0")
        sh("ip", "link", "set", name, "up")
        return name

    def namespace(self, name: str) -> str:
        ns = f"tw-{self.tag}-{name}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def veth_into(self, ns: str, bridge: str, *, mac: str | None = None, vlan: int | None = None) -> str:
        """A veth pair: one end on ``bridge`` (host side; on an OVS bridge of ``ovs_bridge``
        an access port of ``vlan``), the other ``eth0``-like in ``ns``."""
        self._n += 1
        host = self._name(f"h{self._n}")
        inside = self._name(f"i{self._n}")
        sh("ip", "link", "add", host, "type", "veth", "peer", "name", inside)
        self.links.append(host)
        sh("ip", "link", "set", inside, "netns", ns)
        if mac:
            sh("ip", "-n", ns, "link", "set", inside, "address", mac)
        if bridge in self.ovs_bridges:
            sh("ovs-vsctl", "add-port", bridge, host, *([f"tag={vlan}"] if vlan is not None else []))
            sh("ip", "link", "set", host, "up")
            # OVS's userspace datapath does not complete offloaded checksums: let the sender's kernel
            sh("ip", "netns", "exec", ns, "ethtool", "-K", inside, "tx", "off")
        else:
            assert vlan is None, "only an OVS bridge of the world tags"
            sh("ip", "link", "set", host, "master", bridge, "up")
        sh("ip", "-n", ns, "link", "set", inside, "up")
        return inside

    def ovs_bridge(self, suffix: str, *ports: str) -> str:
        """An Open vSwitch bridge (userspace datapath) with ``ports`` as trunk ports: a switch
        of another host, or an OVS public bridge."""
        name = self._name(suffix)
        sh("ovs-vsctl", "add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev")
        self.ovs_bridges.append(name)
        for port in ports:
            sh("ovs-vsctl", "add-port", name, port)
        return name

    def wire(self) -> tuple[str, str]:
        """A veth pair, both ends in the host and up: a cable between two switches' trunk ports."""
        self._n += 1
        one, other = self._name(f"w{self._n}"), self._name(f"x{self._n}")
        sh("ip", "link", "add", one, "type", "veth", "peer", "name", other)
        self.links.append(one)
        self.trunks += [one, other]
        sh("ip", "link", "set", one, "up")
        sh("ip", "link", "set", other, "up")
        return one, other

    def uplink(self) -> tuple[str, str]:
        """A veth pair standing for a host's physical NIC: (host device, peer in a new 'switch' namespace)."""
        switch = self.namespace("sw")
        self._n += 1
        host, inside = self._name(f"u{self._n}"), self._name(f"s{self._n}")
        sh("ip", "link", "add", host, "type", "veth", "peer", "name", inside)
        self.links.append(host)
        sh("ip", "link", "set", inside, "netns", switch)
        sh("ip", "link", "set", host, "up")
        sh("ip", "-n", switch, "link", "set", inside, "up")
        return host, inside

    def guest(self, name: str, bridge: str, mac: str, vlan: int | None = None) -> Guest:
        return Guest(self, name, bridge, mac, vlan)

    # -- processes and clients -------------------------------------------------------------------

    def spawn(self, ns: str, argv: list[str]) -> subprocess.Popen:
        process = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(process)
        return process

    def wait_listening(self, ns: str, port: int | str, timeout: float = 10, udp: bool = False) -> None:
        """Wait until something listens on ``port`` (or ``"address:port"``) in ``ns``."""
        deadline = time.monotonic() + timeout
        flag = "-lun" if udp else "-ltn"
        pattern = re.escape(port) + r"\b" if isinstance(port, str) else rf":{port}\b"
        while time.monotonic() < deadline:
            out = sh("ip", "netns", "exec", ns, "ss", "-H", flag, check=False).stdout
            if re.search(pattern, out):
                return
            time.sleep(0.05)
        raise AssertionError(f"nothing listens on port {port} in {ns}")

    def get(self, ns: str, url: str, *, timeout: float = 3, source: str | None = None,
            cookies: Path | None = None) -> str | None:
        """The body of a GET from inside ``ns``, or None when it times out or is refused."""
        args = ["ip", "netns", "exec", ns, "curl", "-s", "-m", str(timeout)]
        if source:
            args += ["--interface", source]
        if cookies is not None:
            args += ["-b", str(cookies), "-c", str(cookies)]
        done = subprocess.run(args + [url], capture_output=True, text=True, timeout=timeout + 5)
        return done.stdout if done.returncode == 0 else None

    def close(self) -> None:
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=5)
        for ns in self.namespaces:
            for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "delete", ns, check=False)
        if self.ovs_bridges or self.trunks:
            # the world's OVS bridges, and the trunk bridges the routers made for its cables
            ours = set(self.ovs_bridges)
            for cable in self.trunks:
                ours.add(sh("ovs-vsctl", "port-to-br", cable, check=False).stdout.strip())
            for bridge in ours - {""}:
                sh("ovs-vsctl", "--if-exists", "del-br", bridge, check=False)
        for link in self.links:
            sh("ip", "link", "delete", link, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        (LIVE_WORLDS / self.tag).unlink(missing_ok=True)
