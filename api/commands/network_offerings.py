"""Network offerings: createNetworkOffering, listNetworkOfferings, updateNetworkOffering,
deleteNetworkOffering. An offering names the guest type, the services and who provides
each; CloudStack's default offerings are seeded at installation and cannot be deleted."""

from __future__ import annotations

from sqlalchemy import func, select

from api.views.network import OFFERING_FIELDS, offering_view
from core.commands import ALL_ROLES, ROOT_ONLY, SUCCESS, P, api_command
from core.errors import InvalidParameterError, ResourceInUseError
from core.model import Domain, Network, NetworkOffering, NetworkOfferingService, ServiceOffering, Zone, utcnow
from core.orchestration import networking

from .offerings import visible_to_caller
from .zones import choice, invalid

GUEST_TYPES = ("Isolated", "Shared", "L2")
PROVIDERS = ("VirtualRouter",)


def _services(ctx, p) -> dict[str, str]:
    """{service: provider} from supportedservices and serviceproviderlist."""
    services = [choice(ctx, "supportedservices", s, networking.SERVICES) for s in p.get("supportedservices") or []]
    chosen: dict[str, str] = {}
    for entry in p.get("serviceproviderlist") or []:
        service = choice(ctx, "serviceproviderlist", str(entry.get("service", "")), networking.SERVICES)
        chosen[service] = choice(ctx, "serviceproviderlist", str(entry.get("provider", "")), PROVIDERS)
    for service in chosen:
        if service not in services:
            raise invalid(ctx, "serviceproviderlist", f"service {service} is not in supportedservices")
    unsupported = [s for s in services if s in ("SecurityGroup", "NetworkACL", "Connectivity")]
    if unsupported:
        raise invalid(ctx, "supportedservices", f"no enabled provider offers {', '.join(unsupported)}")
    return {s: chosen.get(s, networking.VIRTUAL_ROUTER) for s in services}


@api_command("createNetworkOffering", response="networkoffering", roles=ROOT_ONLY, response_fields=OFFERING_FIELDS,
             params={
                 "name": P.string("the name of the network offering", required=True),
                 "displaytext": P.string("the display text of the network offering (default: the name)"),
                 "guestiptype": P.string("guest type of the network offering: Shared, Isolated or L2", required=True),
                 "traffictype": P.string("the traffic type for the network offering (Guest)"),
                 "supportedservices": P.list("services supported by the network offering"),
                 "serviceproviderlist": P.map("provider to service mapping: serviceProviderList[0].service=Dhcp&"
                                              "serviceProviderList[0].provider=VirtualRouter"),
                 "servicecapabilitylist": P.map("desired service capabilities as part of network offering"),
                 "specifyvlan": P.boolean("true if network offering supports vlans"),
                 "specifyipranges": P.boolean("true if network offering supports specifying ip ranges"),
                 "conservemode": P.boolean("true if the network offering is IP conserve mode enabled"),
                 "egressdefaultpolicy": P.boolean("true (the default): egress is allowed unless a rule blocks it; "
                                                  "false: only what an egress rule allows"),
                 "availability": P.string("the availability of network offering: Required or Optional (default)"),
                 "networkrate": P.integer("data transfer rate in megabits per second", minimum=0),
                 "tags": P.string("the tags for the network offering", max_length=4096),
                 "ispersistent": P.boolean("true if network offering supports persistent networks"),
                 "domainid": P.list("the ID of the containing domain(s), null for public offerings", item=P.uuid()),
                 "zoneid": P.list("the ID of the containing zone(s), null for public offerings", item=P.uuid()),
                 "forvpc": P.boolean("true if network offering is meant to be used for VPC"),
                 "details": P.map("network offering details in key/value pairs"),
                 "enable": P.boolean("set to true if the offering is to be enabled during creation"),
                 "serviceofferingid": P.uuid("the service offering ID used by virtual router provider"),
             })
def create_network_offering(ctx, p):
    """Creates a network offering (Disabled unless enable=true, as CloudStack)."""
    guest_type = choice(ctx, "guestiptype", p["guestiptype"], GUEST_TYPES)
    if p.get("traffictype", "Guest").capitalize() != "Guest":
        raise invalid(ctx, "traffictype", "only Guest network offerings can be created")
    if p.get("forvpc"):
        raise invalid(ctx, "forvpc", "VPC networks are not supported")
    services = _services(ctx, p)
    if guest_type == "L2" and services:
        raise invalid(ctx, "supportedservices", "an L2 offering has no services")
    if guest_type == "Shared" and "SourceNat" in services:
        raise invalid(ctx, "supportedservices", "a shared network offering cannot have SourceNat")
    if guest_type == "Isolated" and any(s in services for s in ("StaticNat", "PortForwarding", "Lb", "Vpn")) \
            and "SourceNat" not in services:
        raise invalid(ctx, "supportedservices", "StaticNat, PortForwarding, Lb and Vpn need SourceNat")
    availability = choice(ctx, "availability", p.get("availability", "Optional"), ("Required", "Optional"))
    if availability == "Required" and (guest_type != "Isolated" or "SourceNat" not in services):
        raise invalid(ctx, "availability", "only an isolated offering with SourceNat can be Required")
    if availability == "Required" and ctx.session.scalar(select(NetworkOffering.id).where(
            NetworkOffering.availability == "Required", NetworkOffering.removed.is_(None),
            NetworkOffering.guest_type == "Isolated")):
        raise invalid(ctx, "availability", "there is already a Required network offering")
    domains = [ctx.get(Domain, d, "domainid").id for d in p.get("domainid") or []]
    for zone_uuid in p.get("zoneid") or []:
        ctx.get(Zone, zone_uuid, "zoneid", check_owner=False)
    capabilities = networking._default_capabilities(services)
    for entry in p.get("servicecapabilitylist") or []:
        if entry.get("capabilitytype") and entry.get("capabilityvalue") is not None:
            capabilities[str(entry["capabilitytype"])] = str(entry["capabilityvalue"])
    offering = NetworkOffering(
        name=p["name"].strip(), display_text=(p.get("displaytext") or p["name"]).strip(), guest_type=guest_type,
        traffic_type="Guest", state="Enabled" if p.get("enable") else "Disabled", availability=availability,
        specify_vlan=p.get("specifyvlan", False), specify_ip_ranges=p.get("specifyipranges", guest_type == "Shared"),
        conserve_mode=p.get("conservemode", True), egress_default_policy=p.get("egressdefaultpolicy", True),
        network_rate=p.get("networkrate"), tags=p.get("tags"), is_persistent=p.get("ispersistent", False),
        domain_id=domains[0] if domains else None, details=capabilities,
        service_offering_id=_router_offering(ctx, p).id)
    offering.services = [NetworkOfferingService(service=s, provider=v) for s, v in sorted(services.items())]
    ctx.session.add(offering)
    ctx.session.flush()
    ctx.event("NETWORK.OFFERING.CREATE", f"Created network offering {offering.name}", offering)
    return offering_view(ctx.session, offering)


def _router_offering(ctx, p):
    if "serviceofferingid" not in p:
        return networking.router_service_offering(ctx.session)
    offering = ctx.get(ServiceOffering, p["serviceofferingid"], "serviceofferingid", check_owner=False)
    if not offering.is_system:
        raise invalid(ctx, "serviceofferingid", f"{offering.name} is not a system service offering")
    return offering


@api_command("listNetworkOfferings", response="networkoffering", is_list=True, roles=ALL_ROLES,
             response_fields=OFFERING_FIELDS, list_params=True, params={
                 "id": P.uuid("list network offerings by ID"), "name": P.string("list network offerings by name"),
                 "displaytext": P.string("list network offerings by display text"),
                 "guestiptype": P.string("list network offerings by guest type: shared, isolated or l2"),
                 "traffictype": P.string("list by traffic type"), "state": P.string("list by state"),
                 "availability": P.string("the availability of network offering"),
                 "isdefault": P.boolean("true if need to list only default network offerings"),
                 "specifyvlan": P.boolean("the tags for the network offering"),
                 "specifyipranges": P.boolean("true if need to list only network offerings which support "
                                              "specifying ip ranges"),
                 "supportedservices": P.list("list network offerings supporting certain services"),
                 "sourcenatsupported": P.boolean("true if need to list only netwok offerings where source NAT "
                                                 "is supported"),
                 "zoneid": P.uuid("list network offerings available for network creation in specific zone"),
                 "networkid": P.uuid("the ID of the network (offerings it can be upgraded to)"),
                 "forvpc": P.boolean("the network offering can be used only for network creation inside the VPC"),
                 "tags": P.string("list network offerings by tags"),
             })
def list_network_offerings(ctx, p):
    """Lists all available network offerings. Users see Enabled offerings only."""
    query = select(NetworkOffering).where(NetworkOffering.removed.is_(None), NetworkOffering.is_system.is_(False),
                                          visible_to_caller(ctx, NetworkOffering.domain_id))
    if not ctx.caller.is_root_admin:
        query = query.where(NetworkOffering.state == "Enabled")
    if "id" in p:
        query = query.where(NetworkOffering.uuid == p["id"])
    if "name" in p:
        query = query.where(NetworkOffering.name == p["name"])
    if "displaytext" in p:
        query = query.where(NetworkOffering.display_text == p["displaytext"])
    if "guestiptype" in p:
        query = query.where(NetworkOffering.guest_type == choice(ctx, "guestiptype", p["guestiptype"], GUEST_TYPES))
    if "traffictype" in p:
        query = query.where(NetworkOffering.traffic_type == p["traffictype"].capitalize())
    if "state" in p:
        query = query.where(NetworkOffering.state == p["state"].capitalize())
    if "availability" in p:
        query = query.where(NetworkOffering.availability == p["availability"].capitalize())
    for param, column in (("isdefault", NetworkOffering.is_default), ("specifyvlan", NetworkOffering.specify_vlan),
                          ("specifyipranges", NetworkOffering.specify_ip_ranges)):
        if param in p:
            query = query.where(column.is_(p[param]))
    if p.get("forvpc"):
        query = query.where(False)
    if "tags" in p:
        query = query.where(NetworkOffering.tags == p["tags"])
    if "zoneid" in p:
        ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False)  # offerings are zone-wide here
    wanted = [choice(ctx, "supportedservices", s, networking.SERVICES) for s in p.get("supportedservices") or []]
    if p.get("sourcenatsupported"):
        wanted.append("SourceNat")
    for service in wanted:
        query = query.where(NetworkOffering.id.in_(select(NetworkOfferingService.offering_id).where(
            NetworkOfferingService.service == service)))
    if "networkid" in p:
        network = ctx.get(Network, p["networkid"], "networkid")
        query = query.where(NetworkOffering.guest_type == network.guest_type)
    total, rows = ctx.page(query, name_column=NetworkOffering.name, order_by=NetworkOffering.id)
    return total, [offering_view(ctx.session, r) for r in rows]


@api_command("updateNetworkOffering", response="networkoffering", roles=ROOT_ONLY, response_fields=OFFERING_FIELDS,
             params={
                 "id": P.uuid("the id of the network offering"), "name": P.string("the name of the network offering"),
                 "displaytext": P.string("the display text of the network offering"),
                 "availability": P.string("Required or Optional"), "state": P.string("Enabled or Disabled"),
                 "tags": P.string("the tags for the network offering", max_length=4096),
                 "sortkey": P.integer("sort key of the network offering"),
             })
def update_network_offering(ctx, p):
    """Updates a network offering."""
    if "id" not in p and "name" not in p:
        raise InvalidParameterError("give the id of the network offering")
    offering = ctx.get(NetworkOffering, p["id"], "id", check_owner=False) if "id" in p else None
    if offering is None:
        raise InvalidParameterError("give the id of the network offering")
    if "name" in p:
        offering.name = p["name"].strip()
    if "displaytext" in p:
        offering.display_text = p["displaytext"].strip()
    if "state" in p:
        offering.state = choice(ctx, "state", p["state"], ("Enabled", "Disabled"))
    if "availability" in p:
        availability = choice(ctx, "availability", p["availability"], ("Required", "Optional"))
        if availability == "Required" and (offering.guest_type != "Isolated" or "SourceNat" not in offering.providers()):
            raise invalid(ctx, "availability", "only an isolated offering with SourceNat can be Required")
        if availability == "Required":
            for other in ctx.session.scalars(select(NetworkOffering).where(
                    NetworkOffering.availability == "Required", NetworkOffering.id != offering.id)):
                other.availability = "Optional"  # one Required offering, as CloudStack keeps it
        offering.availability = availability
    if "tags" in p:
        offering.tags = p["tags"] or None
    ctx.event("NETWORK.OFFERING.EDIT", f"Updated network offering {offering.name}", offering)
    return offering_view(ctx.session, offering)


@api_command("deleteNetworkOffering", response="success", roles=ROOT_ONLY,
             params={"id": P.uuid("the ID of the network offering", required=True)})
def delete_network_offering(ctx, p):
    """Deletes a network offering. Default offerings cannot be deleted; offerings networks use, neither (536)."""
    offering = ctx.get(NetworkOffering, p["id"], "id", check_owner=False)
    if offering.is_default:
        raise invalid(ctx, "id", f"{offering.name} is a default network offering and cannot be deleted")
    used = ctx.session.scalar(select(func.count()).select_from(Network).where(
        Network.network_offering_id == offering.id, Network.removed.is_(None)))
    if used:
        raise ResourceInUseError(f"network offering {offering.name} is used by {used} network(s)")
    offering.removed, offering.state = utcnow(), "Disabled"
    ctx.event("NETWORK.OFFERING.DELETE", f"Deleted network offering {offering.name}", offering)
    return SUCCESS
