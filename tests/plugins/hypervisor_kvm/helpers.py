"""Helpers for the KVM plugin's tests: specs, disk images, console logs, a bridge with DHCP."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
import uuid
import warnings
from pathlib import Path

import pytest

from core.drivers import NicSpec, VmSpec, VolumeSpec

REPO = Path(__file__).resolve().parents[3]
GUEST_READY = "STRATO-GUEST-READY"
GUEST_POWEROFF = "STRATO-GUEST-POWEROFF"


def cached_template_path() -> Path:
    """Where the tests build the test guest: in the cache the build script keeps its
    downloads in ($STRATO_CACHE_DIR, default ~/.cache/strato)."""
    cache = Path(os.environ.get("STRATO_CACHE_DIR") or Path.home() / ".cache" / "strato")
    return cache / "templates" / "strato-test-guest.qcow2"


def skip_loudly(reason: str):
    """Skip, and say so in the warnings summary too, so a missing piece is never missed."""
    warnings.warn(pytest.PytestWarning(f"hypervisor_kvm: {reason}"))
    pytest.skip(reason)


def run(*cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def qemu_img_create(path: Path, size: str = "16M", backing: Path | None = None) -> Path:
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing is not None:
        args += ["-b", str(backing), "-F", "qcow2"]
    run(*args, str(path), *([] if backing is not None else [size]))
    return path


def volume(pool_dir: Path, file_name: str, device_id: int = 0, volume_type: str = "ROOT",
           pool_url: str | None = None, pool_details: dict | None = None) -> VolumeSpec:
    return VolumeSpec(uuid=str(uuid.uuid4()), name=f"{volume_type}-{device_id}", volume_type=volume_type,
                      size_bytes=16 << 20, device_id=device_id, pool_url=pool_url or f"file://{pool_dir}",
                      pool_details=pool_details or {}, path=file_name)


def nic(mac: str | None = None, bridge: str | None = None, ip: str | None = None) -> NicSpec:
    mac = mac or "52:54:00:%02x:%02x:%02x" % tuple(os.urandom(3))
    return NicSpec(mac_address=mac, ip_address=ip, netmask="255.255.255.0" if ip else None, gateway=None,
                   device_id=0, is_default=True, bridge=bridge)


def vm_spec(volumes: list[VolumeSpec], nics: list[NicSpec] | None = None, memory_mb: int = 64,
            name: str | None = None) -> VmSpec:
    vm_uuid = str(uuid.uuid4())
    return VmSpec(uuid=vm_uuid, instance_name=name or f"i-kvmtest-{vm_uuid[:8]}", display_name="kvm test",
                  cpu_count=1, cpu_speed_mhz=500, memory_mb=memory_mb, volumes=volumes, nics=nics or [])


def console_lines(path: str | Path) -> list[str]:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines()]


def wait_for_line(path: str | Path, line: str, count: int = 1, timeout: float = 120) -> None:
    """Wait until the console log holds the line ``line`` (whole, stripped) ``count``
    times. Fails with the log's tail when it does not."""
    deadline = time.monotonic() + timeout
    while True:
        lines = console_lines(path)
        if lines.count(line) >= count:
            return
        if time.monotonic() > deadline:
            tail = "\n".join(lines[-40:])
            raise AssertionError(f"{line!r} x{count} not on the console within {timeout:.0f} s; console:\n{tail}")
        time.sleep(0.2)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = run("ip", "-4", "-o", "addr", "show").stdout + run("ip", "-4", "route", "show").stdout
    nets = []
    for word in out.split():
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    return nets


class Bridge:
    """A Linux bridge with an address and dnsmasq handing out DHCP leases on it.

    Each MAC of ``macs`` gets a fixed address, in ``leases`` (MAC -> IP). With
    ``static_only`` dnsmasq answers only the MACs it has a lease for, so a guest's
    address proves which lease it took; ``add_lease`` adds one while dnsmasq runs.
    ``close()`` stops dnsmasq and deletes the bridge; it is safe to call twice.
    """

    def __init__(self, workdir: Path, macs: list[str] = (), static_only: bool = False):
        self.name = f"stbr{os.getpid() % 100000}"
        used = _used_networks()
        for third in range(200, 250):
            net = ipaddress.ip_network(f"10.251.{third}.0/24")
            if not any(net.overlaps(other) for other in used):
                break
        else:
            raise AssertionError("no free 10.251.x.0/24 for the test bridge")
        self.network = net
        hosts = list(net.hosts())
        self.address = str(hosts[0])
        self.leases = {mac: str(hosts[40 + i]) for i, mac in enumerate(macs)}
        self.workdir = workdir
        self.static_only = static_only
        self.hosts_file = workdir / f"{self.name}.dhcp-hosts"
        self.dnsmasq: subprocess.Popen | None = None
        run("ip", "link", "add", self.name, "type", "bridge")
        try:
            run("ip", "addr", "add", f"{self.address}/{net.prefixlen}", "dev", self.name)
            run("ip", "link", "set", self.name, "up")
            self._start_dnsmasq(str(hosts[99]), str(hosts[149]))
        except BaseException:
            self.close()
            raise

    def _start_dnsmasq(self, first: str, last: str) -> None:
        log = self.workdir / f"{self.name}-dnsmasq.log"
        # "static": no dynamic pool, only the hosts file's MACs get an address
        dhcp_range = (f"{self.network.network_address},static,{self.network.netmask},1h" if self.static_only
                      else f"{first},{last},{self.network.netmask},1h")
        self._write_hosts_file()
        args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--bind-interfaces",
                f"--interface={self.name}", "--except-interface=lo", f"--listen-address={self.address}",
                f"--dhcp-range={dhcp_range}", f"--dhcp-hostsfile={self.hosts_file}",
                f"--dhcp-leasefile={self.workdir / (self.name + '.leases')}", "--user=root", "--log-dhcp",
                f"--log-facility={log}", f"--pid-file={self.workdir / (self.name + '.pid')}"]
        self.dnsmasq = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        if self.dnsmasq.poll() is not None:
            raise AssertionError(f"dnsmasq did not start: {self.dnsmasq.stderr.read()}")

    def _write_hosts_file(self) -> None:
        self.hosts_file.write_text("".join(f"{mac},{ip}\n" for mac, ip in self.leases.items()))

    def add_lease(self, mac: str, ip: str) -> None:
        """Give ``mac`` the address ``ip`` from now on (dnsmasq re-reads its hosts file on SIGHUP)."""
        self.leases[mac] = ip
        self._write_hosts_file()
        self.dnsmasq.send_signal(signal.SIGHUP)

    def dhcp_log(self) -> str:
        log = self.workdir / f"{self.name}-dnsmasq.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def ports(self) -> list[str]:
        """The interfaces plugged into the bridge (the guests' tap devices)."""
        out = run("ip", "-o", "link", "show", "master", self.name, check=False).stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]

    def close(self) -> None:
        if self.dnsmasq is not None:
            if self.dnsmasq.poll() is None:
                self.dnsmasq.terminate()
                try:
                    self.dnsmasq.wait(10)
                except subprocess.TimeoutExpired:
                    self.dnsmasq.kill()
                    self.dnsmasq.wait(10)
            self.dnsmasq = None
        if run("ip", "link", "show", self.name, check=False).returncode == 0:
            run("ip", "link", "del", self.name)
        for suffix in (".dhcp-hosts", ".leases", ".pid", "-dnsmasq.log"):
            (self.workdir / f"{self.name}{suffix}").unlink(missing_ok=True)


def which_all(*tools: str) -> list[str]:
    """The tools of ``tools`` that are not on PATH."""
    return [tool for tool in tools if shutil.which(tool) is None]
