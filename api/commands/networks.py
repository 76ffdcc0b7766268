"""Guest networks: createNetwork, listNetworks, updateNetwork, deleteNetwork, restartNetwork.

Isolated networks (with source NAT, through the virtual router), shared networks (admins;
a VLAN and an IP range of their own) and L2 networks (a VLAN, no addresses). A new network
is Allocated (a shared one Setup); its router comes up with the first VM or a restart.
"""

from __future__ import annotations

from sqlalchemy import and_, false, or_, select

from api.views.network import NETWORK_FIELDS, network_view, nics_in
from core.access import domain_ids_under, resource_owner
from core.commands import ALL_ROLES, P, api_command
from core.errors import PermissionDenied, ResourceInUseError
from core.jobs import job_handler
from core.model import (
    Account,
    Domain,
    Network,
    NetworkOffering,
    NetworkOfferingService,
    PhysicalNetwork,
    Zone,
)
from core.orchestration import networking

from .offerings import visible_to_caller
from .zones import choice, invalid


def is_admin(ctx) -> bool:
    return ctx.caller.role_type != "User"


def owner_of(ctx, p) -> Account:
    """The account a new resource is for: the project's with ``projectid``, (admins) ``account``
    + ``domainid``, else the caller's; 531 when the caller may not act for it."""
    return resource_owner(ctx.session, ctx.caller, account_name=p.get("account"), domain_uuid=p.get("domainid"),
                          project_uuid=p.get("projectid"))


def visible_networks(ctx, p):
    """The WHERE clause of the networks the caller may see: its own (by the ownership rules
    of list commands) and the shared networks of its domain and the domains above it."""
    caller = ctx.caller
    parts = [part for part in caller.domain_path.split("/") if part]
    prefixes = ["/"] + ["/" + "/".join(parts[:i]) + "/" for i in range(1, len(parts) + 1)]
    domains = select(Domain.id).where(Domain.path.in_(prefixes))
    if caller.is_root_admin:
        shared = Network.account_id.is_(None)
    elif caller.is_domain_admin:
        shared = and_(Network.account_id.is_(None), or_(Network.domain_id.is_(None), Network.domain_id.in_(domains),
                                                        Network.domain_id.in_(select(Domain.id).where(
                                                            Domain.path.startswith(caller.domain_path)))))
    else:
        shared = and_(Network.account_id.is_(None), or_(Network.domain_id.is_(None), Network.domain_id.in_(domains)))
    owned = and_(Network.account_id.is_not(None), ctx.owner_filter(Network, by_id="id" in p))
    return or_(owned, shared)


@api_command("createNetwork", response="network", roles=ALL_ROLES, response_fields=NETWORK_FIELDS,
             description="Creates a network", params={
                 "name": P.string("the name of the network", required=True),
                 "displaytext": P.string("the display text of the network (default: the name)"),
                 "networkofferingid": P.uuid("the network offering ID", required=True),
                 "zoneid": P.uuid("the zone ID for the network", required=True),
                 "physicalnetworkid": P.uuid("the physical network ID the network belongs to (shared networks)"),
                 "gateway": P.string("the gateway of the network (required for shared networks)", max_length=64),
                 "netmask": P.string("the netmask of the network (required for shared networks)", max_length=64),
                 "startip": P.string("the beginning IP address in the network IP range", max_length=64),
                 "endip": P.string("the ending IP address in the network IP range (default: startip)", max_length=64),
                 "vlan": P.string("the ID or VID of the network (root admins, offerings with specifyvlan)"),
                 "networkdomain": P.string("network domain"),
                 "acltype": P.string("Account or Domain (shared networks; admins)"),
                 "account": P.string("account that will own the network (with domainid)"),
                 "domainid": P.uuid("domain ID of the account owning a network"),
                 "subdomainaccess": P.boolean("allow subdomains to use a domain network"),
                 "dns1": P.string("the first DNS for the network", max_length=64),
                 "dns2": P.string("the second DNS for the network", max_length=64),
                 "projectid": P.uuid("an optional project for the network"),
                 "displaynetwork": P.boolean("whether to display the network to the end user (admins)"),
             })
def create_network(ctx, p):
    zone = ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False)
    if zone.allocation_state != "Enabled" and not ctx.caller.is_root_admin:
        raise PermissionDenied(f"zone {zone.name} is disabled")
    offering = ctx.get(NetworkOffering, p["networkofferingid"], "networkofferingid", check_owner=False)
    if offering.domain_id is not None and not ctx.session.scalar(select(NetworkOffering.id).where(
            NetworkOffering.id == offering.id, visible_to_caller(ctx, NetworkOffering.domain_id))):
        raise PermissionDenied(f"Account {ctx.caller.account_name} may not use network offering {offering.uuid}")
    if offering.guest_type == "Shared" and not is_admin(ctx):
        raise PermissionDenied("only admins may create shared networks")
    acl_type = choice(ctx, "acltype", p["acltype"], ("Account", "Domain")) if "acltype" in p else None
    if acl_type == "Domain" and offering.guest_type != "Shared":
        raise invalid(ctx, "acltype", "only shared networks can have acltype Domain")
    if acl_type and not is_admin(ctx):
        raise PermissionDenied("only admins may choose the acltype")
    physical = None
    if "physicalnetworkid" in p:
        physical = ctx.get(PhysicalNetwork, p["physicalnetworkid"], "physicalnetworkid", check_owner=False)
        if offering.guest_type != "Shared":
            raise invalid(ctx, "physicalnetworkid", "the physical network can be given for shared networks only")
        if physical.zone_id != zone.id:
            raise invalid(ctx, "physicalnetworkid", "the physical network is not in the zone")
    if offering.guest_type == "Shared" and (acl_type or "Domain") == "Domain":
        owner = None  # the network belongs to a domain (or, without domainid, the whole zone)
        domain_id = _reachable_domain(ctx, p["domainid"]).id if "domainid" in p else None
        if domain_id is None and not ctx.caller.is_root_admin:
            raise PermissionDenied("only a root admin may create a zone-wide shared network; give domainid")
    else:
        owner, domain_id = owner_of(ctx, p), None
    for param in ("gateway", "netmask", "startip", "endip", "dns1", "dns2"):
        if param in p:
            _ipv4(ctx, param, p[param])
    network = networking.create_network(
        ctx.cloud, ctx.session, owner=owner, domain_id=domain_id, zone=zone, offering=offering,
        name=p["name"].strip(), display_text=(p.get("displaytext") or p["name"]).strip(), gateway=p.get("gateway"),
        netmask=p.get("netmask"), start_ip=p.get("startip"), end_ip=p.get("endip"), vlan=p.get("vlan"),
        network_domain=p.get("networkdomain"), acl_type=acl_type, physical=physical, dns1=p.get("dns1"),
        dns2=p.get("dns2"), subdomain_access=p.get("subdomainaccess"), vlan_allowed=ctx.caller.is_root_admin)
    if "displaynetwork" in p and is_admin(ctx):
        network.display_network = p["displaynetwork"]
    ctx.event("NETWORK.CREATE", f"Created network {network.name}", network)
    return network_view(ctx.session, network, admin=ctx.caller.is_root_admin)


def _reachable_domain(ctx, uuid: str) -> Domain:
    """The domain ``uuid`` when the caller administers it (its own or one below); 531 otherwise."""
    domain = ctx.get(Domain, uuid, "domainid", check_owner=False)
    if not (ctx.caller.is_root_admin or (ctx.caller.is_domain_admin and domain.path.startswith(ctx.caller.domain_path))):
        raise PermissionDenied(f"Account {ctx.caller.account_name} may not act in domain {domain.name}")
    return domain


def _ipv4(ctx, param: str, value: str) -> None:
    import ipaddress

    try:
        ipaddress.IPv4Address(value.strip())
    except ValueError:
        raise invalid(ctx, param, f"'{value}' is not an IPv4 address") from None


@api_command("listNetworks", response="network", is_list=True, roles=ALL_ROLES, response_fields=NETWORK_FIELDS,
             description="Lists all available networks.", params={
                 "id": P.uuid("list networks by ID"), "zoneid": P.uuid("the zone ID of the network"),
                 "type": P.string("the type of the network: Isolated, Shared or L2"),
                 "traffictype": P.string("type of the traffic"), "acltype": P.string("Account or Domain"),
                 "isdefault": P.boolean("true if network is default, false otherwise"),
                 "issystem": P.boolean("true if network is system, false otherwise"),
                 "physicalnetworkid": P.uuid("list networks by physical network id"),
                 "networkofferingid": P.uuid("list networks by network offering ID"),
                 "supportedservices": P.list("list networks supporting certain services"),
                 "restartrequired": P.boolean("list networks by restartRequired"),
                 "specifyipranges": P.boolean("true if need to list only networks which support specifying ip ranges"),
                 "canusefordeploy": P.boolean("list networks available for vm deployment"),
                 "forvpc": P.boolean("the network belongs to vpc"),
                 "vpcid": P.uuid("List networks by VPC"),
             })
def list_networks(ctx, p):
    query = select(Network).where(Network.removed.is_(None), Network.traffic_type == "Guest",
                                  visible_networks(ctx, p))
    if "id" in p:
        query = query.where(Network.uuid == p["id"])
    if "zoneid" in p:
        query = query.where(Network.zone_id == ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False).id)
    if "type" in p:
        query = query.where(Network.guest_type == choice(ctx, "type", p["type"], ("Isolated", "Shared", "L2")))
    if "traffictype" in p:
        query = query.where(Network.traffic_type == p["traffictype"].capitalize())
    if "acltype" in p:
        acl = choice(ctx, "acltype", p["acltype"], ("Account", "Domain"))
        query = query.where(Network.account_id.is_(None) if acl == "Domain" else Network.account_id.is_not(None))
    if p.get("issystem") or p.get("forvpc") or "vpcid" in p:
        query = query.where(false())
    if "physicalnetworkid" in p:
        physical = ctx.get(PhysicalNetwork, p["physicalnetworkid"], "physicalnetworkid", check_owner=False)
        query = query.where(Network.physical_network_id == physical.id)
    if "networkofferingid" in p:
        offering = ctx.get(NetworkOffering, p["networkofferingid"], "networkofferingid", check_owner=False)
        query = query.where(Network.network_offering_id == offering.id)
    for service in p.get("supportedservices") or []:
        service = choice(ctx, "supportedservices", service, networking.SERVICES)
        query = query.where(Network.network_offering_id.in_(select(NetworkOfferingService.offering_id).where(
            NetworkOfferingService.service == service)))
    if "restartrequired" in p:
        query = query.where(Network.restart_required.is_(p["restartrequired"]))
    if p.get("canusefordeploy"):
        query = query.where(Network.state != "Destroy")
    if not is_admin(ctx):
        query = query.where(Network.display_network.is_(True))
    total, networks = ctx.page(query, name_column=Network.name, order_by=Network.id)
    rows = [network_view(ctx.session, n, admin=ctx.caller.is_root_admin) for n in networks]
    if "isdefault" in p:
        rows = [r for r in rows if r.get("isdefault") is p["isdefault"]]
    if "specifyipranges" in p:
        rows = [r for r in rows if r.get("specifyipranges", False) is p["specifyipranges"]]
    return total if "isdefault" not in p and "specifyipranges" not in p else len(rows), rows


def _network(ctx, p, param: str = "id") -> Network:
    network = ctx.get(Network, p[param], param, check_owner=False)
    if network.account_id is None:
        # a shared network: admins of its domain (or root) change it
        if not (ctx.caller.is_root_admin or (ctx.caller.is_domain_admin and network.domain_id is not None
                                             and network.domain_id in domain_ids_under(ctx.session,
                                                                                       ctx.caller.domain_path))):
            raise PermissionDenied(f"Account {ctx.caller.account_name} may not change network {network.uuid}")
    else:
        ctx.get(Network, p[param], param)  # the ownership check
    return network


def _render(ctx, network_uuid: str) -> dict:
    with ctx.transaction() as session:
        network = session.scalar(select(Network).where(Network.uuid == network_uuid))
        admin = ctx.caller is not None and ctx.caller.is_root_admin
        return {"network": network_view(session, network, admin=admin)}


@api_command("updateNetwork", response="network", is_async=True, roles=ALL_ROLES, response_fields=NETWORK_FIELDS,
             description="Updates a network", params={
                 "id": P.uuid("the ID of the network", required=True),
                 "name": P.string("the new name for the network"),
                 "displaytext": P.string("the new display text for the network"),
                 "networkdomain": P.string("network domain"),
                 "networkofferingid": P.uuid("network offering ID (of the same guest type and services' providers)"),
                 "dns1": P.string("the first DNS for the network", max_length=64),
                 "dns2": P.string("the second DNS for the network", max_length=64),
                 "displaynetwork": P.boolean("whether to display the network to the end user (admins)"),
                 "changecidr": P.boolean("force update even if cidr type is different"),
                 "guestvmcidr": P.string("CIDR for guest VMs (not supported)"),
             })
def update_network(ctx, p):
    network = _network(ctx, p)
    if "guestvmcidr" in p:
        raise invalid(ctx, "guestvmcidr", "changing the guest CIDR is not supported")
    reconfigure = False
    if "name" in p:
        network.name = p["name"].strip()
    if "displaytext" in p:
        network.display_text = p["displaytext"].strip()
    if "networkdomain" in p:
        if network.guest_type == "L2":
            raise invalid(ctx, "networkdomain", "an L2 network has no network domain")
        network.network_domain, reconfigure = p["networkdomain"].strip(), True
    for param in ("dns1", "dns2"):
        if param in p:
            _ipv4(ctx, param, p[param])
            setattr(network, param, p[param].strip())
            reconfigure = True
    if "displaynetwork" in p and is_admin(ctx):
        network.display_network = p["displaynetwork"]
    if "networkofferingid" in p:
        offering = ctx.get(NetworkOffering, p["networkofferingid"], "networkofferingid", check_owner=False)
        current = ctx.session.get(NetworkOffering, network.network_offering_id)
        if offering.state != "Enabled":
            raise invalid(ctx, "networkofferingid", f"network offering {offering.name} is {offering.state}")
        if offering.guest_type != current.guest_type:
            raise invalid(ctx, "networkofferingid", f"network {network.name} is {network.guest_type}; the new "
                                                    f"offering is for {offering.guest_type} networks")
        if ("SourceNat" in current.providers()) != ("SourceNat" in offering.providers()):
            raise invalid(ctx, "networkofferingid", "the new offering must keep (or keep lacking) source NAT")
        if set(offering.providers().values()) - {networking.VIRTUAL_ROUTER}:
            raise invalid(ctx, "networkofferingid", "the new offering names a provider this cloud does not have")
        network.network_offering_id, reconfigure = offering.id, True
    ctx.event("NETWORK.UPDATE", f"Updated network {network.name}", network)
    return ctx.start_job("network.update", {"network": network.uuid, "reconfigure": reconfigure},
                         instance=network, instance_type="Network")


@job_handler("network.update")
def update_network_job(ctx):
    if ctx.params["reconfigure"]:
        networking.apply(ctx.cloud, ctx.params["network"], caller=ctx.caller)
    return _render(ctx, ctx.params["network"])


@api_command("deleteNetwork", response="success", is_async=True, roles=ALL_ROLES, description="Deletes a network",
             params={"id": P.uuid("the ID of the network", required=True),
                     "forced": P.boolean("force delete (root admins; VMs must still be expunged first)")})
def delete_network(ctx, p):
    network = _network(ctx, p)
    used = nics_in(ctx.session, network)
    if used:
        raise ResourceInUseError(f"network {network.name} still has {used} VM NIC(s); expunge its VMs first")
    return ctx.start_job("network.delete", {"network": network.uuid}, instance=network, instance_type="Network")


@job_handler("network.delete")
def delete_network_job(ctx):
    networking.shutdown_and_delete(ctx.cloud, ctx.params["network"], caller=ctx.caller)
    return {"success": True}


@api_command("restartNetwork", response="success", is_async=True, roles=ALL_ROLES,
             description="Restarts the network: the router is brought in line with the database "
                         "(with cleanup=true it is rebuilt from nothing)",
             params={"id": P.uuid("the ID of the network to restart", required=True),
                     "cleanup": P.boolean("if cleanup old network elements (rebuild the router)"),
                     "makeredundant": P.boolean("turn the network into a network with redundant routers "
                                                "(not supported)"),
                     "livepatch": P.boolean("live patch the router without a restart (taken as a restart)")})
def restart_network(ctx, p):
    network = _network(ctx, p)
    if p.get("makeredundant"):
        raise invalid(ctx, "makeredundant", "redundant routers are not supported")
    if not networking.needs_router(ctx.session, network):
        raise invalid(ctx, "id", f"network {network.name} has no router to restart")
    return ctx.start_job("network.restart", {"network": network.uuid, "cleanup": p.get("cleanup", False)},
                         instance=network, instance_type="Network")


@job_handler("network.restart")
def restart_network_job(ctx):
    networking.restart(ctx.cloud, ctx.params["network"], cleanup=ctx.params["cleanup"], caller=ctx.caller)
    return {"success": True}
