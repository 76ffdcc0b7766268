"""``VirtualRouterElement``: CloudStack's VirtualRouter provider as a network namespace per
guest network on the management host (see ``router.py``), so a network is ready in well
under a second and its configuration is always the database's.

Settings (``[plugin.vr]`` in strato.toml):

``state_dir``    where each router's files live (default ``<data dir>/network_vr``)
``prefix``       the first letter(s) of the host's interface names (default ``s``)
``incremental``  load only changed port-forwarding/firewall rules into a running router
                 (default true; false reloads the whole table every time)
``vlan_backend`` how guest VLANs are tagged on the uplink: ``kernel`` (802.1Q devices),
                 ``ovs`` (Open vSwitch access ports, userspace datapath: no kernel module)
                 or ``auto`` (default: the kernel's when it can make VLAN devices)

Every router of every network runs on the host whose management server (or worker)
applies it, so all of them must run on one host.
"""

from __future__ import annotations

import dataclasses
import fcntl
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from core import NetworkElement, NicSpec, VmSpec, hookimpl
from core.errors import ConfigurationError, ResourceUnavailableError

from . import openvpn
from .router import VLAN_BACKENDS, Router, parse_network
from .system import Names


class VirtualRouterElement(NetworkElement):
    name = "vr"
    #: CloudStack's provider name in offerings and listNetworkServiceProviders
    provider_name: ClassVar[str] = "VirtualRouter"
    services = frozenset({"Dhcp", "Dns", "UserData", "SourceNat", "StaticNat", "PortForwarding", "Firewall",
                          "Lb", "Vpn", "Gateway"})
    capabilities = {
        "SupportedLbAlgorithms": "roundrobin,leastconn,source",
        "SupportedStickinessMethods": "LbCookie,AppCookie,SourceBased",
        "SupportedProtocols": "tcp,udp,icmp",
        "SupportedSourceNatTypes": "peraccount",
        "VpnTypes": "openvpn",
        "incremental_rules": True,
    }

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        self.prefix = str(self.config.get("prefix", "s"))
        self.incremental = bool(self.config.get("incremental", True))
        self.vlan_backend = str(self.config.get("vlan_backend", "auto"))
        if self.vlan_backend not in VLAN_BACKENDS:
            raise ConfigurationError(f"[plugin.vr] vlan_backend is {self.vlan_backend!r}: use one of "
                                     f"{', '.join(VLAN_BACKENDS)}")
        configured = self.config.get("state_dir")
        self.state_dir: Path | None = Path(configured) if configured else None
        Names("00000000-0000-0000-0000-000000000000", self.prefix)  # a prefix too long fails at start-up
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @hookimpl
    def strato_configure(self, settings):
        """Learn the data directory (the default home of the routers' files)."""
        if self.state_dir is None:
            self.state_dir = Path(settings.data_dir) / "network_vr"

    # -- the contract ------------------------------------------------------------------

    def implement_network(self, network: dict[str, Any]) -> dict[str, Any]:
        """Make the router match ``network`` (the whole configuration, see ``spec.py``).

        Idempotent. Returns the details to keep: the guest bridge, the router's MACs, and
        (when the spec has a VPN without a certificate) the VPN server's new certificate
        and key under ``vpn_certificate`` / ``vpn_key``. On failure a router that did not
        exist before is gone again and the error (534) names what failed.
        """
        with self._lock(network["uuid"]):
            generated = self._vpn_credentials(network)
            result = self._router(network).apply(network)
        details = dict(result.details, nft=result.nft)
        details.update(generated)
        return details

    def prepare_nic(self, network: dict[str, Any], nic: NicSpec, vm: VmSpec) -> NicSpec:
        """Put the NIC on the network's guest bridge (made when missing, e.g. after a reboot)."""
        spec = parse_network(network) if "router" in network else None
        router = self._router(network)
        with self._lock(network["uuid"]):
            bridge = router.ensure_bridge(spec) if spec is not None else self._plain_bridge(router)
        return dataclasses.replace(nic, bridge=bridge, vlan=network.get("vlan"))

    def release_nic(self, network: dict[str, Any], nic: NicSpec, vm: VmSpec) -> None:
        """Nothing to undo: the static lease stays until the NIC is removed (CloudStack keeps
        a stopped VM's DHCP entry too), and the hypervisor removes its tap."""

    def shutdown_network(self, network: dict[str, Any]) -> None:
        """Remove the router, the bridge and the router's files. Idempotent."""
        with self._lock(network["uuid"]):
            self._router(network).destroy()

    def close(self) -> None:
        """Routers keep running when the management server stops (guests keep their
        network); the next apply finds them by name."""

    # -- extras (ex_: this plugin only) ----------------------------------------------------

    def ex_names(self, network_uuid: str) -> Names:
        return Names(network_uuid, self.prefix)

    def ex_router(self, network_uuid: str) -> Router:
        return Router(network_uuid, self._state_root(), self.prefix, self.incremental, self.vlan_backend)

    # -- helpers ---------------------------------------------------------------------------

    def _state_root(self) -> Path:
        if self.state_dir is None:
            raise ConfigurationError("plugin vr has no state_dir and was not configured with a data directory")
        return self.state_dir

    def _router(self, network: dict[str, Any]) -> Router:
        return self.ex_router(network["uuid"])

    def _plain_bridge(self, router: Router) -> str:
        """The bridge of a network known only by its uuid (migration passes no spec)."""
        from .system import link_exists

        if not link_exists(router.names.bridge):
            raise ResourceUnavailableError(f"the network's bridge {router.names.bridge} is missing; "
                                           "restart the network to rebuild it")
        return router.names.bridge

    @contextmanager
    def _lock(self, network_uuid: str):
        """One change at a time per router: a thread lock here, a file lock across processes."""
        with self._locks_guard:
            lock = self._locks.setdefault(network_uuid, threading.Lock())
        root = self._state_root()
        root.mkdir(parents=True, exist_ok=True)
        with lock, open(root / f".{network_uuid}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    @staticmethod
    def _vpn_credentials(network: dict[str, Any]) -> dict[str, str]:
        """A self-signed certificate for a VPN that has none yet; written into ``network``."""
        vpn = network.get("vpn")
        if not vpn or vpn.get("certificate"):
            return {}
        certificate, key = new_certificate(f"{network['name']} VPN")
        vpn["certificate"], vpn["key"] = certificate, key
        return {"vpn_certificate": certificate, "vpn_key": key,
                "vpn_fingerprint": openvpn.fingerprint(certificate)}


def new_certificate(common_name: str) -> tuple[str, str]:
    """(certificate PEM, key PEM): a self-signed P-256 certificate valid ten years."""
    with tempfile.TemporaryDirectory() as tmp:
        key, cert = Path(tmp) / "key.pem", Path(tmp) / "cert.pem"
        subject = "/CN=" + "".join(c for c in common_name if c.isalnum() or c in " -._")[:60]
        try:
            done = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                   "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650", "-subj", subject,
                                   "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True,
                                  timeout=30)
        except FileNotFoundError:
            raise ResourceUnavailableError("openssl is not installed on the management host: the VPN's "
                                           "certificate cannot be made") from None
        if done.returncode != 0:
            raise ResourceUnavailableError(f"openssl could not make the VPN's certificate: {done.stderr.strip()}")
        return cert.read_text(), key.read_text()
