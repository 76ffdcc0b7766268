"""Guest networks as far as a VM needs them: the network to put NICs on (the zone's
shared network in a Basic zone; in an Advanced zone the account's default isolated
network, see ``networking.network_for_deploy``), an address and a MAC for each NIC, and
the network plugin's prepare/release calls around a VM's start and stop.

Addresses and MACs are unique by database constraint; allocation inserts inside a
savepoint and moves on to the next candidate when another transaction won the race.
The rest of guest networking (offerings, routers, public addresses, rules) is in
``networking``.
"""

from __future__ import annotations

import ipaddress
import random

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import InsufficientCapacityError, InvalidParameterError
from ..model import Nic, Network, Pod, Router, Zone


def default_network(session: Session, zone: Zone) -> Network:
    """The zone's shared guest network, made from its first pod's IP range the first time
    (CloudStack's basic zone: guests take addresses from the pod's range), of CloudStack's
    Basic-zone offering (DefaultSharedNetworkOfferingWithSGService)."""
    from .networking import basic_zone_offering

    network = session.scalar(select(Network).where(
        Network.zone_id == zone.id, Network.guest_type == "Shared", Network.account_id.is_(None),
        Network.removed.is_(None)).order_by(Network.id).limit(1))
    if network is not None:
        return network
    pod = session.scalar(select(Pod).where(Pod.zone_id == zone.id, Pod.removed.is_(None)).order_by(Pod.id))
    if pod is None:
        raise InvalidParameterError(f"zone {zone.name} has no pod, so no guest IP range to take addresses from")
    interface = ipaddress.ip_interface(f"{pod.gateway}/{pod.netmask}")
    network = Network(name=f"{zone.name}-guest", display_text=f"Guest network of zone {zone.name}",
                      zone_id=zone.id, guest_type="Shared", cidr=str(interface.network), gateway=pod.gateway,
                      netmask=pod.netmask, start_ip=pod.start_ip, end_ip=pod.end_ip or pod.start_ip,
                      state="Setup", network_offering_id=basic_zone_offering(session).id)
    session.add(network)
    session.flush()
    return network


def _candidates(network: Network):
    if not network.cidr:  # an L2 network: the guests bring their own addresses
        return
    net = ipaddress.ip_network(network.cidr, strict=False)
    start = ipaddress.ip_address(network.start_ip) if network.start_ip else net.network_address + 1
    end = ipaddress.ip_address(network.end_ip) if network.end_ip else net.broadcast_address - 1
    gateway = ipaddress.ip_address(network.gateway) if network.gateway else None
    address = start
    while address <= end:
        if address != gateway:
            yield str(address)
        address += 1


def allocate_nic(session: Session, network: Network, vm_id: int, device_id: int, is_default: bool) -> Nic:
    """Add a NIC with the lowest free address of the network (none on an L2 network) and a
    unique MAC. The network's router keeps its own address (``Router.guest_ip``)."""
    if not network.cidr:
        return _nic_without_address(session, network, vm_id, device_id, is_default)
    taken = set(session.scalars(select(Nic.ip_address).where(Nic.network_id == network.id)))
    taken.update(session.scalars(select(Router.guest_ip).where(Router.network_id == network.id,
                                                               Router.removed.is_(None))))
    for address in _candidates(network):
        if address in taken:
            continue
        for _attempt in range(5):
            nic = Nic(vm_id=vm_id, network_id=network.id, device_id=device_id, is_default=is_default,
                      ip_address=address, netmask=network.netmask, gateway=network.gateway,
                      mac_address=_random_mac())
            try:
                with session.begin_nested():
                    session.add(nic)
                    session.flush()
                return nic
            except IntegrityError:
                session.expunge(nic) if nic in session else None
                if session.scalar(select(Nic.id).where(Nic.network_id == network.id, Nic.ip_address == address)):
                    break  # the address went to someone else; the MAC collided otherwise
    raise InsufficientCapacityError(f"network {network.name} has no free IP address left")


def _nic_without_address(session: Session, network: Network, vm_id: int, device_id: int, is_default: bool) -> Nic:
    for _attempt in range(5):
        nic = Nic(vm_id=vm_id, network_id=network.id, device_id=device_id, is_default=is_default,
                  mac_address=_random_mac())
        try:
            with session.begin_nested():
                session.add(nic)
                session.flush()
            return nic
        except IntegrityError:
            session.expunge(nic) if nic in session else None
    raise InsufficientCapacityError(f"no free MAC address for a NIC on network {network.name}")


def release_nics(session: Session, vm_id: int, cloud=None) -> None:
    """Remove the VM's NICs, freeing their addresses for reuse (at expunge), with the rules
    that name the VM (port forwarding, load-balancer membership, static NAT). With
    ``cloud``, the routers of the VM's networks are brought up to date after the commit."""
    from . import networking

    network_ids = networking.forget_vm(session, vm_id)
    for nic in session.scalars(select(Nic).where(Nic.vm_id == vm_id)):
        session.delete(nic)
    if cloud is not None:
        networking.apply_after_commit(cloud, session, network_ids)


def _random_mac() -> str:
    # 02: locally administered, unicast
    return "02:00:" + ":".join(f"{random.randint(0, 255):02x}" for _ in range(4))
