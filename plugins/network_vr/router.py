"""One guest network's router on this host: its bridge, its namespace and the daemons in it.

``Router.apply(spec)`` makes the host match ``spec`` and nothing else, whatever was there
before (a previous apply, a crash half-way, nothing at all), so applying the same spec twice
changes nothing and a rebuild restores exactly what the database says:

* the guest bridge (``Names.bridge``), with a VLAN subinterface of the uplink when the
  network has a VLAN — or, where the kernel cannot make those (``vlan_backend``), a veth
  to an access port of the uplink's Open vSwitch bridge (``ovs.py``) — or a VXLAN device
  on the uplink (multicast group 239.x.y.z from the VNI as CloudStack's KVM agent derives
  it); it stays while the network exists, so guests keep their links while the router restarts;
* the namespace with ``eth0`` (guest side, the router's guest address) on that bridge,
  ``eth1`` (public side, every public address of the network) on the public bridge (on an
  Open vSwitch public bridge: an access port of the public range's VLAN), and a default
  route through the public gateway;
* the nftables table, dnsmasq, the metadata server, haproxy and OpenVPN as the spec says
  (each module updates its daemon in place when it can).

The last applied spec is kept in the state directory: when only port-forwarding and
firewall rules changed, ``apply`` loads just those changes into the running table —
unless the network dict says ``"full_apply": true`` (a start or restart: then whatever
happened to the table behind Strato's back is overwritten).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

from core.errors import ResourceUnavailableError

from . import dnsmasq, haproxy, metadata, nftables, nftlib, openvpn, ovs, system
from .spec import RouterSpec, parse

log = logging.getLogger(__name__)

#: how 802.1Q VLANs are made: "kernel" VLAN devices, "ovs" access ports of Open vSwitch's
#: userspace datapath (no kernel module needed), or "auto": the kernel's when it can make them
VLAN_BACKENDS = ("auto", "kernel", "ovs")

#: {applied.json path: ((mtime, size, inode), spec)}: the last applied specs, parsed once
_REMEMBERED: dict[str, tuple[tuple, RouterSpec]] = {}


@dataclasses.dataclass
class ApplyResult:
    details: dict
    #: how the packet filter was brought up to date: "full", "incremental" or "unchanged"
    nft: str


class Router:
    def __init__(self, network_uuid: str, state_root: Path, prefix: str = "s", incremental: bool = True,
                 vlan_backend: str = "auto"):
        if vlan_backend not in VLAN_BACKENDS:
            raise ValueError(f"vlan_backend {vlan_backend!r} is not one of {', '.join(VLAN_BACKENDS)}")
        self.names = system.Names(network_uuid, prefix)
        self.state = state_root / network_uuid
        self.incremental = incremental
        self.vlan_backend = vlan_backend

    @property
    def ns(self) -> str:
        return self.names.namespace

    # -- the whole thing -------------------------------------------------------------

    def apply(self, network: dict) -> ApplyResult:
        """Make the host match the network dict's spec (see the module docstring).

        On failure a router that did not exist before the call is removed again (bridge
        excepted), and the error is raised; a router that existed may be part-way between
        its old and new configuration: apply again (the old spec, or a stopped one).
        """
        spec = parse_network(network)
        full = bool(network.get("full_apply"))
        previous = None if full else self._remembered()
        if not spec.running:
            self.ensure_bridge(spec)
            self.stop()
            return ApplyResult(self.details(spec), "unchanged")
        existed = system.namespace_exists(self.ns)
        try:
            self.state.mkdir(parents=True, exist_ok=True)
            # the links and addresses change only with the plumbing: a rule change skips them
            if previous is None or _plumbing(previous) != _plumbing(spec) or not self._links_present(spec):
                self.ensure_bridge(spec)
                self._namespace(spec)
            nft = self._nftables(spec, previous)
            if spec.has("Dhcp") or spec.has("Dns"):
                dnsmasq.apply(spec, self.state, self.ns)
            else:
                dnsmasq.stop(self.state)
            metadata.apply(spec, self.state, self.ns)
            haproxy.apply(spec, self.state, self.ns)
            openvpn.apply(spec, self.state, self.ns)
            self._remember(network, spec)
        except Exception:
            if not existed:
                self._quietly(self.stop)
            else:
                (self.state / "applied.json").unlink(missing_ok=True)  # the next apply starts from the full table
            raise
        return ApplyResult(self.details(spec), nft)

    def stop(self) -> None:
        """Stop the daemons and remove the namespace (the bridge stays). Idempotent."""
        for module in (openvpn, haproxy, metadata, dnsmasq):
            if self.state.exists():
                module.stop(self.state)
        self._remove_public_veth()  # before the namespace: its end goes with it, and then OVS's port would stay
        system.delete_namespace(self.ns)
        system.delete_link(self.names.guest_veth)
        if self.state.exists():
            (self.state / "applied.json").unlink(missing_ok=True)

    def destroy(self) -> None:
        """Remove everything of this network from the host, bridge and state included. Idempotent."""
        self.stop()
        self._remove_vlan_link()
        system.delete_link(self.names.bridge)
        shutil.rmtree(self.state, ignore_errors=True)

    def details(self, spec: RouterSpec) -> dict:
        return {"bridge": self.names.bridge, "namespace": self.ns, "guest_mac": self.names.mac("guest"),
                "public_mac": self.names.mac("public") if spec.public else None,
                "vlan_link": self.names.vlan_link if spec.vlan and spec.uplink else None}

    # -- pieces --------------------------------------------------------------------------

    def ensure_bridge(self, spec: RouterSpec) -> str:
        """The guest bridge, made (and its link to the uplink) when missing."""
        bridge = self.names.bridge
        if not system.link_exists(bridge):
            system.run("ip", "link", "add", bridge, "type", "bridge")
            # forward at once: the default 15 s of listening would swallow the first DHCP requests
            system.run("ip", "link", "set", bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0")
        system.run("ip", "link", "set", bridge, "up")
        vlan_link = self.names.vlan_link
        if spec.vlan and spec.uplink:
            if not system.link_exists(spec.uplink):
                raise ResourceUnavailableError(
                    f"the guest traffic label names device {spec.uplink}, which this host does not have")
            how = self.tagging(spec)
            if system.link_exists(vlan_link) and not self._vlan_matches(vlan_link, spec, how):
                self._remove_vlan_link()
            if not system.link_exists(vlan_link):
                if how == "vxlan":
                    vni = int(spec.vlan)
                    group = f"239.{vni >> 16 & 255}.{vni >> 8 & 255}.{vni & 255}"
                    system.run("ip", "link", "add", vlan_link, "type", "vxlan", "id", str(vni), "dstport", "4789",
                               "group", group, "dev", spec.uplink, "ttl", "10")
                elif how == "ovs":
                    system.run("ip", "link", "add", vlan_link, "type", "veth", "peer", "name", self.names.ovs_port)
                else:
                    self._kernel_vlan(spec)
            if how == "ovs":
                trunk = ovs.trunk_bridge(spec.uplink, self.names.prefix)
                if ovs.port(self.names.ovs_port) != (trunk, int(spec.vlan)):
                    ovs.attach(trunk, self.names.ovs_port, int(spec.vlan))
                ovs.no_tx_checksum(vlan_link)
                system.run("ip", "link", "set", self.names.ovs_port, "up")
            system.run("ip", "link", "set", vlan_link, "master", bridge, "up")
            system.run("ip", "link", "set", spec.uplink, "up")
        elif system.link_exists(vlan_link):
            self._remove_vlan_link()
        return bridge

    def tagging(self, spec: RouterSpec) -> str:
        """How ``spec``'s VLAN reaches the uplink: "vxlan", "kernel" (an 802.1Q device) or
        "ovs" (an access port of the uplink's Open vSwitch bridge); see ``vlan_backend``."""
        if spec.isolation == "vxlan":
            return "vxlan"
        backend = self.vlan_backend
        if backend == "auto":
            backend = "kernel" if system.kernel_makes_vlans() else "ovs"
        if backend == "ovs":
            ovs.require(f"802.1Q tagging of VLAN {spec.vlan} (vlan_backend {self.vlan_backend})")
        return backend

    def _kernel_vlan(self, spec: RouterSpec) -> None:
        try:
            system.run("ip", "link", "add", "link", spec.uplink, "name", self.names.vlan_link, "type", "vlan",
                       "id", str(spec.vlan))
        except ResourceUnavailableError as exc:
            raise ResourceUnavailableError(f"{exc} (this kernel cannot make 802.1Q VLAN devices? "
                                           "[plugin.vr] vlan_backend = \"ovs\" tags in Open vSwitch)") from None

    def _remove_vlan_link(self) -> None:
        """Remove the guest bridge's link to the uplink, whichever kind it is (an OVS access
        port included: only when its veth is there, so hosts without OVS start nothing)."""
        if system.link_exists(self.names.ovs_port):
            ovs.detach(self.names.ovs_port)
        system.delete_link(self.names.vlan_link)
        system.delete_link(self.names.ovs_port)

    def _vlan_matches(self, link: str, spec: RouterSpec, how: str) -> bool:
        """Whether the existing VLAN/VXLAN device or OVS veth is what ``spec`` wants (else it is remade)."""
        done = system.run("ip", "-d", "-j", "link", "show", "dev", link, check=False)
        try:
            info = json.loads(done.stdout)[0]
            kind = info["linkinfo"]["info_kind"]
            data = info["linkinfo"].get("info_data") or {}
            if kind == "vxlan":
                return how == "vxlan" and data.get("link") == spec.uplink and str(data["id"]) == spec.vlan
            if kind == "veth":  # its OVS port's bridge and tag are checked where it is attached
                return how == "ovs"
            return how == "kernel" and info.get("link") == spec.uplink and str(data["id"]) == spec.vlan
        except (ValueError, KeyError, IndexError):
            return False

    def _veth(self, host_name: str, inside: str, mac: str) -> None:
        """A veth pair: ``host_name`` in the host, the peer as ``inside`` in the namespace."""
        if not system.link_exists(inside, self.ns):
            system.delete_link(host_name)
            tmp = f"{host_name[:-1]}x" if not host_name.endswith("x") else f"{host_name[:-1]}y"
            system.run("ip", "link", "add", host_name, "type", "veth", "peer", "name", tmp)
            system.run("ip", "link", "set", tmp, "netns", self.ns)
            system.run("ip", "link", "set", tmp, "name", inside, ns=self.ns)
        system.run("ip", "link", "set", inside, "address", mac, ns=self.ns)
        system.run("ip", "link", "set", inside, "up", ns=self.ns)

    def _namespace(self, spec: RouterSpec) -> None:
        if not system.namespace_exists(self.ns):
            system.run("ip", "netns", "add", self.ns)
        system.run("ip", "link", "set", "lo", "up", ns=self.ns)
        system.run("sysctl", "-q", "-w", f"net.ipv4.ip_forward={1 if spec.public or spec.vpn else 0}", ns=self.ns)
        self._veth(self.names.guest_veth, nftables.GUEST, self.names.mac("guest"))
        system.run("ip", "link", "set", self.names.guest_veth, "master", self.names.bridge, "up")
        system.sync_addresses(nftables.GUEST, [f"{spec.guest_ip}/{spec.prefix}"], ns=self.ns)
        public = spec.public
        if public is None:
            self._remove_public_veth()
            return
        if not system.link_exists(public.bridge):
            raise ResourceUnavailableError(
                f"the public traffic label names bridge {public.bridge}, which this host does not have")
        self._veth(self.names.public_veth, nftables.PUBLIC, self.names.mac("public"))
        self._public_port(public)
        primary = public.source_nat or public.addresses[0]
        ordered = [primary] + sorted(a for a in public.addresses if a != primary)
        # the MACs derive from the network, so after a rebuild the public side's ARP caches still hold
        system.sync_addresses(nftables.PUBLIC, [f"{a}/{public.prefix}" for a in ordered], ns=self.ns)
        system.run("ip", "route", "replace", "default", "via", public.gateway, "dev", nftables.PUBLIC, ns=self.ns)

    def _public_port(self, public) -> None:
        """Put the router's public veth on the Public label's bridge. An Open vSwitch bridge
        gets it as an access port of the public range's VLAN (untagged without one); a Linux
        bridge enslaves it untagged (its uplink, whoever owns it, does any tagging)."""
        veth = self.names.public_veth
        if system.is_linux_bridge(public.bridge):
            if public.vlan:
                log.warning("public VLAN %s of %s is not applied: %s is a Linux bridge (name an Open vSwitch "
                            "bridge in the Public traffic label to have the router tag)", public.vlan, self.ns,
                            public.bridge)
            if not system.has_master(veth):
                ovs.detach(veth)  # an OVS port of that name (an earlier label, a crash) would hold it too
            system.run("ip", "link", "set", veth, "master", public.bridge, "up")
            return
        ovs.require(f"the public traffic label {public.bridge}, which is no Linux bridge,")
        if not ovs.is_bridge(public.bridge):
            raise ResourceUnavailableError(f"the public traffic label names {public.bridge}, which is neither a "
                                           "Linux bridge nor an Open vSwitch bridge")
        tag = int(public.vlan) if public.vlan else None
        system.run("ip", "link", "set", veth, "nomaster", "up")
        if ovs.port(veth) != (public.bridge, tag):
            ovs.attach(public.bridge, veth, tag)
        ovs.no_tx_checksum(nftables.PUBLIC, ns=self.ns)

    def _remove_public_veth(self) -> None:
        veth = self.names.public_veth
        if system.link_exists(veth) and not system.has_master(veth):
            ovs.detach(veth)  # on no Linux bridge: perhaps an OVS port
        system.delete_link(veth)

    def _links_present(self, spec: RouterSpec) -> bool:
        links = [self.names.bridge, self.names.guest_veth] + ([self.names.public_veth] if spec.public else [])
        return system.namespace_exists(self.ns) and all(system.link_exists(link) for link in links)

    def _nftables(self, spec: RouterSpec, previous: RouterSpec | None) -> str:
        if self.incremental and previous is not None:
            change = nftables.changes(previous, spec)
            if change is not None:
                if change.empty:
                    return "unchanged"
                try:
                    handles = {}
                    if change.delete_rules:
                        listing = nftlib.run(self.ns, f"list chain ip {nftables.TABLE} fw_in", handles=True)
                        handles = nftables.rule_handles(listing)
                    if all(rule in handles for rule in change.delete_rules):
                        nftlib.run(self.ns, nftables.change_script(change, handles))
                        return "incremental"
                except ResourceUnavailableError:
                    # the table is not what the last apply left (changed behind our back): load it whole
                    log.warning("incremental nftables change on %s failed; loading the whole table", self.ns)
        nftlib.run(self.ns, nftables.ruleset(spec))
        return "full"

    def _remember(self, network: dict, spec: RouterSpec) -> None:
        path = self.state / "applied.json"
        system.write_if_changed(path, json.dumps(network, sort_keys=True), 0o600)
        stat = path.stat()
        _REMEMBERED[str(path)] = ((stat.st_mtime_ns, stat.st_size, stat.st_ino), spec)

    def _remembered(self) -> RouterSpec | None:
        """The spec of the last successful apply (any process's: the file is the truth; a
        parsed copy is kept while the file does not change)."""
        path = self.state / "applied.json"
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            cached = _REMEMBERED.get(str(path))
            if cached is not None and cached[0] == key:
                return cached[1]
            spec = parse(json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
            return None
        _REMEMBERED[str(path)] = (key, spec)
        return spec

    @staticmethod
    def _quietly(fn) -> None:
        try:
            fn()
        except Exception:  # cleaning up after a failure: the first error is what the caller gets
            log.exception("cleaning up a router that failed to come up")


def _plumbing(spec: RouterSpec) -> tuple:
    """What the links, addresses and routes of a router depend on."""
    return (spec.cidr, spec.guest_ip, spec.vlan, spec.uplink, spec.isolation, spec.public,
            bool(spec.public or spec.vpn))


def parse_network(network: dict) -> RouterSpec:
    """The spec of a network dict; 534 naming what is missing when it is malformed."""
    try:
        return parse(network)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ResourceUnavailableError(f"the network's configuration is incomplete: {exc!r}") from None
