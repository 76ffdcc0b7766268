"""Service offerings (compute sizes) and disk offerings: create, list, update, delete.

An offering without a domain is public; one with a domain is seen by that domain
and the domains below it, as in CloudStack. Deleting an offering keeps the VMs and
volumes made from it; it only stops new ones.
"""

from __future__ import annotations

from sqlalchemy import or_, select, true

from api.views.offerings import (
    DISK_OFFERING_FIELDS,
    SERVICE_OFFERING_FIELDS,
    disk_offering_view,
    service_offering_view,
)
from core.commands import ALL_ROLES, MAX_GIB, ROOT_ONLY, SUCCESS, P, api_command
from core.errors import PermissionDenied
from core.model import DiskOffering, Domain, ServiceOffering, utcnow

from .zones import choice, invalid

GiB = 1024**3
STORAGE_TYPES = ("shared", "local")


def visible_to_caller(ctx, column):
    """The WHERE clause for offerings the caller may see: public ones, those of the
    caller's domain and the domains above it, and (for a domain admin) below it."""
    caller = ctx.caller
    if caller.is_root_admin:
        return true()
    path = caller.domain_path
    parts = [part for part in path.split("/") if part]
    prefixes = ["/"] + ["/" + "/".join(parts[:i]) + "/" for i in range(1, len(parts) + 1)]
    visible = select(Domain.id).where(Domain.path.in_(prefixes))
    if caller.is_domain_admin:
        visible = select(Domain.id).where(or_(Domain.path.in_(prefixes), Domain.path.startswith(path)))
    return or_(column.is_(None), column.in_(visible))


def usable_service_offering(ctx, uuid: str, param: str = "serviceofferingid") -> ServiceOffering:
    """The service offering a VM of the caller may take: one ``listServiceOfferings`` shows it
    (public, or of a domain it sees; 531 otherwise) and not a system VM's offering (431)."""
    offering = ctx.get(ServiceOffering, uuid, param, check_owner=False)
    if offering.is_system:
        raise invalid(ctx, param, f"{offering.name} is an offering of system VMs")
    if not ctx.session.scalar(select(ServiceOffering.id).where(
            ServiceOffering.id == offering.id, visible_to_caller(ctx, ServiceOffering.domain_id))):
        raise PermissionDenied(f"Account {ctx.caller.account_name} may not use service offering {offering.uuid}")
    return offering


def _tags(values: list[str] | None) -> str | None:
    return ",".join(values) if values else None


def _domain_id(ctx, p: dict) -> int | None:
    return ctx.get(Domain, p["domainid"], "domainid").id if "domainid" in p else None


# -- service offerings -----------------------------------------------------------


@api_command("createServiceOffering", response="serviceoffering", roles=ROOT_ONLY,
             response_fields=SERVICE_OFFERING_FIELDS, params={
                 "name": P.string("the name of the service offering", required=True),
                 "displaytext": P.string("the display text of the service offering (default: the name)",
                                         max_length=4096),
                 "cpunumber": P.integer("the number of vCPUs", required=True, minimum=1),
                 "cpuspeed": P.integer("the speed of each vCPU in MHz", required=True, minimum=1),
                 "memory": P.integer("the memory in MiB", required=True, minimum=1),
                 "hosttags": P.string("the host tag VMs of this offering need"),
                 "tags": P.list("the storage tags the root volume's pool must carry"),
                 "offerha": P.boolean("true to offer high availability"),
                 "limitcpuuse": P.boolean("true to cap the CPU use at the offering's speed"),
                 "storagetype": P.string("shared (the default) or local"),
                 "rootdisksize": P.long("the root disk size in GB (default: the template's size)", minimum=1,
                                        maximum=MAX_GIB),
                 "domainid": P.uuid("the domain the offering is for (none: public)"),
             })
def create_service_offering(ctx, p):
    """Creates a service offering. Custom-size offerings (no cpunumber/memory) are not supported yet."""
    offering = ServiceOffering(
        name=p["name"].strip(), display_text=(p.get("displaytext") or p["name"]).strip(),
        cpu_number=p["cpunumber"], cpu_speed=p["cpuspeed"], memory=p["memory"],
        host_tag=(p.get("hosttags") or "").strip() or None, storage_tags=_tags(p.get("tags")),
        offer_ha=p.get("offerha", False), limit_cpu_use=p.get("limitcpuuse", False),
        storage_type=choice(ctx, "storagetype", p.get("storagetype", "shared"), STORAGE_TYPES),
        root_disk_size=p.get("rootdisksize", 0) * GiB, domain_id=_domain_id(ctx, p))
    ctx.session.add(offering)
    ctx.session.flush()
    ctx.event("SERVICE.OFFERING.CREATE", f"Created service offering {offering.name}", offering)
    return service_offering_view(ctx.session, offering)


@api_command("listServiceOfferings", response="serviceoffering", is_list=True, roles=ALL_ROLES,
             response_fields=SERVICE_OFFERING_FIELDS, params={
                 "id": P.uuid("the ID of the service offering"),
                 "name": P.string("the name of the service offering"),
                 "issystem": P.boolean("true to list system VM offerings instead"),
             })
def list_service_offerings(ctx, p):
    """Lists the service offerings the caller may use."""
    query = select(ServiceOffering).where(ServiceOffering.removed.is_(None),
                                          ServiceOffering.is_system.is_(p.get("issystem", False)),
                                          visible_to_caller(ctx, ServiceOffering.domain_id))
    if "id" in p:
        query = query.where(ServiceOffering.uuid == p["id"])
    if "name" in p:
        query = query.where(ServiceOffering.name == p["name"])
    if "domainid" in p:
        query = query.where(ServiceOffering.domain_id == ctx.get(Domain, p["domainid"], "domainid").id)
    total, offerings = ctx.page(query, name_column=ServiceOffering.name, order_by=ServiceOffering.id)
    return total, [service_offering_view(ctx.session, o) for o in offerings]


@api_command("updateServiceOffering", response="serviceoffering", roles=ROOT_ONLY,
             response_fields=SERVICE_OFFERING_FIELDS, params={
                 "id": P.uuid("the ID of the service offering", required=True),
                 "name": P.string("the new name"),
                 "displaytext": P.string("the new display text", max_length=4096),
                 "hosttags": P.string("the new host tag"),
                 "storagetags": P.list("the new storage tags"),
             })
def update_service_offering(ctx, p):
    """Updates a service offering's name, display text or tags (sizes cannot change)."""
    offering = ctx.get(ServiceOffering, p["id"], "id")
    if "name" in p:
        offering.name = p["name"].strip()
    if "displaytext" in p:
        offering.display_text = p["displaytext"].strip()
    if "hosttags" in p:
        offering.host_tag = p["hosttags"].strip() or None
    if "storagetags" in p:
        offering.storage_tags = _tags(p["storagetags"])
    ctx.event("SERVICE.OFFERING.EDIT", f"Updated service offering {offering.name}", offering)
    return service_offering_view(ctx.session, offering)


@api_command("deleteServiceOffering", response="success", roles=ROOT_ONLY, params={
    "id": P.uuid("the ID of the service offering", required=True),
})
def delete_service_offering(ctx, p):
    """Deletes a service offering; VMs made from it keep running."""
    offering = ctx.get(ServiceOffering, p["id"], "id")
    if offering.is_system:
        raise invalid(ctx, "id", f"{offering.name} is a system offering and cannot be deleted")
    offering.removed, offering.state = utcnow(), "Inactive"
    ctx.event("SERVICE.OFFERING.DELETE", f"Deleted service offering {offering.name}", offering)
    return SUCCESS


# -- disk offerings --------------------------------------------------------------


@api_command("createDiskOffering", response="diskoffering", roles=ROOT_ONLY, response_fields=DISK_OFFERING_FIELDS,
             params={
                 "name": P.string("the name of the disk offering", required=True),
                 "displaytext": P.string("the display text (default: the name)", max_length=4096),
                 "disksize": P.long("the size of the disk in GB (not with customized)", minimum=1, maximum=MAX_GIB),
                 "customized": P.boolean("true if the size is chosen when the volume is made"),
                 "tags": P.list("the storage tags the volume's pool must carry"),
                 "storagetype": P.string("shared (the default) or local"),
                 "domainid": P.uuid("the domain the offering is for (none: public)"),
             })
def create_disk_offering(ctx, p):
    """Creates a disk offering: a fixed size, or customized (sized at volume creation)."""
    customized = p.get("customized", False)
    if customized and "disksize" in p:
        raise invalid(ctx, "disksize", "a customized offering takes its size when a volume is made; leave it out")
    if not customized and "disksize" not in p:
        raise invalid(ctx, "disksize", "a disk offering that is not customized needs a disk size")
    offering = DiskOffering(
        name=p["name"].strip(), display_text=(p.get("displaytext") or p["name"]).strip(),
        disk_size=p.get("disksize", 0) * GiB, customized=customized, storage_tags=_tags(p.get("tags")),
        storage_type=choice(ctx, "storagetype", p.get("storagetype", "shared"), STORAGE_TYPES),
        domain_id=_domain_id(ctx, p))
    ctx.session.add(offering)
    ctx.session.flush()
    ctx.event("DISK.OFFERING.CREATE", f"Created disk offering {offering.name}", offering)
    return disk_offering_view(ctx.session, offering)


@api_command("listDiskOfferings", response="diskoffering", is_list=True, roles=ALL_ROLES,
             response_fields=DISK_OFFERING_FIELDS, params={
                 "id": P.uuid("the ID of the disk offering"),
                 "name": P.string("the name of the disk offering"),
             })
def list_disk_offerings(ctx, p):
    """Lists the disk offerings the caller may use."""
    query = select(DiskOffering).where(DiskOffering.removed.is_(None),
                                       visible_to_caller(ctx, DiskOffering.domain_id))
    if "id" in p:
        query = query.where(DiskOffering.uuid == p["id"])
    if "name" in p:
        query = query.where(DiskOffering.name == p["name"])
    if "domainid" in p:
        query = query.where(DiskOffering.domain_id == ctx.get(Domain, p["domainid"], "domainid").id)
    total, offerings = ctx.page(query, name_column=DiskOffering.name, order_by=DiskOffering.id)
    return total, [disk_offering_view(ctx.session, o) for o in offerings]


@api_command("updateDiskOffering", response="diskoffering", roles=ROOT_ONLY, response_fields=DISK_OFFERING_FIELDS,
             params={
                 "id": P.uuid("the ID of the disk offering", required=True),
                 "name": P.string("the new name"),
                 "displaytext": P.string("the new display text", max_length=4096),
                 "tags": P.list("the new storage tags"),
             })
def update_disk_offering(ctx, p):
    """Updates a disk offering's name, display text or tags (the size cannot change)."""
    offering = ctx.get(DiskOffering, p["id"], "id")
    if "name" in p:
        offering.name = p["name"].strip()
    if "displaytext" in p:
        offering.display_text = p["displaytext"].strip()
    if "tags" in p:
        offering.storage_tags = _tags(p["tags"])
    ctx.event("DISK.OFFERING.EDIT", f"Updated disk offering {offering.name}", offering)
    return disk_offering_view(ctx.session, offering)


@api_command("deleteDiskOffering", response="success", roles=ROOT_ONLY, params={
    "id": P.uuid("the ID of the disk offering", required=True),
})
def delete_disk_offering(ctx, p):
    """Deletes a disk offering; volumes made from it stay."""
    offering = ctx.get(DiskOffering, p["id"], "id")
    offering.removed, offering.state = utcnow(), "Inactive"
    ctx.event("DISK.OFFERING.DELETE", f"Deleted disk offering {offering.name}", offering)
    return SUCCESS
