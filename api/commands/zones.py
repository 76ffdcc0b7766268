"""Zones: createZone, listZones, updateZone, deleteZone.

Also the small validation helpers the infrastructure command modules share
(``invalid``, ``choice``, ``ipv4``, ``allocation_state``), so every bad value is
reported the same way: 431 naming the parameter.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import func, select

from api.views.infrastructure import ZONE_FIELDS, zone_view
from core.commands import ALL_ROLES, ROOT_ONLY, SUCCESS, P, api_command
from core.errors import InvalidParameterError, ResourceInUseError
from core.model import (
    AllocationState,
    ImageStore,
    Network,
    Pod,
    StoragePool,
    VirtualMachine,
    Volume,
    Zone,
    utcnow,
)

NETWORK_TYPES = ("Basic", "Advanced")


# -- helpers shared by the infrastructure commands ---------------------------------


def invalid(ctx, param: str, problem: str) -> InvalidParameterError:
    """The 431 for a bad value of ``param``, worded as the core words schema errors."""
    return InvalidParameterError(
        f"Unable to execute API command {ctx.command.lower_name} due to invalid value for parameter {param}: {problem}")


def choice(ctx, param: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` as spelled in ``allowed`` (matched case-insensitively); 431 otherwise."""
    for option in allowed:
        if value.strip().lower() == option.lower():
            return option
    raise invalid(ctx, param, f"'{value}' is not one of {', '.join(allowed)}")


def ipv4(ctx, param: str, value: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError:
        raise invalid(ctx, param, f"'{value}' is not an IPv4 address") from None


def allocation_state(ctx, value: str, param: str = "allocationstate") -> str:
    """Enabled or Disabled; CloudStack's clients also send Enable / Disable."""
    spelled = {"enabled": AllocationState.ENABLED, "enable": AllocationState.ENABLED,
               "disabled": AllocationState.DISABLED, "disable": AllocationState.DISABLED}
    try:
        return spelled[value.strip().lower()]
    except KeyError:
        raise invalid(ctx, param, f"'{value}' is not Enabled or Disabled") from None


def is_admin(ctx) -> bool:
    return ctx.caller.is_root_admin or ctx.caller.is_domain_admin


# -- commands ---------------------------------------------------------------------

_ZONE_PARAMS = {
    "dns1": P.string("the first DNS server of the zone", max_length=64),
    "dns2": P.string("the second DNS server of the zone", max_length=64),
    "internaldns1": P.string("the first internal DNS server of the zone", max_length=64),
    "internaldns2": P.string("the second internal DNS server of the zone", max_length=64),
    "guestcidraddress": P.string("the guest CIDR address of the zone (Advanced zones)", max_length=64),
    "domain": P.string("the network domain name of the zone's networks"),
    "allocationstate": P.string("Enabled or Disabled: whether the zone takes new resources"),
    "localstorageenabled": P.boolean("true to allow local storage offerings in the zone"),
}


@api_command("createZone", response="zone", roles=ROOT_ONLY, response_fields=ZONE_FIELDS, params={
    "name": P.string("the name of the zone", required=True),
    "networktype": P.string("network type of the zone, Basic or Advanced", required=True),
    **_ZONE_PARAMS,
    "dns1": P.string("the first DNS server of the zone", required=True, max_length=64),
    "internaldns1": P.string("the first internal DNS server of the zone", required=True, max_length=64),
    "securitygroupenabled": P.boolean("true if the network is security group enabled"),
})
def create_zone(ctx, p):
    """Creates a zone."""
    name = p["name"].strip()
    if _name_taken(ctx, name):
        raise invalid(ctx, "name", f"A zone with name {name} already exists")
    zone = Zone(name=name, network_type=choice(ctx, "networktype", p["networktype"], NETWORK_TYPES),
                security_groups_enabled=p.get("securitygroupenabled", False))
    _apply(ctx, zone, p)
    ctx.session.add(zone)
    ctx.session.flush()
    ctx.event("ZONE.CREATE", f"Created zone {zone.name}", zone)
    return zone_view(ctx.session, zone)


@api_command("listZones", response="zone", is_list=True, roles=ALL_ROLES, response_fields=ZONE_FIELDS, params={
    "id": P.uuid("the ID of the zone"),
    "name": P.string("the name of the zone"),
    "available": P.boolean("true to list only the zones the caller may deploy in (users always get only those)"),
    "networktype": P.string("the network type of the zones, Basic or Advanced"),
})
def list_zones(ctx, p):
    """Lists zones. Users (and admins asking for available=true) see only Enabled zones."""
    query = select(Zone).where(Zone.removed.is_(None))
    if "id" in p:
        query = query.where(Zone.uuid == p["id"])
    if "name" in p:
        query = query.where(Zone.name == p["name"])
    if "networktype" in p:
        query = query.where(Zone.network_type == choice(ctx, "networktype", p["networktype"], NETWORK_TYPES))
    if not is_admin(ctx) or p.get("available"):
        query = query.where(Zone.allocation_state == AllocationState.ENABLED)
    total, zones = ctx.page(query, name_column=Zone.name, order_by=Zone.id)
    admin = is_admin(ctx)
    return total, [zone_view(ctx.session, zone, admin=admin) for zone in zones]


@api_command("updateZone", response="zone", roles=ROOT_ONLY, response_fields=ZONE_FIELDS, params={
    "id": P.uuid("the ID of the zone", required=True),
    "name": P.string("the new name of the zone"),
    **_ZONE_PARAMS,
})
def update_zone(ctx, p):
    """Updates a zone."""
    zone = ctx.get(Zone, p["id"], "id")
    if "name" in p:
        name = p["name"].strip()
        if name != zone.name and _name_taken(ctx, name):
            raise invalid(ctx, "name", f"A zone with name {name} already exists")
        zone.name = name
    _apply(ctx, zone, p)
    ctx.event("ZONE.EDIT", f"Updated zone {zone.name}", zone)
    return zone_view(ctx.session, zone)


@api_command("deleteZone", response="success", roles=ROOT_ONLY, params={
    "id": P.uuid("the ID of the zone", required=True),
})
def delete_zone(ctx, p):
    """Deletes a zone that holds nothing any more (536 otherwise)."""
    zone = ctx.get(Zone, p["id"], "id")
    in_zone = [("pods", Pod, None), ("primary storage pools", StoragePool, None), ("image stores", ImageStore, None),
               ("virtual machines", VirtualMachine, None), ("volumes", Volume, None),
               ("account networks", Network, Network.account_id.is_not(None))]
    for what, model, extra in in_zone:
        query = select(func.count(model.id)).where(model.zone_id == zone.id, model.removed.is_(None))
        if ctx.session.scalar(query.where(extra) if extra is not None else query):
            raise ResourceInUseError(f"The zone {zone.name} is not deletable because there are {what} in it")
    now = utcnow()
    # the zone-wide guest network Strato made for the zone goes with it (no VM uses it any more)
    for network in ctx.session.scalars(select(Network).where(Network.zone_id == zone.id, Network.removed.is_(None))):
        network.removed = now
    ctx.event("ZONE.DELETE", f"Deleted zone {zone.name}", zone)
    # zone names are unique in the table: free the name so a new zone may take it
    zone.name = f"{zone.name} (removed {zone.uuid})"[:255]
    zone.removed = now
    return SUCCESS


def _name_taken(ctx, name: str) -> bool:
    return ctx.session.scalar(select(Zone.id).where(Zone.name == name)) is not None


def _apply(ctx, zone: Zone, p: dict) -> None:
    """The settable fields createZone and updateZone share, validated."""
    for param, column in (("dns1", "dns1"), ("dns2", "dns2"), ("internaldns1", "internal_dns1"),
                          ("internaldns2", "internal_dns2")):
        if param in p:
            setattr(zone, column, str(ipv4(ctx, param, p[param])))
    if "guestcidraddress" in p:
        try:
            network = ipaddress.IPv4Network(p["guestcidraddress"].strip(), strict=False)
        except ValueError:
            raise invalid(ctx, "guestcidraddress", f"'{p['guestcidraddress']}' is not an IPv4 CIDR") from None
        zone.guest_cidr = str(network)
    if "domain" in p:
        zone.domain_name = p["domain"].strip()
    if "allocationstate" in p:
        zone.allocation_state = allocation_state(ctx, p["allocationstate"])
    if "localstorageenabled" in p:
        zone.local_storage_enabled = p["localstorageenabled"]
