"""Guest networks with services: offerings, creating and implementing networks, their
routers, public addresses and the rules on them.

The router's configuration is a function of the database: ``network_spec`` computes it in
full, and every change to a router is "compute the spec, hand it to the network element"
(``NetworkElement.implement_network`` makes the router match it, idempotently). So a
restart or a rebuild restores exactly what the database says, and a failed change is
undone by changing the database back and applying again.

Contracts:

* A command writes its change (a rule in state ``Add``, an address ``Allocated``...) in its
  own transaction; the router is changed afterwards, outside any transaction, under the
  network's lock (``network_lock``: one change per network at a time, so the last spec
  applied is always computed from the newest committed state).
* ``apply_rules`` (the async rule commands' job) makes ``Add`` rules ``Active`` and drops
  ``Revoke`` rules once the router has them; when the router refuses, the new rules are
  deleted, the revoked ones restored, the router re-applied, and the router's error raised.
* ``implement`` brings a network up (guest VLAN, source-NAT address, router). When the
  router fails to come up the network is ``Error`` and its router ``Error`` with the
  reason (``Router.last_error``), the element has removed what it built, and the reason is
  raised (534); ``implement`` (``restartNetwork``) again repairs it.
* Only the router's host changes outside the database, so every router runs on the host
  whose management server or worker applies it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import secrets
import socket
import string
import threading
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import after_commit
from ..drivers import NetworkElement, NicSpec, VmSpec
from ..errors import (
    InsufficientCapacityError,
    InvalidParameterError,
    NetworkRuleConflictError,
    ResourceInUseError,
    ResourceUnavailableError,
    StratoError,
    UnsupportedError,
)
from ..events import record
from ..model import (
    Account,
    GuestVlan,
    IpState,
    LoadBalancerMember,
    Network,
    NetworkOffering,
    NetworkOfferingService,
    NetworkRule,
    NetworkServiceProvider,
    NetworkState,
    Nic,
    PhysicalNetwork,
    PhysicalNetworkTrafficType,
    PublicIpAddress,
    RemoteAccessVpn,
    Router,
    RouterState,
    RuleState,
    VirtualMachine,
    VlanIpRange,
    VpnUser,
    Zone,
    utcnow,
)
from . import limits, usage

log = logging.getLogger(__name__)

VIRTUAL_ROUTER = "VirtualRouter"
SECURITY_GROUP_PROVIDER = "SecurityGroupProvider"
#: the offering of a Basic zone's default guest network, as CloudStack's
BASIC_ZONE_OFFERING = "DefaultSharedNetworkOfferingWithSGService"
#: every service name CloudStack knows (offerings may name them; the router provides its own)
SERVICES = ("Dhcp", "Dns", "UserData", "SourceNat", "StaticNat", "PortForwarding", "Firewall", "Lb", "Vpn",
            "Gateway", "SecurityGroup", "NetworkACL", "Connectivity")
LIVE_RULE_STATES = (RuleState.ADD, RuleState.ACTIVE)
DEFAULT_GUEST_CIDR = "10.1.1.0/24"
DEFAULT_VPN_RANGE = "10.1.2.1-10.1.2.8"
DOMAIN_SUFFIX = "cloud.internal"
MAX_RANGE = 65536

_VR_SERVICES = ("Dhcp", "Dns", "UserData", "Firewall", "Gateway", "Lb", "SourceNat", "StaticNat",
                "PortForwarding", "Vpn")
#: CloudStack's default network offerings: (unique name, display text, guest type, availability,
#: specify vlan, specify ip ranges, services provided by the virtual router - SecurityGroup by
#: the SecurityGroupProvider)
DEFAULT_OFFERINGS = [
    ("DefaultIsolatedNetworkOfferingWithSourceNatService",
     "Offering for Isolated networks with Source Nat service enabled", "Isolated", "Required", False, False,
     _VR_SERVICES),
    ("DefaultIsolatedNetworkOffering", "Offering for Isolated networks with no Source Nat service", "Isolated",
     "Optional", False, True, ("Dhcp", "Dns", "UserData")),
    (BASIC_ZONE_OFFERING, "Offering for Shared Security group enabled networks", "Shared", "Optional", True, True,
     ("Dhcp", "Dns", "UserData", "SecurityGroup")),
    ("DefaultSharedNetworkOffering", "Offering for Shared networks", "Shared", "Optional", True, True,
     ("Dhcp", "Dns", "UserData")),
    ("DefaultL2NetworkOffering", "Offering for L2 networks", "L2", "Optional", False, False, ()),
    ("DefaultL2NetworkOfferingVlan", "Offering for L2 networks VLAN", "L2", "Optional", True, False, ()),
]


# -- seeding ---------------------------------------------------------------------------------


ROUTER_SERVICE_OFFERING = "System Offering For Software Router"


def router_service_offering(session: Session):
    """CloudStack's system service offering for virtual routers (made when missing). Strato's
    routers are namespaces and take no host capacity; offerings name it because clients
    (libcloud) read ``serviceofferingid``."""
    from ..model import ServiceOffering

    offering = session.scalar(select(ServiceOffering).where(ServiceOffering.name == ROUTER_SERVICE_OFFERING,
                                                            ServiceOffering.is_system.is_(True)))
    if offering is None:
        offering = ServiceOffering(name=ROUTER_SERVICE_OFFERING, display_text=ROUTER_SERVICE_OFFERING, cpu_number=1,
                                   cpu_speed=500, memory=256, is_system=True)
        session.add(offering)
        session.flush()
    return offering


def seed_network_offerings(session: Session) -> None:
    """Add CloudStack's default network offerings that are missing (Enabled, as CloudStack ships
    them), and give a Basic zone's guest network made before it had one its offering."""
    present = set(session.scalars(select(NetworkOffering.unique_name).where(NetworkOffering.unique_name.is_not(None))))
    if not all(default[0] in present for default in DEFAULT_OFFERINGS):
        router_offering = router_service_offering(session)
        for unique, text, guest_type, availability, specify_vlan, specify_ranges, services in DEFAULT_OFFERINGS:
            if unique in present:
                continue
            offering = NetworkOffering(
                name=unique, unique_name=unique, display_text=text, guest_type=guest_type, traffic_type="Guest",
                state="Enabled", availability=availability, is_default=True, specify_vlan=specify_vlan,
                specify_ip_ranges=specify_ranges, conserve_mode=True, egress_default_policy=True,
                details=_default_capabilities(services), service_offering_id=router_offering.id)
            offering.services = [NetworkOfferingService(
                service=s, provider=SECURITY_GROUP_PROVIDER if s == "SecurityGroup" else VIRTUAL_ROUTER)
                for s in services]
            session.add(offering)
        session.flush()
    # Strato made those networks without an offering; clients (libcloud) read networkofferingid.
    session.execute(update(Network).where(Network.network_offering_id.is_(None), Network.guest_type == "Shared",
                                          Network.account_id.is_(None))
                    .values(network_offering_id=basic_zone_offering(session).id))


def basic_zone_offering(session: Session) -> NetworkOffering:
    """The offering of a Basic zone's default guest network (seeded with the defaults)."""
    return session.scalar(select(NetworkOffering).where(NetworkOffering.unique_name == BASIC_ZONE_OFFERING))


def _default_capabilities(services: Iterable[str]) -> dict:
    caps: dict[str, str] = {}
    if "Lb" in services:
        caps.update(SupportedLbAlgorithms="roundrobin,leastconn,source", SupportedLBIsolation="dedicated")
    if "SourceNat" in services:
        caps.update(SupportedSourceNatTypes="peraccount", RedundantRouter="false")
    return caps


# -- elements ----------------------------------------------------------------------------------


def provider_name(element: NetworkElement) -> str:
    return getattr(type(element), "provider_name", element.name)


def plugin_for_provider(cloud, provider: str) -> str:
    """The enabled network plugin that is CloudStack's provider ``provider``; 534 when none is
    (CloudStack's ResourceUnavailableException: the request is right, the cloud lacks the provider)."""
    for name, element in cloud.plugins.network.items():
        if provider_name(element).lower() == provider.lower() or name == provider.lower():
            return name
    raise ResourceUnavailableError(
        f"The network service provider {provider} is unavailable: no enabled network plugin provides it. "
        "An administrator must enable one (e.g. network = [\"vr\"] under [plugins] in strato.toml) and restart")


def _optional_plugin(cloud, provider: str) -> str | None:
    try:
        return plugin_for_provider(cloud, provider)
    except ResourceUnavailableError:
        return None


def element_of(cloud, network: Network) -> NetworkElement | None:
    return cloud.plugins.network.get(network.provider) if network.provider else None


# -- the lock ---------------------------------------------------------------------------------

_held = threading.local()
_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextlib.contextmanager
def network_lock(cloud, network_uuid: str):
    """Serialise changes of one network's router: across threads (a lock) and processes on
    this host (a file lock in the data directory). Re-entrant within a thread."""
    held = getattr(_held, "uuids", None)
    if held is None:
        held = _held.uuids = set()
    if network_uuid in held:
        yield
        return
    with _thread_locks_guard:
        lock = _thread_locks.setdefault(network_uuid, threading.Lock())
    directory = Path(cloud.settings.data_dir) / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    with lock, open(directory / f"network-{network_uuid}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        held.add(network_uuid)
        try:
            yield
        finally:
            held.discard(network_uuid)


# -- physical networks -------------------------------------------------------------------------


def traffic_label(session: Session, zone_id: int, traffic_type: str, physical_network_id: int | None = None):
    """The KVM label (host device or bridge name) of ``traffic_type`` in the zone, or None."""
    query = (select(PhysicalNetworkTrafficType.kvm_label)
             .join(PhysicalNetwork, PhysicalNetwork.id == PhysicalNetworkTrafficType.physical_network_id)
             .where(PhysicalNetwork.zone_id == zone_id, PhysicalNetwork.removed.is_(None),
                    PhysicalNetworkTrafficType.traffic_type == traffic_type,
                    PhysicalNetworkTrafficType.removed.is_(None)))
    if physical_network_id is not None:
        query = query.where(PhysicalNetwork.id == physical_network_id)
    return session.scalar(query.order_by(PhysicalNetwork.id).limit(1))


def guest_physical_network(session: Session, zone: Zone) -> PhysicalNetwork | None:
    """The zone's physical network that carries guest traffic (the first, as CloudStack picks
    one without tags)."""
    return session.scalar(
        select(PhysicalNetwork).join(PhysicalNetworkTrafficType,
                                     PhysicalNetworkTrafficType.physical_network_id == PhysicalNetwork.id)
        .where(PhysicalNetwork.zone_id == zone.id, PhysicalNetwork.removed.is_(None),
               PhysicalNetworkTrafficType.traffic_type == "Guest", PhysicalNetworkTrafficType.removed.is_(None))
        .order_by(PhysicalNetwork.id).limit(1))


def add_default_providers(session: Session, physical: PhysicalNetwork) -> None:
    """A new physical network gets the VirtualRouter provider, as CloudStack adds it (but
    Enabled: Strato's router needs no system VM template to be usable)."""
    from ..model import new_uuid

    session.add(NetworkServiceProvider(physical_network_id=physical.id, provider_name=VIRTUAL_ROUTER,
                                       state="Enabled", services=",".join(_VR_SERVICES),
                                       element_uuid=new_uuid()))
    session.flush()


MAX_VNI = 16777214


def isolation_of(physical: PhysicalNetwork | None) -> str:
    """"vxlan" when the physical network isolates guests with VXLAN, else "vlan" (CloudStack
    keeps VNI ranges in the same ``vlan`` field)."""
    methods = [m.strip().upper() for m in ((physical.isolation_methods if physical else None) or "VLAN").split(",")]
    return "vxlan" if methods and methods[0] == "VXLAN" else "vlan"


def parse_vlan_ranges(text: str | None, maximum: int = 4094) -> list[tuple[int, int]]:
    """CloudStack's "100-199,300" as [(100, 199), (300, 300)]; ValueError when malformed."""
    ranges = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        start, end = int(low), int(high or low)
        if not 1 <= start <= end <= maximum:
            raise ValueError(f"{part} is not a range within 1-{maximum}")
        ranges.append((start, end))
    return ranges


# -- creating networks -------------------------------------------------------------------------


def _network_domain(session: Session, zone: Zone, owner: Account | None) -> str:
    if owner is not None and owner.network_domain:
        return owner.network_domain
    if zone.domain_name:
        return zone.domain_name
    return f"cs{owner.id:x}{DOMAIN_SUFFIX}" if owner is not None else DOMAIN_SUFFIX


def create_network(cloud, session: Session, *, owner: Account | None, domain_id: int | None, zone: Zone,
                   offering: NetworkOffering, name: str, display_text: str | None = None,
                   gateway: str | None = None, netmask: str | None = None, start_ip: str | None = None,
                   end_ip: str | None = None, vlan: str | None = None, network_domain: str | None = None,
                   acl_type: str | None = None, physical: PhysicalNetwork | None = None,
                   dns1: str | None = None, dns2: str | None = None, subdomain_access: bool | None = None,
                   vlan_allowed: bool = False) -> Network:
    """Add a guest network of ``offering`` (Allocated; a shared one Setup). Nothing outside the
    database changes: the router comes with the first VM or ``implement``.

    431 for a bad or missing parameter; 537 when a shared network's CIDR overlaps another
    shared network on the same VLAN or the VLAN is taken; 432 when the offering's provider
    is not enabled.
    """
    if offering.state != "Enabled":
        raise InvalidParameterError(f"network offering {offering.name} is {offering.state}; it must be Enabled")
    if zone.network_type != "Advanced" and offering.guest_type != "Shared":
        raise InvalidParameterError(
            f"zone {zone.name} is a Basic zone: only shared networks can be created in it")
    providers = set(offering.providers().values())
    if VIRTUAL_ROUTER in providers:
        provider = plugin_for_provider(cloud, VIRTUAL_ROUTER)
    else:  # an L2 network still needs its bridge (and VLAN) on the host: the router plugin makes it
        provider = _optional_plugin(cloud, VIRTUAL_ROUTER) if offering.guest_type == "L2" else None
    physical = physical or guest_physical_network(session, zone)
    if physical is None and zone.network_type == "Advanced":
        raise InvalidParameterError(f"zone {zone.name} has no physical network with Guest traffic")
    guest_type = offering.guest_type
    if vlan is not None and not (offering.specify_vlan and vlan_allowed):
        raise InvalidParameterError("vlan can be given only by a root admin and only with an offering that "
                                    "has specifyvlan=true")
    if offering.specify_vlan and vlan is None and guest_type == "Shared":
        raise InvalidParameterError(f"network offering {offering.name} needs the vlan parameter")
    cidr = None
    if guest_type == "L2":
        if gateway or netmask:
            raise InvalidParameterError("an L2 network has no gateway or netmask")
    elif guest_type == "Shared" or gateway or netmask:
        if not (gateway and netmask):
            raise InvalidParameterError("gateway and netmask are required for shared networks (and go together)")
        cidr = _cidr(gateway, netmask)
    else:
        cidr = zone.guest_cidr or DEFAULT_GUEST_CIDR
        net = ipaddress.IPv4Network(cidr, strict=False)
        gateway, netmask = str(net.network_address + 1), str(net.netmask)
        cidr = str(net)
    if cidr is not None:
        start_ip, end_ip = _ip_range(cidr, gateway, start_ip, end_ip, required=guest_type == "Shared")
    normal_vlan = None if vlan is None else _vlan_value(vlan)
    if normal_vlan not in (None, "untagged") and physical is not None:
        _check_vlan_free(session, physical, int(normal_vlan))
    if guest_type == "Shared":
        _check_shared_overlap(session, zone, cidr, normal_vlan)
    network = Network(
        name=name, display_text=display_text or name, zone_id=zone.id,
        account_id=owner.id if owner is not None and (acl_type or "Account") == "Account" else None,
        domain_id=owner.domain_id if owner is not None else domain_id, guest_type=guest_type, traffic_type="Guest",
        cidr=cidr, gateway=gateway, netmask=netmask, start_ip=start_ip, end_ip=end_ip,
        vlan=normal_vlan, vlan_specified=vlan is not None, provider=provider,
        state=NetworkState.SETUP if guest_type == "Shared" else NetworkState.ALLOCATED,
        network_offering_id=offering.id, physical_network_id=physical.id if physical else None,
        network_domain=network_domain or (_network_domain(session, zone, owner) if cidr else None),
        acl_type=acl_type or ("Domain" if guest_type == "Shared" else "Account"), dns1=dns1, dns2=dns2,
        subdomain_access=subdomain_access)
    session.add(network)
    session.flush()
    if counts_as_network(session, network):
        limits.reserve(session, owner, limits.ResourceType.NETWORK, 1)
    if normal_vlan not in (None, "untagged") and physical is not None:
        _take_vlan(session, physical, int(normal_vlan), network)
    if guest_type == "Shared":
        session.add(VlanIpRange(zone_id=zone.id, physical_network_id=network.physical_network_id,
                                network_id=network.id, vlan_tag=normal_vlan or "untagged", gateway=gateway,
                                netmask=netmask, start_ip=start_ip, end_ip=end_ip, vlan_type="DirectAttached"))
        session.flush()
    return network


def _cidr(gateway: str, netmask: str) -> str:
    try:
        return str(ipaddress.IPv4Interface(f"{gateway.strip()}/{netmask.strip()}").network)
    except ValueError:
        raise InvalidParameterError(f"gateway {gateway} with netmask {netmask} is not a valid IPv4 network") from None


def _ip_range(cidr: str, gateway: str, start: str | None, end: str | None, *, required: bool) -> tuple[str, str]:
    net = ipaddress.IPv4Network(cidr)
    if net.num_addresses < 4:
        raise InvalidParameterError(f"network {cidr} is too small for guests")
    try:
        first = ipaddress.IPv4Address(start) if start else None
        last = ipaddress.IPv4Address(end) if end else first
    except ValueError:
        raise InvalidParameterError(f"startip/endip {start}/{end} are not IPv4 addresses") from None
    if first is None:
        if required:
            raise InvalidParameterError("startip is required for a shared network")
        return str(net.network_address + 1), str(net.broadcast_address - 1)
    if first not in net or last not in net or first > last:
        raise InvalidParameterError(f"the IP range {first}-{last} is not a range inside {cidr}")
    if ipaddress.IPv4Address(gateway) not in net:
        raise InvalidParameterError(f"the gateway {gateway} is not inside {cidr}")
    return str(first), str(last)


def _vlan_value(vlan: str) -> str:
    text = str(vlan).strip().lower()
    if text.startswith("vlan://"):
        text = text[len("vlan://"):]
    if text == "untagged":
        return "untagged"
    if not text.isdigit() or not 1 <= int(text) <= 4094:
        raise InvalidParameterError(f"vlan {vlan!r} is not a VLAN id (1-4094) or 'untagged'")
    return str(int(text))


def _check_vlan_free(session: Session, physical: PhysicalNetwork, vlan: int) -> None:
    holder = session.scalar(select(Network).join(GuestVlan, GuestVlan.network_id == Network.id)
                            .where(GuestVlan.physical_network_id == physical.id, GuestVlan.vlan == vlan))
    if holder is not None:
        raise NetworkRuleConflictError(f"VLAN {vlan} of physical network {physical.name} is already used by "
                                       f"network {holder.name} ({holder.uuid})")


def _take_vlan(session: Session, physical: PhysicalNetwork, vlan: int, network: Network) -> None:
    try:
        with session.begin_nested():
            session.add(GuestVlan(physical_network_id=physical.id, vlan=vlan, network_id=network.id))
            session.flush()
    except IntegrityError:
        raise NetworkRuleConflictError(f"VLAN {vlan} of physical network {physical.name} was just taken by "
                                       "another network") from None


def _check_shared_overlap(session: Session, zone: Zone, cidr: str, vlan: str | None) -> None:
    new = ipaddress.IPv4Network(cidr)
    for other in session.scalars(select(Network).where(Network.zone_id == zone.id, Network.removed.is_(None),
                                                       Network.guest_type == "Shared", Network.cidr.is_not(None))):
        if (other.vlan or "untagged") == (vlan or "untagged") and new.overlaps(ipaddress.IPv4Network(other.cidr)):
            raise NetworkRuleConflictError(
                f"the CIDR {cidr} overlaps {other.cidr} of shared network {other.name} ({other.uuid}) "
                f"on VLAN {vlan or 'untagged'}")
    for vlan_range in session.scalars(select(VlanIpRange).where(VlanIpRange.zone_id == zone.id,
                                                                VlanIpRange.vlan_type == "VirtualNetwork",
                                                                VlanIpRange.removed.is_(None))):
        if new.overlaps(ipaddress.IPv4Network(_cidr(vlan_range.gateway, vlan_range.netmask))):
            raise NetworkRuleConflictError(
                f"the CIDR {cidr} overlaps the public IP range {vlan_range.start_ip}-{vlan_range.end_ip} "
                f"({vlan_range.uuid})")


def network_for_deploy(cloud, session: Session, zone: Zone, owner: Account) -> Network:
    """The network a VM deployed without ``networkids`` goes on: in a Basic zone the zone's
    shared network; in an Advanced zone the account's one isolated network in the zone,
    made from the Required offering when the account has none (431 when it has several)."""
    from .network import default_network

    if zone.network_type != "Advanced":
        return default_network(session, zone)
    networks = session.scalars(select(Network).where(
        Network.zone_id == zone.id, Network.account_id == owner.id, Network.removed.is_(None),
        Network.guest_type == "Isolated").order_by(Network.id)).all()
    if len(networks) == 1:
        return networks[0]
    if len(networks) > 1:
        raise InvalidParameterError(
            f"account {owner.name} has {len(networks)} networks in zone {zone.name}: give networkids")
    offering = session.scalar(select(NetworkOffering).where(
        NetworkOffering.availability == "Required", NetworkOffering.guest_type == "Isolated",
        NetworkOffering.state == "Enabled", NetworkOffering.removed.is_(None)).order_by(NetworkOffering.id))
    if offering is None:
        raise InvalidParameterError(f"account {owner.name} has no network in zone {zone.name} and no Enabled "
                                    "Required isolated network offering exists to make one: give networkids")
    network = create_network(cloud, session, owner=owner, domain_id=owner.domain_id, zone=zone, offering=offering,
                             name=f"{owner.name}-network", display_text=f"Default network of {owner.name}")
    record(session, "NETWORK.CREATE", f"Created default network {network.name} for account {owner.name}",
           resource=network, plugins=cloud.plugins)
    return network


# -- the router's configuration -------------------------------------------------------------


def router_of(session: Session, network: Network) -> Router | None:
    return session.scalar(select(Router).where(Router.network_id == network.id, Router.removed.is_(None)))


def services_of(session: Session, network: Network) -> dict[str, str]:
    if network.network_offering_id is None:
        return {}
    return session.get(NetworkOffering, network.network_offering_id).providers()


def _public_section(session: Session, network: Network, addresses: list[PublicIpAddress]) -> dict | None:
    if not addresses:
        return None
    source = next((a for a in addresses if a.is_source_nat), addresses[0])
    vlan_range = source.vlan
    return {"bridge": traffic_label(session, network.zone_id, "Public") or "cloudbr0",
            "gateway": vlan_range.gateway, "netmask": vlan_range.netmask,
            "vlan": None if vlan_range.vlan_tag in (None, "untagged") else vlan_range.vlan_tag,
            "addresses": [a.address for a in sorted(addresses, key=lambda a: a.address_int)],
            "source_nat": next((a.address for a in addresses if a.is_source_nat), None)}


def _rule_dict(rule: NetworkRule, public: str | None) -> dict:
    return {"id": rule.uuid, "protocol": rule.protocol, "start": rule.start_port, "end": rule.end_port,
            "icmp_type": rule.icmp_type, "icmp_code": rule.icmp_code, "cidrs": list(rule.source_cidrs or []),
            "dest_cidrs": list(rule.dest_cidrs or []), "public": public}


def network_spec(session: Session, network: Network, *, router_state: str | None = None) -> dict[str, Any]:
    """Everything the network's element needs, computed in full from the database (the
    network dict of ``NetworkElement.implement_network``; ``plugins/network_vr/spec.py``
    documents its shape). ``router_state``: the state the router is to be in (default:
    Running unless the router is Stopped)."""
    zone = session.get(Zone, network.zone_id)
    offering = session.get(NetworkOffering, network.network_offering_id) if network.network_offering_id else None
    services = sorted(offering.providers()) if offering else []
    router = router_of(session, network)
    state = router_state or (router.state if router is not None and router.state == RouterState.STOPPED
                             else RouterState.RUNNING)
    guest_ip = router.guest_ip if router is not None and router.guest_ip else network.gateway
    upstream = [d for d in (network.dns1 or zone.dns1, network.dns2 or zone.dns2)
                if d and not d.startswith("127.") and d != guest_ip]
    addresses = list(session.scalars(select(PublicIpAddress).where(
        PublicIpAddress.network_id == network.id, PublicIpAddress.state == IpState.ALLOCATED)))
    by_id = {a.id: a for a in addresses}
    static_nat = {a.vm_ip: a.address for a in addresses if a.is_static_nat and a.vm_ip}
    source_nat = next((a.address for a in addresses if a.is_source_nat), None)
    nics = session.execute(select(Nic, VirtualMachine).join(VirtualMachine, VirtualMachine.id == Nic.vm_id)
                           .where(Nic.network_id == network.id, VirtualMachine.removed.is_(None))
                           .order_by(Nic.id)).all()
    rules = session.scalars(select(NetworkRule).where(NetworkRule.network_id == network.id,
                                                      NetworkRule.state.in_(LIVE_RULE_STATES))
                            .order_by(NetworkRule.id)).all()
    spec: dict[str, Any] = {
        "uuid": network.uuid, "name": network.name, "guest_type": network.guest_type, "cidr": network.cidr,
        "gateway": network.gateway, "netmask": network.netmask, "vlan": network.vlan,
        "network_domain": network.network_domain, "dns": upstream, "services": services,
        "guest": {"uplink": traffic_label(session, network.zone_id, "Guest", network.physical_network_id),
                  "isolation": isolation_of(session.get(PhysicalNetwork, network.physical_network_id)
                                            if network.physical_network_id else None)},
        "router": {"state": state, "name": router.name if router is not None else f"r-{network.id}-VM",
                   "guest_ip": guest_ip},
        "public": _public_section(session, network, addresses) if "SourceNat" in services or addresses else None,
        "nics": [{"mac": nic.mac_address, "ip": nic.ip_address, "hostname": vm.name, "vm": vm.uuid,
                  "default": nic.is_default, "user_data": vm.user_data, "instance": vm.instance_name,
                  "public_ip": static_nat.get(nic.ip_address, source_nat)} for nic, vm in nics],
        "static_nat": [{"public": a.address, "private": a.vm_ip} for a in addresses if a.is_static_nat and a.vm_ip],
        "port_forwarding": [], "firewall": [], "load_balancers": [],
        "egress": {"default_allow": offering.egress_default_policy if offering else True, "rules": []},
        "vpn": None,
    }
    for rule in rules:
        public = by_id[rule.ip_address_id].address if rule.ip_address_id in by_id else None
        if rule.purpose == "Firewall" and rule.traffic_type == "Egress":
            spec["egress"]["rules"].append(_rule_dict(rule, None))
        elif rule.purpose == "Firewall" and public:
            spec["firewall"].append(_rule_dict(rule, public))
        elif rule.purpose == "PortForwarding" and public:
            spec["port_forwarding"].append({
                "id": rule.uuid, "public": public, "protocol": rule.protocol, "public_start": rule.start_port,
                "public_end": rule.end_port, "private_ip": rule.dest_ip, "private_start": rule.dest_port_start,
                "private_end": rule.dest_port_end})
        elif rule.purpose == "LoadBalancing" and public:
            members = sorted({m.vm_ip for m in rule.members if m.state != RuleState.REVOKE})
            policy = next((s for s in rule.stickiness if s.state != RuleState.REVOKE), None)
            spec["load_balancers"].append({
                "id": rule.uuid, "name": rule.name, "public": public, "public_port": rule.start_port,
                "private_port": rule.dest_port_start, "algorithm": rule.algorithm, "protocol": rule.lb_protocol or "tcp",
                "members": members,
                "stickiness": {"method": policy.method_name, "params": dict(policy.params or {})} if policy else None})
    vpn = session.scalar(select(RemoteAccessVpn).where(RemoteAccessVpn.network_id == network.id,
                                                       RemoteAccessVpn.state != "Removed",
                                                       RemoteAccessVpn.removed.is_(None)))
    if vpn is not None and vpn.ip_address_id in by_id:
        users = session.scalars(select(VpnUser).where(VpnUser.account_id == vpn.account_id,
                                                      VpnUser.state.in_(LIVE_RULE_STATES),
                                                      VpnUser.removed.is_(None)).order_by(VpnUser.username))
        first, last = vpn.ip_range.split("-")
        pool_start = str(ipaddress.IPv4Address(first.strip()) + 1)
        spec["vpn"] = {"public": by_id[vpn.ip_address_id].address, "local_ip": vpn.local_ip,
                       "pool_start": pool_start, "pool_end": last.strip(), "psk": vpn.pre_shared_key,
                       "certificate": (vpn.details or {}).get("certificate", ""),
                       "key": (vpn.details or {}).get("key", ""),
                       "users": [{"username": u.username, "password_hash": u.password_hash} for u in users]}
    return spec


def legacy_network_dict(network: Network) -> dict:
    """The short dict of a network without a spec (what the core handed elements before)."""
    return {"uuid": network.uuid, "name": network.name, "cidr": network.cidr, "gateway": network.gateway,
            "netmask": network.netmask, "vlan": network.vlan, "details": dict(network.details or {})}


# -- implementing and applying -----------------------------------------------------------------


def _ensure_router(session: Session, network: Network) -> Router:
    router = router_of(session, network)
    if router is None:
        router = Router(name="pending", network_id=network.id, zone_id=network.zone_id,
                        account_id=network.account_id, domain_id=network.domain_id, state=RouterState.STARTING,
                        provider=network.provider, guest_ip=_router_guest_ip(session, network))
        session.add(router)
        session.flush()
        router.name = f"r-{router.id}-VM"
    return router


def _router_guest_ip(session: Session, network: Network) -> str | None:
    """The router's guest address: the gateway of an isolated network; in a shared network
    (where the gateway is someone else's) the highest free address of the range."""
    if network.guest_type != "Shared":
        return network.gateway
    taken = set(session.scalars(select(Nic.ip_address).where(Nic.network_id == network.id)))
    address = ipaddress.IPv4Address(network.end_ip)
    low = ipaddress.IPv4Address(network.start_ip)
    while address >= low:
        if str(address) not in taken and str(address) != network.gateway:
            return str(address)
        address -= 1
    raise InsufficientCapacityError(f"network {network.name} has no free address left for its router")


def _allocate_guest_vlan(session: Session, network: Network) -> None:
    if network.vlan is not None or network.physical_network_id is None or network.guest_type != "Isolated":
        return
    physical = session.get(PhysicalNetwork, network.physical_network_id)
    methods = {m.strip() for m in (physical.isolation_methods or "VLAN").upper().split(",")}
    ranges = parse_vlan_ranges(physical.vlan, MAX_VNI) if methods & {"VLAN", "VXLAN"} else []
    if not ranges:
        return
    taken = set(session.scalars(select(GuestVlan.vlan).where(GuestVlan.physical_network_id == physical.id)))
    for start, end in ranges:
        for vlan in range(start, end + 1):
            if vlan in taken:
                continue
            try:
                with session.begin_nested():
                    session.add(GuestVlan(physical_network_id=physical.id, vlan=vlan, network_id=network.id))
                    session.flush()
            except IntegrityError:
                continue  # another network took it meanwhile
            network.vlan = str(vlan)
            return
    raise InsufficientCapacityError(f"physical network {physical.name} has no free guest VLAN left "
                                    f"(ranges {physical.vlan})")


def acquire_public_ip(session: Session, zone: Zone, owner: Account, network: Network | None, *,
                      source_nat: bool = False, address: PublicIpAddress | None = None) -> PublicIpAddress:
    """The lowest Free public address of the zone (ranges dedicated to other accounts
    excluded), or ``address`` when one is asked for, Allocated to ``owner`` (and ``network``).
    533 when none is free, 537 when ``address`` is taken, 532 when the owner is at its
    public_ip limit (the caller's transaction must then roll back)."""
    from sqlalchemy import update

    for _attempt in range(20):
        candidate = address or session.scalar(
            select(PublicIpAddress).join(VlanIpRange, VlanIpRange.id == PublicIpAddress.vlan_id)
            .where(PublicIpAddress.zone_id == zone.id, PublicIpAddress.state == IpState.FREE,
                   VlanIpRange.vlan_type == "VirtualNetwork", VlanIpRange.removed.is_(None),
                   or_(VlanIpRange.account_id.is_(None), VlanIpRange.account_id == owner.id))
            .order_by(VlanIpRange.account_id.is_(None), PublicIpAddress.address_int).limit(1))
        if candidate is None:
            raise InsufficientCapacityError(f"zone {zone.name} has no free public IP address left")
        # a conditional UPDATE, so two transactions never take the same address
        taken = session.execute(update(PublicIpAddress).where(
            PublicIpAddress.id == candidate.id, PublicIpAddress.state == IpState.FREE).values(
            state=IpState.ALLOCATED, account_id=owner.id, domain_id=owner.domain_id,
            network_id=network.id if network is not None else None, is_source_nat=source_nat,
            allocated=utcnow()).execution_options(synchronize_session=False)).rowcount
        if taken:
            session.refresh(candidate)
            if _counted(session, candidate):  # as CloudStack: addresses of a dedicated range are not
                limits.reserve(session, owner, limits.ResourceType.PUBLIC_IP, 1)
                usage.record_row(session, "NET.IPASSIGN", candidate)
            return candidate
        if address is not None:
            raise NetworkRuleConflictError(f"public IP address {address.address} is already in use")
    raise InsufficientCapacityError(f"could not take a public IP address in zone {zone.name}: too much contention")


def _counted(session: Session, address: PublicIpAddress) -> bool:
    """Whether the address counts against its owner's public_ip limit and is charged (usage):
    yes unless its range is dedicated to the account (CloudStack's isIpDedicated)."""
    return session.get(VlanIpRange, address.vlan_id).account_id is None


def _count_public_ips(session: Session, account_id: int) -> int:
    return session.scalar(select(func.count(PublicIpAddress.id)).join(
        VlanIpRange, VlanIpRange.id == PublicIpAddress.vlan_id).where(
        PublicIpAddress.account_id == account_id, PublicIpAddress.state == IpState.ALLOCATED,
        VlanIpRange.account_id.is_(None)))


limits.register_counter(limits.ResourceType.PUBLIC_IP, _count_public_ips)


def counts_as_network(session: Session, network: Network) -> bool:
    """Whether the network counts against its account's network limit: as CloudStack's
    resourceCountNeedsUpdate, an account's network of an offering without specifyvlan."""
    if network.account_id is None or network.acl_type == "Domain":
        return False
    offering = session.get(NetworkOffering, network.network_offering_id) if network.network_offering_id else None
    return offering is None or not offering.specify_vlan


def delete_rules(session: Session, rules: Iterable[NetworkRule]) -> None:
    """Delete rules, the firewall rules opened for another rule (``related_id``) first."""
    rules = list(rules)
    for rule in sorted(rules, key=lambda r: r.related_id is None):
        session.delete(rule)
        session.flush()


def release_public_ip(session: Session, address: PublicIpAddress) -> None:
    """Free an address and remove what was on it (rules, VPN); the owner's public_ip count
    and its usage (NET.IPRELEASE) are given back. In the caller's transaction."""
    delete_rules(session, session.scalars(select(NetworkRule).where(NetworkRule.ip_address_id == address.id)))
    for vpn in session.scalars(select(RemoteAccessVpn).where(RemoteAccessVpn.ip_address_id == address.id)):
        session.delete(vpn)
    session.flush()
    if address.account_id is not None and address.state == IpState.ALLOCATED and _counted(session, address):
        limits.release(session, address.account_id, limits.ResourceType.PUBLIC_IP, 1)
        usage.record_row(session, "NET.IPRELEASE", address)
    address.state, address.account_id, address.domain_id, address.network_id = IpState.FREE, None, None, None
    address.is_source_nat = address.is_static_nat = False
    address.vm_id, address.vm_ip, address.allocated = None, None, None


def needs_router(session: Session, network: Network) -> bool:
    return network.provider is not None and bool(services_of(session, network))


def implement(cloud, network_uuid: str, *, caller=None) -> None:
    """Bring the network up: VLAN, source-NAT address, router running and configured.
    Idempotent; see the module docstring for what holds on failure."""
    with network_lock(cloud, network_uuid):
        with cloud.db.transaction() as session:
            network = _network(session, network_uuid)
            element = _element_or_fail(cloud, network)
            _allocate_guest_vlan(session, network)
            services = services_of(session, network)
            if "SourceNat" in services and not session.scalar(select(PublicIpAddress.id).where(
                    PublicIpAddress.network_id == network.id, PublicIpAddress.is_source_nat.is_(True))):
                owner = session.get(Account, network.account_id) if network.account_id else None
                if owner is None:
                    raise InvalidParameterError(f"network {network.name} has source NAT but no owning account")
                acquire_public_ip(session, session.get(Zone, network.zone_id), owner, network, source_nat=True)
            router = _ensure_router(session, network)
            router.state, router.last_error = RouterState.STARTING, None
            if network.state != NetworkState.IMPLEMENTED:
                network.state = NetworkState.IMPLEMENTING
            spec = network_spec(session, network, router_state=RouterState.RUNNING)
            spec["full_apply"] = True  # a (re)start overwrites whatever the router holds
        _apply(cloud, element, network_uuid, spec, caller=caller, starting=True)


def apply(cloud, network_uuid: str, *, caller=None, mark_error: bool = True) -> str:
    """Re-apply the network's configuration to a running router (computed anew from the
    database). Returns how the packet filter changed (the element's ``nft`` detail), or
    "not running" when the router is not Running (it gets the configuration when it starts).
    When the element fails the router and network go to Error (``mark_error``; a caller
    that will undo its change and apply again passes False) and 534 is raised."""
    with network_lock(cloud, network_uuid):
        with cloud.db.transaction() as session:
            network = _network(session, network_uuid)
            element = element_of(cloud, network)
            router = router_of(session, network)
            if element is None or router is None or router.state != RouterState.RUNNING:
                return "not running"
            spec = network_spec(session, network)
        return _apply(cloud, element, network_uuid, spec, caller=caller, mark_error=mark_error)


def _apply(cloud, element: NetworkElement, network_uuid: str, spec: dict, *, caller=None,
           starting: bool = False, mark_error: bool = True) -> str:
    try:
        details = element.implement_network(spec)
    except Exception as exc:
        reason = exc.message if isinstance(exc, StratoError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, StratoError):
            log.exception("the router of network %s failed", network_uuid)
        if mark_error or starting:
            _router_failed(cloud, network_uuid, reason, caller)
        raise ResourceUnavailableError(f"the router of network {spec['name']} failed: {reason}") from exc
    with cloud.db.transaction() as session:
        network = _network(session, network_uuid)
        router = router_of(session, network)
        _keep_details(session, network, router, details)
        if router.state != RouterState.RUNNING:
            router.state = RouterState.RUNNING
            record(session, "ROUTER.START", f"Started router {router.name} of network {network.name}",
                   caller=caller, resource=network, plugins=cloud.plugins)
        if starting or network.state in (NetworkState.IMPLEMENTING, NetworkState.ERROR):
            network.state = NetworkState.IMPLEMENTED
    return details.get("nft", "")


def _keep_details(session: Session, network: Network, router: Router, details: dict) -> None:
    details = dict(details or {})
    certificate, key = details.pop("vpn_certificate", None), details.pop("vpn_key", None)
    fingerprint = details.pop("vpn_fingerprint", None)
    if certificate and key:
        vpn = session.scalar(select(RemoteAccessVpn).where(RemoteAccessVpn.network_id == network.id,
                                                           RemoteAccessVpn.removed.is_(None)))
        if vpn is not None and not (vpn.details or {}).get("certificate"):
            vpn.details = {**(vpn.details or {}), "certificate": certificate, "key": key, "fingerprint": fingerprint}
    if details.get("bridge") and (network.details or {}).get("bridge") != details["bridge"]:
        network.details = {**(network.details or {}), "bridge": details["bridge"]}
    router.guest_mac = details.get("guest_mac") or router.guest_mac
    router.public_mac = details.get("public_mac")
    source = session.scalar(select(PublicIpAddress.address).where(PublicIpAddress.network_id == network.id,
                                                                  PublicIpAddress.is_source_nat.is_(True)))
    router.public_ip = source
    router.host_name = socket.gethostname()
    router.details = {k: v for k, v in details.items() if k != "nft"}


def _router_failed(cloud, network_uuid: str, reason: str, caller) -> None:
    """The router is down with ``reason``: Error for it and its network, in one transaction.
    The element removed what it built; a stopped router is asked for nothing more."""
    with cloud.db.transaction() as session:
        network = _network(session, network_uuid)
        router = router_of(session, network)
        if router is not None:
            router.state, router.last_error = RouterState.ERROR, reason
        network.state = NetworkState.ERROR
        record(session, "ROUTER.ERROR", f"The router of network {network.name} failed: {reason}", level="ERROR",
               caller=caller, resource=network, plugins=cloud.plugins)


def stop_router(cloud, network_uuid: str, *, caller=None) -> None:
    """Stop the router (the network's bridge stays, so guests keep talking to each other)."""
    with network_lock(cloud, network_uuid):
        with cloud.db.transaction() as session:
            network = _network(session, network_uuid)
            element = _element_or_fail(cloud, network)
            router = router_of(session, network)
            if router is None:
                return
            router.state = RouterState.STOPPING
            spec = network_spec(session, network, router_state=RouterState.STOPPED)
        try:
            element.implement_network(spec)
        except StratoError as exc:
            _router_failed(cloud, network_uuid, exc.message, caller)
            raise
        with cloud.db.transaction() as session:
            network = _network(session, network_uuid)
            router = router_of(session, network)
            router.state, router.last_error = RouterState.STOPPED, None
            record(session, "ROUTER.STOP", f"Stopped router {router.name}", caller=caller, resource=network,
                   plugins=cloud.plugins)


def restart(cloud, network_uuid: str, *, cleanup: bool, caller=None) -> None:
    """``restartNetwork``: re-apply everything; with ``cleanup`` tear the router down first
    and build it anew. Repairs a network in Error."""
    with network_lock(cloud, network_uuid):
        with cloud.db.transaction() as session:
            network = _network(session, network_uuid)
            router = router_of(session, network)
            if not needs_router(session, network):
                return
        if cleanup and router is not None:
            stop_router(cloud, network_uuid, caller=caller)
        implement(cloud, network_uuid, caller=caller)
        with cloud.db.transaction() as session:
            network = _network(session, network_uuid)
            network.restart_required = False
            record(session, "NETWORK.RESTART", f"Restarted network {network.name}" + (" (rebuilt)" if cleanup else ""),
                   caller=caller, resource=network, plugins=cloud.plugins)


def shutdown_and_delete(cloud, network_uuid: str, *, caller=None) -> None:
    """Remove the network: its router and bridge from the host, then (one transaction) its
    rules, VPN, addresses (Free again), VLAN and router rows; the network is Destroyed."""
    with network_lock(cloud, network_uuid):
        with cloud.db.transaction() as session:
            network = _network(session, network_uuid)
            element = element_of(cloud, network)
            in_use = session.scalar(select(func.count()).select_from(Nic).join(
                VirtualMachine, VirtualMachine.id == Nic.vm_id).where(
                Nic.network_id == network.id, VirtualMachine.removed.is_(None)))
            if in_use:
                raise ResourceInUseError(f"network {network.name} still has {in_use} VM NIC(s); expunge its VMs first")
            spec = network_spec(session, network, router_state=RouterState.STOPPED)
        if element is not None:
            element.shutdown_network(spec)
        with cloud.db.transaction() as session:
            network = _network(session, network_uuid)
            for address in session.scalars(select(PublicIpAddress).where(PublicIpAddress.network_id == network.id)):
                release_public_ip(session, address)
            delete_rules(session, session.scalars(select(NetworkRule).where(NetworkRule.network_id == network.id)))
            for vpn in session.scalars(select(RemoteAccessVpn).where(RemoteAccessVpn.network_id == network.id)):
                session.delete(vpn)
            for vlan in session.scalars(select(GuestVlan).where(GuestVlan.network_id == network.id)):
                session.delete(vlan)
            for ip_range in session.scalars(select(VlanIpRange).where(VlanIpRange.network_id == network.id)):
                ip_range.removed = utcnow()
            router = router_of(session, network)
            if router is not None:
                router.removed, router.state = utcnow(), "Destroyed"
            if counts_as_network(session, network):
                limits.release(session, network.account_id, limits.ResourceType.NETWORK, 1)
            network.removed, network.state = utcnow(), NetworkState.DESTROY
            record(session, "NETWORK.DELETE", f"Deleted network {network.name}", caller=caller, resource=network,
                   plugins=cloud.plugins)


# -- rules: applying what commands wrote ---------------------------------------------------------


def apply_rules(cloud, network_uuid: str, *, added: Iterable[str] = (), revoked: Iterable[str] = (),
                members_added: Iterable[int] = (), members_revoked: Iterable[int] = (),
                users_added: Iterable[str] = (), users_revoked: Iterable[str] = (),
                policies_added: Iterable[str] = (), policies_revoked: Iterable[str] = (),
                vpns_added: Iterable[str] = (), vpns_revoked: Iterable[str] = (), caller=None) -> str:
    """Put rule changes the database holds (``Add`` / ``Revoke`` rows) on the router and
    settle them; see the module docstring for the failure contract. Returns how the
    router's packet filter changed ("not running" when there is no running router: the
    rules are then simply settled and reach the router when it starts)."""
    added, revoked = list(added), list(revoked)
    members_added, members_revoked = list(members_added), list(members_revoked)
    users_added, users_revoked = list(users_added), list(users_revoked)
    changes = dict(added=added, revoked=revoked, members_added=members_added, members_revoked=members_revoked,
                   users_added=users_added, users_revoked=users_revoked, policies_added=list(policies_added),
                   policies_revoked=list(policies_revoked), vpns_added=list(vpns_added),
                   vpns_revoked=list(vpns_revoked))
    with network_lock(cloud, network_uuid):
        try:
            how = apply(cloud, network_uuid, caller=caller, mark_error=False)
        except StratoError:
            settle_changes(cloud, **changes, success=False)
            try:
                apply(cloud, network_uuid, caller=caller)
            except StratoError:  # the router stays in Error with its reason; the first error is the answer
                log.warning("re-applying network %s after a refused change failed too", network_uuid)
            raise
        settle_changes(cloud, **changes, success=True)
        return how


def apply_rule_update(cloud, network_uuid: str, rule_uuid: str, previous: dict[str, Any], *, caller=None) -> None:
    """Put a rule edited in place (``updatePortForwardingRule``) on the router. When the router
    refuses, the rule gets its ``previous`` column values back, the router is re-applied and
    the router's error raised (as ``apply_rules``)."""
    with network_lock(cloud, network_uuid):
        try:
            apply(cloud, network_uuid, caller=caller, mark_error=False)
        except StratoError:
            with cloud.db.transaction() as session:
                rule = session.scalar(select(NetworkRule).where(NetworkRule.uuid == rule_uuid))
                for column, value in previous.items():
                    setattr(rule, column, value)
            try:
                apply(cloud, network_uuid, caller=caller)
            except StratoError:
                log.warning("re-applying network %s after a refused rule update failed too", network_uuid)
            raise


def settle_changes(cloud, *, added=(), revoked=(), members_added=(), members_revoked=(), users_added=(),
                   users_revoked=(), policies_added=(), policies_revoked=(), vpns_added=(), vpns_revoked=(),
                   success: bool) -> None:
    """Make a change the router now has final (``success``: Add rows Active, Revoke rows
    gone) or take it back (Add rows gone, Revoke rows Active again), in one transaction."""
    from ..model import StickinessPolicy

    with cloud.db.transaction() as session:
        for vpn in session.scalars(select(RemoteAccessVpn).where(
                RemoteAccessVpn.uuid.in_(list(vpns_added)))) if vpns_added else ():
            if success:
                vpn.state = "Running"
            else:
                session.delete(vpn)
        for vpn in session.scalars(select(RemoteAccessVpn).where(
                RemoteAccessVpn.uuid.in_(list(vpns_revoked)))) if vpns_revoked else ():
            if success:
                session.delete(vpn)
            else:
                vpn.state = "Running"
        for policy in session.scalars(select(StickinessPolicy).where(
                StickinessPolicy.uuid.in_(list(policies_added)))) if policies_added else ():
            if success:
                policy.state = RuleState.ACTIVE
            else:
                session.delete(policy)
        for policy in session.scalars(select(StickinessPolicy).where(
                StickinessPolicy.uuid.in_(list(policies_revoked)))) if policies_revoked else ():
            if success:
                session.delete(policy)
            else:
                policy.state = RuleState.ACTIVE
        new = session.scalars(select(NetworkRule).where(NetworkRule.uuid.in_(list(added)))).all() if added else []
        gone = session.scalars(select(NetworkRule).where(NetworkRule.uuid.in_(list(revoked)))).all() if revoked else []
        for rule in new if success else gone:
            rule.state = RuleState.ACTIVE
        delete_rules(session, gone if success else new)
        for member in session.scalars(select(LoadBalancerMember).where(
                LoadBalancerMember.id.in_(list(members_added)))) if members_added else ():
            if success:
                member.state = RuleState.ACTIVE
            else:
                session.delete(member)
        for member in session.scalars(select(LoadBalancerMember).where(
                LoadBalancerMember.id.in_(list(members_revoked)))) if members_revoked else ():
            if success:
                session.delete(member)
            else:
                member.state = RuleState.ACTIVE
        for user in session.scalars(select(VpnUser).where(VpnUser.uuid.in_(list(users_added)))) if users_added else ():
            if success:
                user.state = RuleState.ACTIVE
            else:
                session.delete(user)
        for user in session.scalars(select(VpnUser).where(
                VpnUser.uuid.in_(list(users_revoked)))) if users_revoked else ():
            if success:
                session.delete(user)
            else:
                user.state = RuleState.ACTIVE


def networks_of_account(session: Session, account_id: int) -> list[str]:
    """The uuids of the account's networks with a remote-access VPN (VPN users apply to them all)."""
    return list(session.scalars(select(Network.uuid).join(RemoteAccessVpn, RemoteAccessVpn.network_id == Network.id)
                                .where(RemoteAccessVpn.account_id == account_id, RemoteAccessVpn.removed.is_(None),
                                       Network.removed.is_(None))))


def apply_after_commit(cloud, session: Session, network_ids: Iterable[int]) -> None:
    """Re-apply these networks' routers once ``session`` commits (a failure is logged: the
    change stands, and the router is in Error with the reason until a restart)."""
    uuids = list(session.scalars(select(Network.uuid).where(Network.id.in_(list(network_ids))))) \
        if network_ids else []
    if not uuids:
        return

    def run():
        for uuid in uuids:
            try:
                apply(cloud, uuid)
            except StratoError as exc:
                log.warning("re-applying network %s failed: %s", uuid, exc.message)

    after_commit(session, run)


def forget_vm(session: Session, vm_id: int) -> set[int]:
    """Remove what names an expunged VM: port-forwarding rules, load-balancer membership,
    static NAT. Returns the ids of the networks whose routers change."""
    touched: set[int] = set()
    for rule in session.scalars(select(NetworkRule).where(NetworkRule.vm_id == vm_id)).all():
        touched.add(rule.network_id)
        related = session.scalars(select(NetworkRule).where(NetworkRule.related_id == rule.id)).all()
        delete_rules(session, [*related, rule])
    for member in session.scalars(select(LoadBalancerMember).where(LoadBalancerMember.vm_id == vm_id)):
        touched.add(member.rule.network_id)
        session.delete(member)
    for address in session.scalars(select(PublicIpAddress).where(PublicIpAddress.vm_id == vm_id)):
        touched.add(address.network_id)
        address.is_static_nat, address.vm_id, address.vm_ip = False, None, None
    touched.update(session.scalars(select(Nic.network_id).where(Nic.vm_id == vm_id)))
    session.flush()
    return {t for t in touched if t is not None}


# -- VMs: the start and stop hooks vm.py calls ------------------------------------------------------


def prepare_vm_nics(cloud, vm_uuid: str, spec: VmSpec) -> list[NicSpec]:
    """Before a VM starts: bring each of its networks' routers up (implementing the network
    the first time) with the VM's NIC in their configuration, and let each element place its
    NICs. Raises the router's error when one fails (the VM then does not start)."""
    with cloud.db.transaction() as session:
        vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
        plan = []
        for nic in vm.nics:
            network = nic.network
            element = element_of(cloud, network)
            if element is None:
                continue
            implemented = network.state == NetworkState.IMPLEMENTED
            router = router_of(session, network)
            running = router is not None and router.state == RouterState.RUNNING
            plan.append((network.uuid, nic.mac_address, element, needs_router(session, network),
                         implemented and running))
    placed = {}
    for network_uuid, mac, element, with_router, up in plan:
        if with_router:
            if up:
                apply(cloud, network_uuid)
            else:
                implement(cloud, network_uuid)
        with cloud.db.transaction() as session:
            network = _network(session, network_uuid)
            network_dict = network_spec(session, network, router_state=None if with_router
                                        else RouterState.STOPPED)
        for nic in spec.nics:
            if nic.mac_address == mac:
                placed[mac] = element.prepare_nic(network_dict, nic, spec)
    return [placed.get(nic.mac_address, nic) for nic in spec.nics]


def release_vm_nics(cloud, vm_uuid: str, spec: VmSpec) -> None:
    """After a VM stopped: tell each element about its NICs (failures are logged; the VM is
    stopped whatever an element says)."""
    with cloud.db.transaction() as session:
        vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
        plan = [(element_of(cloud, nic.network), legacy_network_dict(nic.network), nic.mac_address)
                for nic in vm.nics]
    for element, network_dict, mac in plan:
        if element is None:
            continue
        for nic in spec.nics:
            if nic.mac_address == mac:
                try:
                    element.release_nic(network_dict, nic, spec)
                except Exception:  # the VM is off either way; the log says which element failed
                    log.exception("releasing NIC %s on network %s failed", mac, network_dict["uuid"])


# -- deleting an account (identity's cleaners) ----------------------------------------------------


def delete_vpn_users_of(cloud, account_id: int) -> None:
    """The account's VPN users go; the routers of its VPNs follow after the commit."""
    with cloud.db.transaction() as session:
        for user in session.scalars(select(VpnUser).where(VpnUser.account_id == account_id)):
            session.delete(user)
        apply_after_commit(cloud, session, session.scalars(select(RemoteAccessVpn.network_id).where(
            RemoteAccessVpn.account_id == account_id, RemoteAccessVpn.removed.is_(None))))


def delete_networks_of(cloud, account_id: int, caller=None) -> None:
    """Every network of the account, as deleteNetwork does: router and bridge off the host,
    rules, VPN and addresses (released, usage closed, counts given back) out of the database.
    Its VMs must be gone already (the "vms" cleaner runs first)."""
    with cloud.db.transaction() as session:
        uuids = list(session.scalars(select(Network.uuid).where(Network.account_id == account_id,
                                                                Network.removed.is_(None)).order_by(Network.id)))
    for network_uuid in uuids:
        shutdown_and_delete(cloud, network_uuid, caller=caller)


def release_public_ips_of(cloud, account_id: int) -> None:
    """The account's addresses left after its networks went (those acquired without a
    network): released with what is on them."""
    with cloud.db.transaction() as session:
        addresses = list(session.scalars(select(PublicIpAddress).where(PublicIpAddress.account_id == account_id)))
        touched = {a.network_id for a in addresses if a.network_id is not None}
        for address in addresses:
            record(session, "NET.IPRELEASE", f"Released public IP {address.address}", resource=address,
                   plugins=cloud.plugins)
            release_public_ip(session, address)
        apply_after_commit(cloud, session, touched)


def _register_cleaners() -> None:
    from . import identity

    # after "vms" (expunging a VM already removes its rules and static NAT), in this order
    for name, cleaner in (("vpn users", delete_vpn_users_of), ("networks", delete_networks_of),
                          ("public ips", release_public_ips_of)):
        identity.register_cleaner(name, cleaner, before="templates")


_register_cleaners()


# -- recovery -------------------------------------------------------------------------------------


def settle_interrupted(cloud) -> list[str]:
    """At start-up: a network left Implementing, or a router left Starting or Stopping, by a
    process that died (no pending job works on it or on a VM of it) goes to Error with the
    reason, so it shows and ``restartNetwork`` repairs it. Returns the networks' uuids."""
    from ..model import AsyncJob, JobStatus

    with cloud.db.transaction() as session:
        busy = set(session.scalars(select(AsyncJob.instance_uuid).where(
            AsyncJob.status == JobStatus.PENDING, AsyncJob.instance_uuid.is_not(None))))
        stuck = session.scalars(select(Network).where(Network.removed.is_(None), or_(
            Network.state == NetworkState.IMPLEMENTING, Network.id.in_(select(Router.network_id).where(
                Router.removed.is_(None), Router.state.in_((RouterState.STARTING, RouterState.STOPPING))))))).all()
        settled = []
        for network in stuck:
            vms = set(session.scalars(select(VirtualMachine.uuid).join(Nic, Nic.vm_id == VirtualMachine.id)
                                      .where(Nic.network_id == network.id)))
            if network.uuid in busy or vms & busy:
                continue
            reason = "interrupted: the management server or worker changing the router stopped; restart the network"
            router = router_of(session, network)
            if router is not None and router.state in (RouterState.STARTING, RouterState.STOPPING):
                router.state, router.last_error = RouterState.ERROR, reason
            network.state = NetworkState.ERROR
            record(session, "ROUTER.ERROR", f"The router of network {network.name} was {reason}", level="ERROR",
                   resource=network, plugins=cloud.plugins)
            settled.append(network.uuid)
        return settled


# -- helpers ------------------------------------------------------------------------------------


def _network(session: Session, network_uuid: str) -> Network:
    network = session.scalar(select(Network).where(Network.uuid == network_uuid))
    if network is None or network.removed is not None:
        raise InvalidParameterError(f"network {network_uuid} does not exist")
    return network


def _element_or_fail(cloud, network: Network) -> NetworkElement:
    element = element_of(cloud, network)
    if element is None:
        raise UnsupportedError(f"network {network.name} has no enabled network plugin "
                               f"(provider {network.provider or 'none'})")
    return element


def new_pre_shared_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(24))


def ip_int(address: str) -> int:
    return int(ipaddress.IPv4Address(address))
