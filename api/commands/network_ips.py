"""IP ranges and public addresses: createVlanIpRange, listVlanIpRanges, deleteVlanIpRange,
associateIpAddress, disassociateIpAddress, listPublicIpAddresses, enableStaticNat,
disableStaticNat (IP forwarding rules are in network_rules).

Every address of a public range has its row from creation on (CloudStack's
user_ip_address), so acquiring one is a conditional UPDATE of a Free row and two accounts
never get the same address.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import and_, insert, or_, select

from api.views.network import ADDRESS_FIELDS, VLAN_RANGE_FIELDS, address_view, vlan_range_view
from core.commands import ADMINS, ALL_ROLES, ROOT_ONLY, SUCCESS, P, api_command
from core.errors import InvalidParameterError, NetworkRuleConflictError, PermissionDenied, ResourceInUseError
from core.jobs import job_handler
from core.model import (
    Account,
    IpState,
    Network,
    NetworkRule,
    Nic,
    PhysicalNetwork,
    Pod,
    PublicIpAddress,
    RemoteAccessVpn,
    RuleState,
    VirtualMachine,
    VlanIpRange,
    Zone,
    new_uuid,
    utcnow,
)
from core.orchestration import networking

from .networks import is_admin, owner_of
from .zones import invalid

# -- IP ranges ---------------------------------------------------------------------------------


def _address(ctx, param: str, value: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError:
        raise invalid(ctx, param, f"'{value}' is not an IPv4 address") from None


@api_command("createVlanIpRange", response="vlan", roles=ROOT_ONLY, response_fields=VLAN_RANGE_FIELDS, params={
    "zoneid": P.uuid("the Zone ID of the VLAN IP range"),
    "podid": P.uuid("optional parameter. Have to be specified for Direct Untagged vlan only."),
    "networkid": P.uuid("the network id (a shared network's range)"),
    "physicalnetworkid": P.uuid("the physical network id"),
    "vlan": P.string("the ID or VID of the VLAN; untagged by default"),
    "gateway": P.string("the gateway of the VLAN IP range", max_length=64),
    "netmask": P.string("the netmask of the VLAN IP range", max_length=64),
    "startip": P.string("the beginning IP address in the VLAN IP range", max_length=64),
    "endip": P.string("the ending IP address in the VLAN IP range (default: startip)", max_length=64),
    "forvirtualnetwork": P.boolean("true if VLAN is of Virtual type (public addresses), false if Direct"),
    "account": P.string("account who will own the VLAN (with domainid)"),
    "domainid": P.uuid("domain ID of the account owning a VLAN"),
    "projectid": P.uuid("project who will own the VLAN"),
    "forsystemvms": P.boolean("true if IP range is set to system vms"),
    "description": P.string("the description of the range"),
})
def create_vlan_ip_range(ctx, p):
    """Creates a VLAN IP range: public addresses of a zone, or more addresses of a shared network.
    537 when it overlaps another range or a shared network of the zone."""
    network = None
    if "networkid" in p:
        network = ctx.get(Network, p["networkid"], "networkid", check_owner=False)
        zone = ctx.session.get(Zone, network.zone_id)
        if network.guest_type != "Shared":
            raise invalid(ctx, "networkid", "IP ranges can be added to shared networks only")
    elif "zoneid" in p:
        zone = ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False)
    else:
        raise InvalidParameterError("Unable to execute API command createvlaniprange due to missing parameter zoneid")
    for param in ("startip",):
        if not p.get(param):
            raise InvalidParameterError(f"Unable to execute API command createvlaniprange due to missing parameter {param}")
    gateway = p.get("gateway") or (network.gateway if network else None)
    netmask = p.get("netmask") or (network.netmask if network else None)
    if not gateway or not netmask:
        raise InvalidParameterError("gateway and netmask are required for a public IP range")
    start = _address(ctx, "startip", p["startip"])
    end = _address(ctx, "endip", p.get("endip") or p["startip"])
    _address(ctx, "gateway", gateway)
    cidr = ipaddress.IPv4Network(networking._cidr(gateway, netmask))
    if start > end:
        raise invalid(ctx, "endip", f"{end} comes before startip {start}")
    if start not in cidr or end not in cidr:
        raise invalid(ctx, "startip", f"the range {start}-{end} is not inside {cidr} (gateway {gateway})")
    size = int(end) - int(start) + 1
    if size > networking.MAX_RANGE:
        raise invalid(ctx, "endip", f"a range takes at most {networking.MAX_RANGE} addresses, not {size}")
    public = p.get("forvirtualnetwork", network is None)
    if network is not None and public:
        raise invalid(ctx, "forvirtualnetwork", "a shared network's range is not for the virtual network")
    vlan_tag = networking._vlan_value(p["vlan"]) if p.get("vlan") else (network.vlan if network else None) or "untagged"
    physical = ctx.get(PhysicalNetwork, p["physicalnetworkid"], "physicalnetworkid", check_owner=False) \
        if "physicalnetworkid" in p else None
    if physical is None and network is None:
        physical = ctx.session.scalar(select(PhysicalNetwork).where(
            PhysicalNetwork.zone_id == zone.id, PhysicalNetwork.removed.is_(None)).order_by(PhysicalNetwork.id))
    _check_overlap(ctx, zone, start, end, gateway, netmask, vlan_tag)
    owner = owner_of(ctx, p) if "account" in p or "projectid" in p else None
    ip_range = VlanIpRange(
        zone_id=zone.id, physical_network_id=physical.id if physical else network.physical_network_id,
        network_id=network.id if network else None,
        pod_id=ctx.get(Pod, p["podid"], "podid", check_owner=False).id if "podid" in p else None,
        vlan_tag=vlan_tag, gateway=gateway, netmask=netmask, start_ip=str(start), end_ip=str(end),
        vlan_type="VirtualNetwork" if public else "DirectAttached",
        account_id=owner.id if owner else None, domain_id=owner.domain_id if owner else None,
        for_system_vms=p.get("forsystemvms", False), description=p.get("description"))
    ctx.session.add(ip_range)
    ctx.session.flush()
    if public:
        now = utcnow()
        ctx.session.execute(insert(PublicIpAddress), [
            {"uuid": new_uuid(), "created": now, "address": str(ipaddress.IPv4Address(i)), "address_int": i,
             "zone_id": zone.id, "vlan_id": ip_range.id, "physical_network_id": ip_range.physical_network_id,
             "state": IpState.FREE} for i in range(int(start), int(end) + 1)])
    else:
        _widen_shared(network, start, end)
    ctx.event("VLAN.IP.RANGE.CREATE", f"Created IP range {start}-{end} in zone {zone.name}", ip_range)
    return vlan_range_view(ctx.session, ip_range)


def _widen_shared(network: Network, start, end) -> None:
    """A shared network's guests take addresses from start_ip..end_ip: the new range widens it."""
    low = min(ipaddress.IPv4Address(network.start_ip), start)
    high = max(ipaddress.IPv4Address(network.end_ip), end)
    network.start_ip, network.end_ip = str(low), str(high)


def _check_overlap(ctx, zone: Zone, start, end, gateway: str, netmask: str, vlan_tag: str) -> None:
    for other in ctx.session.scalars(select(VlanIpRange).where(VlanIpRange.zone_id == zone.id,
                                                               VlanIpRange.removed.is_(None))):
        low, high = ipaddress.IPv4Address(other.start_ip), ipaddress.IPv4Address(other.end_ip)
        if start <= high and low <= end:
            raise NetworkRuleConflictError(
                f"the IP range {start}-{end} overlaps the range {other.start_ip}-{other.end_ip} ({other.uuid}) "
                f"of zone {zone.name}")
        if other.vlan_tag == vlan_tag and (other.gateway != gateway or other.netmask != netmask):
            same_net = ipaddress.IPv4Network(networking._cidr(other.gateway, other.netmask))
            if same_net.overlaps(ipaddress.IPv4Network(networking._cidr(gateway, netmask))):
                raise NetworkRuleConflictError(
                    f"the range's subnet {networking._cidr(gateway, netmask)} overlaps {same_net} of range "
                    f"{other.uuid} on the same VLAN with another gateway")
    candidate = ipaddress.IPv4Network(networking._cidr(gateway, netmask))
    for network in ctx.session.scalars(select(Network).where(Network.zone_id == zone.id, Network.removed.is_(None),
                                                             Network.guest_type == "Shared",
                                                             Network.cidr.is_not(None))):
        if (network.vlan or "untagged") != vlan_tag and candidate.overlaps(ipaddress.IPv4Network(network.cidr)):
            raise NetworkRuleConflictError(
                f"the range's subnet {candidate} overlaps {network.cidr} of shared network {network.name} "
                f"({network.uuid})")


@api_command("listVlanIpRanges", response="vlaniprange", is_list=True, roles=ADMINS,
             response_fields=VLAN_RANGE_FIELDS, params={
                 "id": P.uuid("the ID of the VLAN IP range"), "zoneid": P.uuid("the Zone ID of the VLAN IP range"),
                 "networkid": P.uuid("network id of the VLAN IP range"),
                 "physicalnetworkid": P.uuid("physical network id of the VLAN IP range"),
                 "podid": P.uuid("the Pod ID of the VLAN IP range"), "vlan": P.string("the ID or VID of the VLAN"),
                 "forvirtualnetwork": P.boolean("true if VLAN is of Virtual type"),
             })
def list_vlan_ip_ranges(ctx, p):
    """Lists all VLAN IP ranges."""
    query = select(VlanIpRange).where(VlanIpRange.removed.is_(None))
    if "id" in p:
        query = query.where(VlanIpRange.uuid == p["id"])
    for param, model, column in (("zoneid", Zone, VlanIpRange.zone_id), ("networkid", Network, VlanIpRange.network_id),
                                 ("physicalnetworkid", PhysicalNetwork, VlanIpRange.physical_network_id),
                                 ("podid", Pod, VlanIpRange.pod_id)):
        if param in p:
            query = query.where(column == ctx.get(model, p[param], param, check_owner=False).id)
    if "vlan" in p:
        query = query.where(VlanIpRange.vlan_tag == networking._vlan_value(p["vlan"]))
    if "forvirtualnetwork" in p:
        query = query.where(VlanIpRange.vlan_type == ("VirtualNetwork" if p["forvirtualnetwork"] else "DirectAttached"))
    total, rows = ctx.page(query, order_by=VlanIpRange.id)
    return total, [vlan_range_view(ctx.session, r) for r in rows]


@api_command("deleteVlanIpRange", response="success", roles=ROOT_ONLY,
             params={"id": P.uuid("the id of the VLAN IP range", required=True)})
def delete_vlan_ip_range(ctx, p):
    """Deletes a VLAN IP range. Refused (536) while an address of it is allocated."""
    ip_range = ctx.get(VlanIpRange, p["id"], "id", check_owner=False)
    if ip_range.vlan_type == "VirtualNetwork":
        used = ctx.session.scalars(select(PublicIpAddress.address).where(
            PublicIpAddress.vlan_id == ip_range.id, PublicIpAddress.state != IpState.FREE).limit(3)).all()
        if used:
            raise ResourceInUseError(f"addresses of the range are in use ({', '.join(used)}); release them first")
        for address in ctx.session.scalars(select(PublicIpAddress).where(PublicIpAddress.vlan_id == ip_range.id)):
            ctx.session.delete(address)
    else:
        network = ctx.session.get(Network, ip_range.network_id)
        low, high = int(ipaddress.IPv4Address(ip_range.start_ip)), int(ipaddress.IPv4Address(ip_range.end_ip))
        used = [a for a in ctx.session.scalars(select(Nic.ip_address).where(Nic.network_id == network.id))
                if a and low <= int(ipaddress.IPv4Address(a)) <= high]
        if used:
            raise ResourceInUseError(f"VMs use addresses of the range ({', '.join(used[:3])})")
        others = ctx.session.scalars(select(VlanIpRange).where(VlanIpRange.network_id == network.id,
                                                               VlanIpRange.id != ip_range.id,
                                                               VlanIpRange.removed.is_(None))).all()
        if not others:
            raise ResourceInUseError(f"the range is shared network {network.name}'s last; delete the network instead")
        network.start_ip = str(min(ipaddress.IPv4Address(o.start_ip) for o in others))
        network.end_ip = str(max(ipaddress.IPv4Address(o.end_ip) for o in others))
    ip_range.removed = utcnow()
    ctx.event("VLAN.IP.RANGE.DELETE", f"Deleted IP range {ip_range.start_ip}-{ip_range.end_ip}", ip_range)
    return SUCCESS


# -- public addresses ----------------------------------------------------------------------------


def usable_network(ctx, network: Network) -> Network:
    """A network the caller may put addresses and rules on: an isolated network it owns."""
    ctx.get(Network, network.uuid, "networkid")
    if network.guest_type != "Isolated":
        raise InvalidParameterError(f"network {network.name} is {network.guest_type}; public addresses and their "
                                    "rules are for isolated networks")
    return network


def owned_address(ctx, uuid: str, param: str = "ipaddressid") -> PublicIpAddress:
    """An Allocated address the caller's account may act on. The owner is checked first, so
    a tenant learns nothing about addresses that are not its own: a free address and another
    account's both answer 531 with the same words; 431 (not allocated) only to admins, who
    see free addresses anyway (listPublicIpAddresses allocatedonly=false)."""
    address = ctx.get(PublicIpAddress, uuid, param, check_owner=False)
    if address.account_id is not None:
        ctx.get(PublicIpAddress, uuid, param)  # the ownership check (531)
    elif not is_admin(ctx):
        raise PermissionDenied(f"Account {ctx.caller.account_name} may not access PublicIpAddress {address.uuid}")
    if address.state != IpState.ALLOCATED or address.account_id is None:
        raise InvalidParameterError(f"public IP address {address.address} is not allocated to any account")
    return address


@api_command("associateIpAddress", response="ipaddress", is_async=True, roles=ALL_ROLES,
             response_fields=ADDRESS_FIELDS, params={
                 "networkid": P.uuid("The network this IP address should be associated to."),
                 "zoneid": P.uuid("the ID of the availability zone you want to acquire an public IP address from"),
                 "account": P.string("the account to associate with this IP address (with domainid)"),
                 "domainid": P.uuid("the ID of the domain to associate with this IP address"),
                 "ipaddress": P.string("IP Address to be associated", max_length=64),
                 "isportable": P.boolean("should be set to true if public IP is required to be transferable "
                                         "across zones (not supported)"),
                 "fordisplay": P.boolean("an optional field, whether to the display the IP to the end user or not"),
                 "projectid": P.uuid("Deploy VM for the project"),
                 "vpcid": P.uuid("the VPC you want the IP address to be associated with"),
             })
def associate_ip_address(ctx, p):
    """Acquires and associates a public IP to an account (and its network)."""
    if p.get("isportable") or "vpcid" in p:
        raise invalid(ctx, "isportable" if p.get("isportable") else "vpcid", "portable IPs and VPCs are not supported")
    network = usable_network(ctx, ctx.get(Network, p["networkid"], "networkid")) if "networkid" in p else None
    if network is not None and "SourceNat" not in networking.services_of(ctx.session, network) and \
            not {"StaticNat", "PortForwarding", "Lb"} & set(networking.services_of(ctx.session, network)):
        raise InvalidParameterError(f"network {network.name}'s offering has no service that uses public addresses")
    zone = ctx.session.get(Zone, network.zone_id) if network else (
        ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False) if "zoneid" in p else None)
    if zone is None:
        raise InvalidParameterError("give networkid or zoneid")
    owner = owner_of(ctx, p)
    if network is not None and network.account_id != owner.id:
        raise PermissionDenied(f"network {network.name} does not belong to account {owner.name}")
    if "ipaddress" in p:
        address = _specific_address(ctx, zone, owner, network, p["ipaddress"])
    else:
        address = networking.acquire_public_ip(ctx.session, zone, owner, network)
    if "fordisplay" in p:
        address.for_display = p["fordisplay"]
    ctx.event("NET.IPASSIGN", f"Acquired public IP {address.address}", address)
    return ctx.start_job("ip.associate", {"ip": address.uuid, "network": network.uuid if network else None},
                         instance=address, instance_type="IpAddress")


def _specific_address(ctx, zone: Zone, owner: Account, network: Network | None, text: str) -> PublicIpAddress:
    wanted = _address(ctx, "ipaddress", text)
    address = ctx.session.scalar(select(PublicIpAddress).where(PublicIpAddress.zone_id == zone.id,
                                                               PublicIpAddress.address == str(wanted)))
    if address is None:
        raise invalid(ctx, "ipaddress", f"{wanted} is not a public address of zone {zone.name}")
    return networking.acquire_public_ip(ctx.session, zone, owner, network, address=address)


@job_handler("ip.associate")
def associate_job(ctx):
    if ctx.params["network"]:
        networking.apply(ctx.cloud, ctx.params["network"], caller=ctx.caller)
    with ctx.transaction() as session:
        address = session.scalar(select(PublicIpAddress).where(PublicIpAddress.uuid == ctx.params["ip"]))
        return {"ipaddress": address_view(session, address, admin=ctx.caller.is_root_admin)}


@api_command("disassociateIpAddress", response="success", is_async=True, roles=ALL_ROLES,
             params={"id": P.uuid("the ID of the public IP address to disassociate", required=True),
                     "ipaddress": P.string("IP Address to be disassociated (instead of id)")})
def disassociate_ip_address(ctx, p):
    """Disassociates an IP address from the account: its rules, static NAT and VPN go with it.
    The source-NAT address stays with its network (431)."""
    address = owned_address(ctx, p["id"], "id")
    if address.is_source_nat:
        raise InvalidParameterError(f"IP {address.address} is the source NAT address of its network; it is released "
                                    "with the network")
    network = ctx.session.get(Network, address.network_id) if address.network_id else None
    networking.release_public_ip(ctx.session, address)
    ctx.event("NET.IPRELEASE", f"Released public IP {address.address}", address)
    return ctx.start_job("ip.release", {"network": network.uuid if network else None}, instance=address,
                         instance_type="IpAddress")


@job_handler("ip.release")
def release_job(ctx):
    if ctx.params["network"]:
        networking.apply(ctx.cloud, ctx.params["network"], caller=ctx.caller)
    return {"success": True}


@api_command("listPublicIpAddresses", response="publicipaddress", is_list=True, roles=ALL_ROLES,
             response_fields=ADDRESS_FIELDS, description="Lists all public IP addresses", params={
                 "id": P.uuid("lists IP address by ID"), "ipaddress": P.string("lists the specified IP address"),
                 "allocatedonly": P.boolean("limits search results to allocated public IP addresses (default true)"),
                 "associatednetworkid": P.uuid("lists all public IP addresses associated to the network specified"),
                 "networkid": P.uuid("lists all public IP addresses by source network ID"),
                 "issourcenat": P.boolean("list only source NAT IP addresses"),
                 "isstaticnat": P.boolean("list only static NAT IP addresses"),
                 "zoneid": P.uuid("lists all public IP addresses by zone ID"),
                 "vlanid": P.uuid("lists all public IP addresses by VLAN ID"),
                 "physicalnetworkid": P.uuid("lists all public IP addresses by physical network ID"),
                 "forvirtualnetwork": P.boolean("the virtual network for the IP address"),
                 "state": P.string("lists all public IP addresses by state"),
                 "virtualmachineid": P.uuid("lists addresses static-NATed to this VM"),
                 "fordisplay": P.boolean("list resources by display flag"),
                 "vpcid": P.uuid("List ips belonging to the VPC"),
             })
def list_public_ip_addresses(ctx, p):
    query = select(PublicIpAddress)
    owned = ctx.owner_filter(PublicIpAddress, by_id="id" in p)
    if p.get("allocatedonly", True) or not is_admin(ctx):
        query = query.where(PublicIpAddress.state == IpState.ALLOCATED, PublicIpAddress.account_id.is_not(None), owned)
    elif not ctx.caller.is_root_admin:  # a domain admin: free addresses, and its domain's
        query = query.where(or_(PublicIpAddress.account_id.is_(None), and_(PublicIpAddress.account_id.is_not(None),
                                                                           owned)))
    if "id" in p:
        query = query.where(PublicIpAddress.uuid == p["id"])
    if "ipaddress" in p:
        query = query.where(PublicIpAddress.address == p["ipaddress"].strip())
    for param in ("associatednetworkid", "networkid"):
        if param in p:
            query = query.where(PublicIpAddress.network_id == ctx.get(Network, p[param], param, check_owner=False).id)
    if "issourcenat" in p:
        query = query.where(PublicIpAddress.is_source_nat.is_(p["issourcenat"]))
    if "isstaticnat" in p:
        query = query.where(PublicIpAddress.is_static_nat.is_(p["isstaticnat"]))
    for param, model, column in (("zoneid", Zone, PublicIpAddress.zone_id), ("vlanid", VlanIpRange,
                                                                               PublicIpAddress.vlan_id),
                                 ("physicalnetworkid", PhysicalNetwork, PublicIpAddress.physical_network_id),
                                 ("virtualmachineid", VirtualMachine, PublicIpAddress.vm_id)):
        if param in p:
            query = query.where(column == ctx.get(model, p[param], param, check_owner=False).id)
    if "state" in p:
        query = query.where(PublicIpAddress.state == p["state"].capitalize())
    if "fordisplay" in p:
        query = query.where(PublicIpAddress.for_display.is_(p["fordisplay"]))
    if p.get("forvirtualnetwork") is False or "vpcid" in p:
        query = query.where(PublicIpAddress.id.is_(None))
    total, rows = ctx.page(query.options(), name_column=PublicIpAddress.address, order_by=PublicIpAddress.address_int)
    admin = ctx.caller.is_root_admin
    return total, [address_view(ctx.session, a, admin=admin) for a in rows]


# -- static NAT ----------------------------------------------------------------------------------


def vm_on_network(ctx, vm_uuid: str, network: Network, param: str = "virtualmachineid",
                  guest_ip: str | None = None) -> tuple[VirtualMachine, Nic]:
    """The caller's VM and its NIC on ``network`` (431 when it has none there)."""
    vm = ctx.get(VirtualMachine, vm_uuid, param)
    if vm.state in ("Destroyed", "Expunging", "Error"):
        raise InvalidParameterError(f"VM {vm.name} is {vm.state}")
    nic = next((n for n in vm.nics if n.network_id == network.id), None)
    if nic is None:
        raise InvalidParameterError(f"VM {vm.name} has no NIC on network {network.name}")
    if guest_ip is not None and guest_ip.strip() != nic.ip_address:
        raise invalid(ctx, "vmguestip", f"{guest_ip} is not VM {vm.name}'s address on network {network.name}")
    return vm, nic


@api_command("enableStaticNat", response="success", roles=ALL_ROLES, params={
    "ipaddressid": P.uuid("the public IP address ID for which static NAT feature is being enabled", required=True),
    "virtualmachineid": P.uuid("the ID of the virtual machine for enabling static NAT feature", required=True),
    "networkid": P.uuid("The network of the VM the static NAT will be enabled for."),
    "vmguestip": P.string("VM guest NIC secondary IP address for the port forwarding rule", max_length=64),
})
def enable_static_nat(ctx, p):
    """Enables static NAT for given IP address: all its traffic goes to the VM, and the VM's
    own traffic leaves as it. The router follows at once (a job queued after the commit)."""
    address = owned_address(ctx, p["ipaddressid"])
    network = ctx.session.get(Network, address.network_id) if address.network_id else None
    if "networkid" in p and network is not None:  # a network named is checked even when the IP has one
        named = usable_network(ctx, ctx.get(Network, p["networkid"], "networkid"))
        if named.id != network.id:
            raise InvalidParameterError(f"IP {address.address} is on network {network.name}, not {named.name}")
    if network is None:
        if "networkid" not in p:
            raise InvalidParameterError(f"IP {address.address} is not associated with a network: give networkid")
        network = usable_network(ctx, ctx.get(Network, p["networkid"], "networkid"))
        address.network_id = network.id
    if "StaticNat" not in networking.services_of(ctx.session, network):
        raise InvalidParameterError(f"network {network.name}'s offering has no StaticNat service")
    if address.is_source_nat:
        raise InvalidParameterError(f"static NAT cannot be enabled on the source NAT address {address.address}")
    rules = ctx.session.scalar(select(NetworkRule.uuid).where(
        NetworkRule.ip_address_id == address.id, NetworkRule.purpose.in_(("PortForwarding", "LoadBalancing")),
        NetworkRule.state != RuleState.REVOKE).limit(1))
    if rules:
        raise NetworkRuleConflictError(f"IP {address.address} has port forwarding or load balancing rule {rules}; "
                                       "static NAT cannot be enabled on it")
    if ctx.session.scalar(select(RemoteAccessVpn.id).where(RemoteAccessVpn.ip_address_id == address.id)):
        raise NetworkRuleConflictError(f"IP {address.address} serves a remote-access VPN")
    vm, nic = vm_on_network(ctx, p["virtualmachineid"], network, guest_ip=p.get("vmguestip"))
    other = ctx.session.scalar(select(PublicIpAddress).where(PublicIpAddress.vm_id == vm.id,
                                                             PublicIpAddress.network_id == network.id,
                                                             PublicIpAddress.id != address.id))
    if other is not None:
        raise NetworkRuleConflictError(f"VM {vm.name} already has static NAT on {other.address} ({other.uuid})")
    if address.is_static_nat and address.vm_id != vm.id:
        raise NetworkRuleConflictError(f"IP {address.address} already has static NAT to another VM")
    address.is_static_nat, address.vm_id, address.vm_ip = True, vm.id, nic.ip_address
    ctx.event("STATICNAT.ENABLE", f"Enabled static NAT of {address.address} to VM {vm.name}", address)
    ctx.start_job("network.apply", {"network": network.uuid}, instance=network, instance_type="Network")
    return SUCCESS


@job_handler("network.apply")
def apply_job(ctx):
    how = networking.apply(ctx.cloud, ctx.params["network"], caller=ctx.caller)
    return {"success": True, "displaytext": how}


@api_command("disableStaticNat", response="success", is_async=True, roles=ALL_ROLES, params={
    "ipaddressid": P.uuid("the public IP address ID for which static NAT feature is being disabled", required=True)})
def disable_static_nat(ctx, p):
    """Disables static NAT for given IP address"""
    address = owned_address(ctx, p["ipaddressid"])
    if not address.is_static_nat:
        raise InvalidParameterError(f"IP {address.address} has no static NAT")
    address.is_static_nat, address.vm_id, address.vm_ip = False, None, None
    # its IP forwarding rules (and the firewall rules they opened) go with it, as in CloudStack
    networking.delete_rules(ctx.session, ctx.session.scalars(select(NetworkRule).where(
        NetworkRule.ip_address_id == address.id, or_(NetworkRule.purpose == "StaticNat", NetworkRule.related_id.in_(
            select(NetworkRule.id).where(NetworkRule.ip_address_id == address.id,
                                         NetworkRule.purpose == "StaticNat"))))).all())
    network = ctx.session.get(Network, address.network_id)
    ctx.event("STATICNAT.DISABLE", f"Disabled static NAT of {address.address}", address)
    return ctx.start_job("network.apply", {"network": network.uuid}, instance=network, instance_type="Network")
