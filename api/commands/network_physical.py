"""Physical networks, their traffic types and network service providers (root admins):
createPhysicalNetwork, listPhysicalNetworks, updatePhysicalNetwork, deletePhysicalNetwork,
addTrafficType, listTrafficTypes, updateTrafficType, deleteTrafficType,
listNetworkServiceProviders, updateNetworkServiceProvider, listVirtualRouterElements,
configureVirtualRouterElement.

The async ones (as in CloudStack) change the database in the command's transaction and
answer the object from their job, so cs, Ansible and cmk poll them as they expect.
"""

from __future__ import annotations

from sqlalchemy import func, select

from api.views.network import (
    PHYSICAL_NETWORK_FIELDS,
    PROVIDER_FIELDS,
    TRAFFIC_TYPE_FIELDS,
    physical_network_view,
    provider_view,
    router_element_view,
    traffic_type_view,
)
from core.commands import ROOT_ONLY, P, api_command
from core.errors import InvalidParameterError, ResourceInUseError
from core.jobs import job_handler
from core.model import (
    Domain,
    GuestVlan,
    Network,
    NetworkServiceProvider,
    PhysicalNetwork,
    PhysicalNetworkTrafficType,
    Zone,
    utcnow,
)
from core.orchestration import networking

from .zones import choice, invalid

TRAFFIC_TYPES = ("Guest", "Public", "Management", "Storage")
STATES = ("Enabled", "Disabled")


def _render(ctx, model, view, uuid: str, key: str) -> dict:
    with ctx.transaction() as session:
        row = session.scalar(select(model).where(model.uuid == uuid))
        return {key: view(session, row)}


# -- physical networks ------------------------------------------------------------------


@api_command("createPhysicalNetwork", response="physicalnetwork", is_async=True, roles=ROOT_ONLY,
             response_fields=PHYSICAL_NETWORK_FIELDS, params={
                 "zoneid": P.uuid("the Zone ID for the physical network", required=True),
                 "name": P.string("the name of the physical network", required=True),
                 "isolationmethods": P.list("the isolation method(s): VLAN, VXLAN, GRE, ..."),
                 "vlan": P.string("the VLAN range(s) for guest networks, e.g. 100-199,300-310"),
                 "broadcastdomainrange": P.string("ZONE (default) or POD"),
                 "networkspeed": P.string("the speed for the physical network, e.g. 1G"),
                 "tags": P.list("tag labels of the physical network"),
                 "domainid": P.uuid("domain ID of the account owning a physical network"),
             })
def create_physical_network(ctx, p):
    """Creates a physical network"""
    zone = ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False)
    if zone.network_type != "Advanced" and ctx.session.scalar(select(func.count()).select_from(PhysicalNetwork).where(
            PhysicalNetwork.zone_id == zone.id, PhysicalNetwork.removed.is_(None))):
        raise invalid(ctx, "zoneid", f"zone {zone.name} is a Basic zone, which takes one physical network")
    physical = PhysicalNetwork(
        name=p["name"].strip(), zone_id=zone.id, state="Disabled",
        isolation_methods=",".join(m.upper() for m in p.get("isolationmethods") or ["VLAN"]),
        network_speed=p.get("networkspeed"),
        broadcast_domain_range=choice(ctx, "broadcastdomainrange", p.get("broadcastdomainrange", "ZONE"),
                                      ("ZONE", "POD")),
        tags=",".join(p["tags"]) if p.get("tags") else None,
        domain_id=ctx.get(Domain, p["domainid"], "domainid").id if "domainid" in p else None)
    physical.vlan = _vlan_ranges(ctx, p.get("vlan"), physical)
    ctx.session.add(physical)
    ctx.session.flush()
    networking.add_default_providers(ctx.session, physical)
    ctx.event("PHYSICAL.NETWORK.CREATE", f"Created physical network {physical.name}", physical)
    return ctx.start_job("physicalnetwork.render", {"id": physical.uuid}, instance=physical)


def _vlan_ranges(ctx, text: str | None, physical: PhysicalNetwork) -> str | None:
    if text is None:
        return None
    maximum = networking.MAX_VNI if networking.isolation_of(physical) == "vxlan" else 4094
    try:
        ranges = networking.parse_vlan_ranges(text, maximum)
    except ValueError as exc:
        raise invalid(ctx, "vlan", str(exc)) from None
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges) or None


@job_handler("physicalnetwork.render")
def render_physical_network(ctx):
    return _render(ctx, PhysicalNetwork, physical_network_view, ctx.params["id"], "physicalnetwork")


@api_command("listPhysicalNetworks", response="physicalnetwork", is_list=True, roles=ROOT_ONLY,
             response_fields=PHYSICAL_NETWORK_FIELDS, list_params=True, params={
                 "id": P.uuid("list physical network by id"), "zoneid": P.uuid("the Zone ID"),
                 "name": P.string("search by name"),
             })
def list_physical_networks(ctx, p):
    """Lists physical networks"""
    query = select(PhysicalNetwork).where(PhysicalNetwork.removed.is_(None))
    if "id" in p:
        query = query.where(PhysicalNetwork.uuid == p["id"])
    if "zoneid" in p:
        query = query.where(PhysicalNetwork.zone_id == ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False).id)
    if "name" in p:
        query = query.where(PhysicalNetwork.name == p["name"])
    total, rows = ctx.page(query, name_column=PhysicalNetwork.name, order_by=PhysicalNetwork.id)
    return total, [physical_network_view(ctx.session, r) for r in rows]


@api_command("updatePhysicalNetwork", response="physicalnetwork", is_async=True, roles=ROOT_ONLY,
             response_fields=PHYSICAL_NETWORK_FIELDS, params={
                 "id": P.uuid("physical network id", required=True),
                 "state": P.string("Enabled or Disabled"),
                 "vlan": P.string("the VLAN range(s) for guest networks"),
                 "tags": P.list("tag labels of the physical network"),
                 "networkspeed": P.string("the speed for the physical network"),
             })
def update_physical_network(ctx, p):
    """Updates a physical network"""
    physical = ctx.get(PhysicalNetwork, p["id"], "id", check_owner=False)
    if "state" in p:
        physical.state = choice(ctx, "state", p["state"], STATES)
    if "vlan" in p:
        new = _vlan_ranges(ctx, p["vlan"], physical)
        ranges = networking.parse_vlan_ranges(new, networking.MAX_VNI)
        for taken in ctx.session.scalars(select(GuestVlan).where(GuestVlan.physical_network_id == physical.id)):
            network = ctx.session.get(Network, taken.network_id)
            if not network.vlan_specified and not any(a <= taken.vlan <= b for a, b in ranges):
                raise ResourceInUseError(f"VLAN {taken.vlan} is used by network {network.name}; the new range "
                                         f"{new} must keep it")
        physical.vlan = new
    if "tags" in p:
        physical.tags = ",".join(p["tags"]) or None
    if "networkspeed" in p:
        physical.network_speed = p["networkspeed"]
    ctx.event("PHYSICAL.NETWORK.UPDATE", f"Updated physical network {physical.name}", physical)
    return ctx.start_job("physicalnetwork.render", {"id": physical.uuid}, instance=physical)


@api_command("deletePhysicalNetwork", response="success", is_async=True, roles=ROOT_ONLY,
             params={"id": P.uuid("the ID of the Physical network", required=True)})
def delete_physical_network(ctx, p):
    """Deletes a Physical Network. Refused (536) while guest networks use it."""
    physical = ctx.get(PhysicalNetwork, p["id"], "id", check_owner=False)
    used = ctx.session.scalar(select(func.count()).select_from(Network).where(
        Network.physical_network_id == physical.id, Network.removed.is_(None)))
    if used:
        raise ResourceInUseError(f"physical network {physical.name} is used by {used} network(s); delete them first")
    now = utcnow()
    physical.removed = now
    for traffic in ctx.session.scalars(select(PhysicalNetworkTrafficType).where(
            PhysicalNetworkTrafficType.physical_network_id == physical.id,
            PhysicalNetworkTrafficType.removed.is_(None))):
        traffic.removed, traffic.removed_marker = now, traffic.id
    for provider in ctx.session.scalars(select(NetworkServiceProvider).where(
            NetworkServiceProvider.physical_network_id == physical.id)):
        ctx.session.delete(provider)
    ctx.event("PHYSICAL.NETWORK.DELETE", f"Deleted physical network {physical.name}", physical)
    return ctx.start_job("network.success", {})


@job_handler("network.success")
def success_job(ctx):
    return {"success": True}


# -- traffic types -------------------------------------------------------------------------

_LABELS = {"kvmnetworklabel": "kvm_label", "xennetworklabel": "xen_label", "vmwarenetworklabel": "vmware_label",
           "hypervnetworklabel": "hyperv_label"}


@api_command("addTrafficType", response="traffictype", is_async=True, roles=ROOT_ONLY,
             response_fields=TRAFFIC_TYPE_FIELDS, params={
                 "physicalnetworkid": P.uuid("the Physical Network ID", required=True),
                 "traffictype": P.string("the trafficType to be added to the physical network", required=True),
                 "kvmnetworklabel": P.string("the device or bridge name of this traffic on KVM hosts "
                                             "(and on the management host, for the virtual router)"),
                 "xennetworklabel": P.string("the network name label of the physical device on Xen hosts"),
                 "vmwarenetworklabel": P.string("the network label on VMware hosts"),
                 "hypervnetworklabel": P.string("the network label on Hyper-V hosts"),
                 "isolationmethod": P.string("used if physical network has multiple isolation types"),
                 "vlan": P.string("the VLAN id to be used for Management traffic by VMware host"),
             })
def add_traffic_type(ctx, p):
    """Adds traffic type to a physical network"""
    physical = ctx.get(PhysicalNetwork, p["physicalnetworkid"], "physicalnetworkid", check_owner=False)
    traffic_type = choice(ctx, "traffictype", p["traffictype"], TRAFFIC_TYPES)
    if ctx.session.scalar(select(PhysicalNetworkTrafficType.id).where(
            PhysicalNetworkTrafficType.physical_network_id == physical.id,
            PhysicalNetworkTrafficType.traffic_type == traffic_type, PhysicalNetworkTrafficType.removed.is_(None))):
        raise invalid(ctx, "traffictype", f"physical network {physical.name} already carries {traffic_type} traffic")
    traffic = PhysicalNetworkTrafficType(physical_network_id=physical.id, traffic_type=traffic_type,
                                         **{column: p[param].strip() for param, column in _LABELS.items() if p.get(param)})
    ctx.session.add(traffic)
    ctx.session.flush()
    ctx.event("TRAFFIC.TYPE.CREATE", f"Added {traffic_type} traffic to physical network {physical.name}", traffic)
    return ctx.start_job("traffictype.render", {"id": traffic.uuid}, instance=traffic)


@job_handler("traffictype.render")
def render_traffic_type(ctx):
    return _render(ctx, PhysicalNetworkTrafficType, traffic_type_view, ctx.params["id"], "traffictype")


@api_command("listTrafficTypes", response="traffictype", is_list=True, roles=ROOT_ONLY,
             response_fields=TRAFFIC_TYPE_FIELDS, list_params=True,
             params={"physicalnetworkid": P.uuid("the Physical Network ID", required=True)})
def list_traffic_types(ctx, p):
    """Lists traffic types of a given physical network."""
    physical = ctx.get(PhysicalNetwork, p["physicalnetworkid"], "physicalnetworkid", check_owner=False)
    query = select(PhysicalNetworkTrafficType).where(PhysicalNetworkTrafficType.physical_network_id == physical.id,
                                                     PhysicalNetworkTrafficType.removed.is_(None))
    total, rows = ctx.page(query, order_by=PhysicalNetworkTrafficType.id)
    return total, [traffic_type_view(ctx.session, r) for r in rows]


@api_command("updateTrafficType", response="traffictype", is_async=True, roles=ROOT_ONLY,
             response_fields=TRAFFIC_TYPE_FIELDS, params={
                 "id": P.uuid("traffic type id", required=True),
                 **{name: P.string(f"the {name[:-12]} label") for name in _LABELS},
             })
def update_traffic_type(ctx, p):
    """Updates traffic type of a physical network. Routers pick new labels up when restarted."""
    traffic = ctx.get(PhysicalNetworkTrafficType, p["id"], "id", check_owner=False)
    for param, column in _LABELS.items():
        if param in p:
            setattr(traffic, column, p[param].strip() or None)
    ctx.event("TRAFFIC.TYPE.UPDATE", f"Updated {traffic.traffic_type} traffic labels", traffic)
    return ctx.start_job("traffictype.render", {"id": traffic.uuid}, instance=traffic)


@api_command("deleteTrafficType", response="success", is_async=True, roles=ROOT_ONLY,
             params={"id": P.uuid("traffic type id", required=True)})
def delete_traffic_type(ctx, p):
    """Deletes traffic type of a physical network. Refused (536) for Guest traffic while networks use it."""
    traffic = ctx.get(PhysicalNetworkTrafficType, p["id"], "id", check_owner=False)
    if traffic.traffic_type == "Guest" and ctx.session.scalar(select(func.count()).select_from(Network).where(
            Network.physical_network_id == traffic.physical_network_id, Network.removed.is_(None))):
        raise ResourceInUseError("guest networks use this physical network's Guest traffic; delete them first")
    traffic.removed, traffic.removed_marker = utcnow(), traffic.id
    ctx.event("TRAFFIC.TYPE.DELETE", f"Removed {traffic.traffic_type} traffic", traffic)
    return ctx.start_job("network.success", {})


# -- network service providers -------------------------------------------------------------


@api_command("listNetworkServiceProviders", response="networkserviceprovider", is_list=True, roles=ROOT_ONLY,
             response_fields=PROVIDER_FIELDS, list_params=True, params={
                 "physicalnetworkid": P.uuid("the Physical Network ID"),
                 "name": P.string("list providers by name"), "state": P.string("list providers by state"),
             })
def list_network_service_providers(ctx, p):
    """Lists network serviceproviders for a given physical network."""
    query = select(NetworkServiceProvider).join(
        PhysicalNetwork, PhysicalNetwork.id == NetworkServiceProvider.physical_network_id).where(
        PhysicalNetwork.removed.is_(None))
    if "physicalnetworkid" in p:
        physical = ctx.get(PhysicalNetwork, p["physicalnetworkid"], "physicalnetworkid", check_owner=False)
        query = query.where(NetworkServiceProvider.physical_network_id == physical.id)
    if "name" in p:
        query = query.where(func.lower(NetworkServiceProvider.provider_name) == p["name"].lower())
    if "state" in p:
        query = query.where(NetworkServiceProvider.state == p["state"].capitalize())
    total, rows = ctx.page(query, name_column=NetworkServiceProvider.provider_name,
                           order_by=NetworkServiceProvider.id)
    return total, [provider_view(ctx.session, r) for r in rows]


@api_command("updateNetworkServiceProvider", response="networkserviceprovider", is_async=True, roles=ROOT_ONLY,
             response_fields=PROVIDER_FIELDS, params={
                 "id": P.uuid("network service provider id", required=True),
                 "state": P.string("Enabled or Disabled (Shutdown is taken as Disabled)"),
                 "servicelist": P.list("the list of services to be enabled for this physical network service provider"),
             })
def update_network_service_provider(ctx, p):
    """Updates a network serviceProvider of a physical network"""
    provider = ctx.get(NetworkServiceProvider, p["id"], "id", check_owner=False)
    if "state" in p:
        state = choice(ctx, "state", p["state"], ("Enabled", "Disabled", "Shutdown"))
        provider.state = "Disabled" if state == "Shutdown" else state
    if "servicelist" in p:
        unknown = [s for s in p["servicelist"] if s not in networking.SERVICES]
        if unknown:
            raise invalid(ctx, "servicelist", f"unknown service(s) {', '.join(unknown)}")
        provider.services = ",".join(p["servicelist"])
    ctx.event("NETWORK.SERVICE.PROVIDER.UPDATE", f"Updated provider {provider.provider_name}", provider)
    return ctx.start_job("provider.render", {"id": provider.uuid}, instance=provider)


@job_handler("provider.render")
def render_provider(ctx):
    return _render(ctx, NetworkServiceProvider, provider_view, ctx.params["id"], "networkserviceprovider")


@api_command("listVirtualRouterElements", response="virtualrouterelement", is_list=True, roles=ROOT_ONLY,
             list_params=True, params={"id": P.uuid("list virtual router elements by id"),
                                       "nspid": P.uuid("list virtual router elements by network service provider id"),
                                       "enabled": P.boolean("list network offerings by enabled state")})
def list_virtual_router_elements(ctx, p):
    """Lists all available virtual router elements."""
    query = select(NetworkServiceProvider).where(NetworkServiceProvider.provider_name == networking.VIRTUAL_ROUTER)
    if "id" in p:
        query = query.where(NetworkServiceProvider.element_uuid == p["id"])
    if "nspid" in p:
        query = query.where(NetworkServiceProvider.uuid == p["nspid"])
    if "enabled" in p:
        query = query.where(NetworkServiceProvider.element_enabled.is_(p["enabled"]))
    total, rows = ctx.page(query, order_by=NetworkServiceProvider.id)
    return total, [router_element_view(ctx.session, r) for r in rows]


@api_command("configureVirtualRouterElement", response="virtualrouterelement", is_async=True, roles=ROOT_ONLY,
             params={"id": P.uuid("the ID of the virtual router provider", required=True),
                     "enabled": P.boolean("Enabled/Disabled the service provider", required=True)})
def configure_virtual_router_element(ctx, p):
    """Configures a virtual router element."""
    provider = ctx.session.scalar(select(NetworkServiceProvider).where(NetworkServiceProvider.element_uuid == p["id"]))
    if provider is None:
        raise InvalidParameterError(f"Unable to find virtual router element with id {p['id']}")
    provider.element_enabled = p["enabled"]
    return ctx.start_job("routerelement.render", {"id": provider.uuid})


@job_handler("routerelement.render")
def render_router_element(ctx):
    with ctx.transaction() as session:
        provider = session.scalar(select(NetworkServiceProvider).where(NetworkServiceProvider.uuid == ctx.params["id"]))
        return {"virtualrouterelement": router_element_view(session, provider)}
