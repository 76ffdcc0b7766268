"""The router's desired configuration, read from the network dict the core hands the element.

The core computes the dict in full from the database (``core.orchestration.networking.
network_spec``); these dataclasses only give it names and types. A missing section means
the service is off (no ``public``: no source NAT; no ``vpn``: no VPN server). Parsing is
pure: nothing here touches the system.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any


@dataclasses.dataclass(frozen=True)
class Nic:
    mac: str
    ip: str | None
    hostname: str
    vm: str
    is_default: bool = True
    user_data: str | None = None
    instance: str | None = None
    public_ip: str | None = None


@dataclasses.dataclass(frozen=True)
class Public:
    bridge: str
    gateway: str
    netmask: str
    addresses: tuple[str, ...]
    source_nat: str | None
    #: the public range's 802.1Q tag (None: untagged); applied when the bridge is Open vSwitch's
    vlan: str | None = None

    @property
    def prefix(self) -> int:
        return ipaddress.IPv4Network(f"0.0.0.0/{self.netmask}").prefixlen


@dataclasses.dataclass(frozen=True)
class PortForward:
    id: str
    public: str
    protocol: str  # tcp | udp
    public_start: int
    public_end: int
    private_ip: str
    private_start: int
    private_end: int


@dataclasses.dataclass(frozen=True)
class FirewallRule:
    """An ingress rule (``public`` set) or an egress rule (``dest_cidrs`` may be set)."""

    id: str
    protocol: str  # tcp | udp | icmp | all
    start: int | None = None
    end: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    cidrs: tuple[str, ...] = ()
    public: str | None = None
    dest_cidrs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class StaticNat:
    public: str
    private: str


@dataclasses.dataclass(frozen=True)
class LoadBalancer:
    id: str
    name: str
    public: str
    public_port: int
    private_port: int
    algorithm: str  # roundrobin | leastconn | source
    members: tuple[str, ...]
    protocol: str = "tcp"
    #: (method, params): LbCookie, AppCookie or SourceBased
    stickiness: tuple[str, tuple[tuple[str, str], ...]] | None = None


@dataclasses.dataclass(frozen=True)
class VpnUser:
    username: str
    password_hash: str


@dataclasses.dataclass(frozen=True)
class Vpn:
    public: str
    local_ip: str
    pool_start: str
    pool_end: str
    pre_shared_key: str
    certificate: str
    key: str
    users: tuple[VpnUser, ...]
    port: int = 1194


@dataclasses.dataclass(frozen=True)
class RouterSpec:
    uuid: str
    name: str
    state: str  # Running | Stopped
    guest_type: str
    #: empty for an L2 network (a bridge, no router)
    cidr: str
    gateway: str
    #: the router's own address on the guest network (the gateway of an isolated network)
    guest_ip: str
    services: frozenset[str]
    network_domain: str
    dns: tuple[str, ...]
    vlan: str | None
    #: the device the guest network leaves the host on (the Guest traffic label)
    uplink: str | None
    #: how ``vlan`` isolates the network on the uplink: "vlan" (802.1Q) or "vxlan" (the VNI)
    isolation: str
    nics: tuple[Nic, ...]
    public: Public | None
    port_forwarding: tuple[PortForward, ...]
    firewall: tuple[FirewallRule, ...]
    static_nat: tuple[StaticNat, ...]
    egress_default_allow: bool
    egress: tuple[FirewallRule, ...]
    load_balancers: tuple[LoadBalancer, ...]
    vpn: Vpn | None

    @property
    def prefix(self) -> int:
        return ipaddress.IPv4Network(self.cidr, strict=False).prefixlen

    @property
    def running(self) -> bool:
        return self.state == "Running"

    def has(self, service: str) -> bool:
        return service in self.services


def _rule(data: dict[str, Any]) -> FirewallRule:
    return FirewallRule(id=str(data["id"]), protocol=data["protocol"].lower(), start=data.get("start"),
                        end=data.get("end"), icmp_type=data.get("icmp_type"), icmp_code=data.get("icmp_code"),
                        cidrs=tuple(data.get("cidrs") or ()), public=data.get("public"),
                        dest_cidrs=tuple(data.get("dest_cidrs") or ()))


def _tag(value: Any) -> str | None:
    """A VLAN as its number ("vlan://100" and 100 alike); None for none and "untagged"."""
    text = str(value).removeprefix("vlan://") if value is not None else ""
    return None if text in ("", "untagged") else text


def parse(network: dict[str, Any]) -> RouterSpec:
    """The ``RouterSpec`` of a network dict; raises KeyError/ValueError for a malformed one."""
    router = network.get("router") or {}
    public = network.get("public")
    vpn = network.get("vpn")
    egress = network.get("egress") or {}
    return RouterSpec(
        uuid=network["uuid"], name=router.get("name") or network["name"], state=router.get("state", "Running"),
        guest_type=network.get("guest_type", "Isolated"), cidr=network.get("cidr") or "",
        gateway=network.get("gateway") or "", guest_ip=router.get("guest_ip") or network.get("gateway") or "", services=frozenset(network.get("services") or ()),
        network_domain=network.get("network_domain") or "cs.internal", dns=tuple(network.get("dns") or ()),
        vlan=_tag(network.get("vlan")),
        uplink=(network.get("guest") or {}).get("uplink"),
        isolation=((network.get("guest") or {}).get("isolation") or "vlan").lower(),
        nics=tuple(Nic(mac=n["mac"].lower(), ip=n.get("ip"), hostname=n["hostname"], vm=n["vm"],
                       is_default=n.get("default", True), user_data=n.get("user_data"),
                       instance=n.get("instance"), public_ip=n.get("public_ip"))
                   for n in network.get("nics") or ()),
        public=Public(bridge=public["bridge"], gateway=public["gateway"], netmask=public["netmask"],
                      addresses=tuple(public["addresses"]), source_nat=public.get("source_nat"),
                      vlan=_tag(public.get("vlan"))) if public else None,
        port_forwarding=tuple(PortForward(id=str(r["id"]), public=r["public"], protocol=r["protocol"].lower(),
                                          public_start=r["public_start"], public_end=r["public_end"],
                                          private_ip=r["private_ip"], private_start=r["private_start"],
                                          private_end=r["private_end"])
                              for r in network.get("port_forwarding") or ()),
        firewall=tuple(_rule(r) for r in network.get("firewall") or ()),
        static_nat=tuple(StaticNat(public=s["public"], private=s["private"]) for s in network.get("static_nat") or ()),
        egress_default_allow=bool(egress.get("default_allow", True)),
        egress=tuple(_rule(r) for r in egress.get("rules") or ()),
        load_balancers=tuple(
            LoadBalancer(id=str(lb["id"]), name=lb["name"], public=lb["public"], public_port=lb["public_port"],
                         private_port=lb["private_port"], algorithm=lb["algorithm"].lower(),
                         members=tuple(lb.get("members") or ()), protocol=lb.get("protocol", "tcp"),
                         stickiness=(lb["stickiness"]["method"],
                                     tuple(sorted((str(k), str(v)) for k, v in lb["stickiness"]["params"].items())))
                         if lb.get("stickiness") else None)
            for lb in network.get("load_balancers") or ()),
        vpn=Vpn(public=vpn["public"], local_ip=vpn["local_ip"], pool_start=vpn["pool_start"],
                pool_end=vpn["pool_end"], pre_shared_key=vpn["psk"], certificate=vpn["certificate"],
                key=vpn["key"], users=tuple(VpnUser(u["username"], u["password_hash"]) for u in vpn.get("users") or ()),
                port=vpn.get("port", 1194)) if vpn else None,
    )
