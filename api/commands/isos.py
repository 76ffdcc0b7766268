"""ISO commands: registerIso, listIsos (with isofilter), deleteIso.

An ISO is a ``Template`` of format ISO: it is downloaded into the image stores by the
same job as a template (``template.download``: progress, checksum, the ISO 9660
signature checked, an error with its reason otherwise), and deleted the same way.
"""

from __future__ import annotations

from sqlalchemy import select

from api.views.storage import ISO_FIELDS, iso_rows
from core.access import can_reach
from core.commands import ALL_ROLES, SUCCESS, P, Uuid, api_command, escape_like
from core.errors import PermissionDenied
from core.jobs import job_handler
from core.model import OsType, Template, Zone
from core.orchestration import limits
from core.orchestration import templates as template_ops

from .templates import visible_by_filter
from .vms import _owner
from .zones import choice, invalid

FILTERS = ("featured", "self", "selfexecutable", "sharedexecutable", "executable", "community", "all")
#: filters that list only ISOs ready to use (CloudStack's ListIsosCmd.listInReadyState)
READY_ONLY = ("featured", "selfexecutable", "sharedexecutable", "community")
#: CloudStack's hypervisor type of an ISO, which boots on any
ISO_HYPERVISOR = "None"


# registerIso answers a list, as CloudStack does: {"registerisoresponse": {"count": 1, "iso": [...]}}
@api_command("registerIso", response="iso", is_list=True, list_params=False, roles=ALL_ROLES,
             response_fields=ISO_FIELDS,
             description="Registers an existing ISO into the cloud; it is downloaded into the image stores.",
             params={
                 "name": P.string("the name of the ISO", required=True),
                 "displaytext": P.string("the display text of the ISO", max_length=4096),
                 "url": P.string("the URL the ISO is downloaded from", required=True, max_length=2048),
                 "zoneid": P.string("the zone to register the ISO in, or -1 for every zone", required=True),
                 "bootable": P.boolean("true (the default) if the ISO is bootable"),
                 "ostypeid": P.uuid("the OS type that best represents the ISO's OS"),
                 "ispublic": P.boolean("true to make the ISO available to all accounts"),
                 "isfeatured": P.boolean("true to feature the ISO (admins)"),
                 "isextractable": P.boolean("true if the ISO may be downloaded again"),
                 "isdynamicallyscalable": P.boolean("true if the ISO has tools for live scaling"),
                 "passwordenabled": P.boolean("true if the password reset feature is supported"),
                 "checksum": P.string("the checksum: {md5}..., {sha256}... or a bare MD5"),
                 "account": P.string("the account owning the ISO (with domainid)"),
                 "domainid": P.uuid("the domain of that account"),
                 "projectid": P.uuid("the project owning the ISO"),
             })
def register_iso(ctx, p):
    url = p["url"].strip()
    if url.lower().startswith("file://") and not ctx.caller.is_root_admin:
        # a file:// URL reads the management server's own disk: root admins only
        raise PermissionDenied("only a root admin may register an ISO from a file:// URL")
    if not url.lower().startswith(("http://", "https://", "file://")):
        raise invalid(ctx, "url", "must be an http(s) URL")
    zone = None
    if p["zoneid"].strip() != "-1":
        zone = ctx.get(Zone, Uuid().deserialize(p["zoneid"]), "zoneid", check_owner=False)
    if p.get("isfeatured") and ctx.caller.role_type == "User":
        raise PermissionDenied("only admins may register featured ISOs")
    os_type = (ctx.get(OsType, p["ostypeid"], "ostypeid", check_owner=False) if "ostypeid" in p else
               ctx.session.scalar(select(OsType).where(OsType.description == "Other (64-bit)")))
    owner = _owner(ctx, p)
    limits.reserve(ctx.session, owner, limits.ResourceType.TEMPLATE, 1)  # 532 past the owner's limit
    limits.check_room(ctx.session, owner, limits.ResourceType.SECONDARY_STORAGE)
    iso = Template(
        name=p["name"], display_text=p.get("displaytext") or p["name"], format="ISO", hypervisor=ISO_HYPERVISOR,
        url=url, checksum=p.get("checksum"), os_type_id=os_type.id, account_id=owner.id, domain_id=owner.domain_id,
        is_public=p.get("ispublic", False), is_featured=p.get("isfeatured", False),
        is_extractable=p.get("isextractable", False), password_enabled=p.get("passwordenabled", False),
        is_dynamically_scalable=p.get("isdynamicallyscalable", False), zone_id=zone.id if zone else None,
        details={"bootable": p.get("bootable", True)})
    ctx.session.add(iso)
    ctx.session.flush()
    if not template_ops.add_store_refs(ctx.session, iso):
        raise invalid(ctx, "zoneid", f"no image store in {'zone ' + zone.name if zone else 'any zone'}: add one "
                      "with addImageStore first")
    ctx.start_job("template.download", {"template": iso.uuid}, instance=iso, instance_type="Iso")
    ctx.event("ISO.CREATE", f"Registered ISO {iso.name}", iso)
    rows = iso_rows(ctx.session, iso, None)
    return len(rows), rows


@api_command("listIsos", response="iso", is_list=True, roles=ALL_ROLES, response_fields=ISO_FIELDS,
             description="Lists ISOs.",
             params={
                 "isofilter": P.string("featured, self, selfexecutable (the default), sharedexecutable, "
                                       "executable, community or all (root admins)"),
                 "id": P.uuid("the ISO's ID"), "ids": P.list("the ISOs' IDs", item=P.uuid()),
                 "name": P.string("the ISO's name"), "zoneid": P.uuid("list ISOs in this zone"),
                 "bootable": P.boolean("list only bootable (true) or non-bootable (false) ISOs"),
                 "isready": P.boolean("list only ISOs ready to use"),
                 "ispublic": P.boolean("list only public (true) or private (false) ISOs"),
                 "hypervisor": P.string("accepted for compatibility: an ISO serves every hypervisor"),
             })
def list_isos(ctx, p):
    kind = choice(ctx, "isofilter", p.get("isofilter", "selfexecutable"), FILTERS)
    if kind == "all" and not ctx.caller.is_root_admin:
        raise PermissionDenied("isofilter=all is for root admins")
    query = select(Template).where(Template.removed.is_(None), Template.format == "ISO",
                                   visible_by_filter(ctx, kind))
    if "account" in p or "domainid" in p:
        query = query.where(ctx.owner_filter(Template))
    if "id" in p or "ids" in p:
        query = query.where(Template.uuid.in_([p["id"]] if "id" in p else p["ids"]))
    if "name" in p:
        query = query.where(Template.name == p["name"])
    if "ispublic" in p:
        query = query.where(Template.is_public.is_(p["ispublic"]))
    if "keyword" in p:
        query = query.where(Template.name.ilike(f"%{escape_like(p['keyword'])}%", escape="\\"))
    zone_id = ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False).id if "zoneid" in p else None
    ready_only = p.get("isready", kind in READY_ONLY)
    rows = [row for iso in ctx.session.scalars(query.order_by(Template.id)).all()
            for row in iso_rows(ctx.session, iso, zone_id)
            if (not ready_only or row["isready"]) and ("bootable" not in p or row["bootable"] == p["bootable"])]
    return len(rows), rows[ctx.page_window()]


@api_command("deleteIso", response="success", is_async=True, roles=ALL_ROLES,
             description="Deletes an ISO: its files on every image store, then its record.",
             params={"id": P.uuid("the ID of the ISO", required=True),
                     "zoneid": P.uuid("accepted for compatibility: the ISO is deleted from every zone")})
def delete_iso(ctx, p):
    iso = ctx.get(Template, p["id"], check_owner=False)
    if iso.format != "ISO":
        raise invalid(ctx, "id", f"{iso.name} is a template, not an ISO: use deleteTemplate")
    if not can_reach(ctx.session, ctx.caller, iso.account_id, iso.domain_id):
        raise PermissionDenied(f"Account {ctx.caller.account_name} may not delete ISO {iso.uuid}")
    ctx.event("ISO.DELETE", f"Deleted ISO {iso.name}", iso)
    return ctx.start_job("iso.delete", {"template": iso.uuid}, instance=iso, instance_type="Iso")


@job_handler("iso.delete")
def _delete_job(job) -> dict:
    template_ops.delete(job.cloud, job.params["template"])
    return SUCCESS
