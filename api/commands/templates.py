"""Template commands: register, list (with templatefilter), update, delete."""

from __future__ import annotations

from marshmallow import ValidationError
from sqlalchemy import or_, select

from api.views.compute import TEMPLATE_FIELDS, template_rows
from core.access import can_reach, domain_ids_under
from core.commands import ALL_ROLES, SUCCESS, P, Uuid, api_command, escape_like
from core.errors import InvalidParameterError, PermissionDenied
from core.jobs import job_handler
from core.model import OsType, Template, VirtualMachine, Zone
from core.orchestration import limits
from core.orchestration import templates as template_ops
from core.plugins import PluginManager

from .tags import tag_filter
from .vms import _owner

FORMATS = ("QCOW2", "RAW", "VHD", "VHDX", "OVA", "VMDK", "ISO", "TAR")
FILTERS = ("featured", "self", "selfexecutable", "sharedexecutable", "executable", "community", "all")


# registerTemplate answers a list, as CloudStack does: {"registertemplateresponse": {"count": 1, "template": [...]}}
@api_command("registerTemplate", response="template", is_list=True, list_params=False, roles=ALL_ROLES,
             response_fields=TEMPLATE_FIELDS,
             description="Registers an existing template into the cloud; it is downloaded into the image stores.",
             params={
                 "name": P.string("the name of the template", required=True),
                 "displaytext": P.string("the display text of the template", max_length=4096),
                 "url": P.string("the URL of where the template is hosted", required=True, max_length=2048),
                 "zoneid": P.string("the zone the template is to be hosted on, or -1 for all zones", required=True),
                 "format": P.string("the format: QCOW2, RAW, VHD, OVA, ...", required=True),
                 "hypervisor": P.string("the target hypervisor for the template", required=True),
                 "ostypeid": P.uuid("the ID of the OS type that best represents the OS of this template"),
                 "ispublic": P.boolean("true if the template is available to all accounts"),
                 "isfeatured": P.boolean("true if the template is featured (admins)"),
                 "isextractable": P.boolean("true if the template may be downloaded"),
                 "passwordenabled": P.boolean("true if the template supports the password reset feature"),
                 "isdynamicallyscalable": P.boolean("true if the template can scale live"),
                 "requireshvm": P.boolean("true if the template requires HVM"),
                 "bits": P.integer("32 or 64 bits support"),
                 "checksum": P.string("the checksum: {md5}..., {sha256}... or a bare MD5"),
                 "account": P.string("the account owning the template (with domainid)"),
                 "domainid": P.uuid("the domain of that account"),
                 "projectid": P.uuid("the project owning the template"),
             })
def register_template(ctx, p):
    fmt = p["format"].upper()
    if fmt not in FORMATS:
        raise InvalidParameterError(f"format must be one of {', '.join(FORMATS)}")
    if fmt == "ISO":
        raise InvalidParameterError("an ISO is registered with registerIso")
    hypervisor = p["hypervisor"]
    if hypervisor.lower() != "any":
        hypervisor = _hypervisor_name(ctx.cloud.plugins, hypervisor)
    url = p["url"].lower()
    if url.startswith("file://") and not ctx.caller.is_root_admin:
        # a file:// URL reads the management server's own disk: root admins only
        raise PermissionDenied("only a root admin may register a template from a file:// URL")
    if not url.startswith(("http://", "https://", "file://")):
        raise InvalidParameterError("url must be an http(s) URL")
    zone = None
    if p["zoneid"].strip() != "-1":
        try:
            zone_uuid = Uuid().deserialize(p["zoneid"])
        except ValidationError as exc:
            raise InvalidParameterError(f"Unable to execute API command registertemplate due to invalid value for "
                                        f"parameter zoneid: {exc.messages[0]}; give a zone's id or -1") from None
        zone = ctx.get(Zone, zone_uuid, "zoneid", check_owner=False)
    if p.get("isfeatured") and ctx.caller.role_type == "User":
        raise PermissionDenied("only admins may register featured templates")
    os_type = (ctx.get(OsType, p["ostypeid"], "ostypeid", check_owner=False) if "ostypeid" in p else
               ctx.session.scalar(select(OsType).where(OsType.description == "Other (64-bit)")))
    owner = _owner(ctx, p)
    limits.reserve(ctx.session, owner, limits.ResourceType.TEMPLATE, 1)  # 532 past the owner's limit
    limits.check_room(ctx.session, owner, limits.ResourceType.SECONDARY_STORAGE)
    template = Template(
        name=p["name"], display_text=p.get("displaytext") or p["name"], format=fmt, hypervisor=hypervisor,
        url=p["url"], checksum=p.get("checksum"), os_type_id=os_type.id, account_id=owner.id,
        domain_id=owner.domain_id, is_public=p.get("ispublic", False), is_featured=p.get("isfeatured", False),
        is_extractable=p.get("isextractable", False), password_enabled=p.get("passwordenabled", False),
        is_dynamically_scalable=p.get("isdynamicallyscalable", False), requires_hvm=p.get("requireshvm", True),
        bits=p.get("bits", 64), zone_id=zone.id if zone else None)
    ctx.session.add(template)
    ctx.session.flush()
    if not template_ops.add_store_refs(ctx.session, template):
        raise InvalidParameterError(f"no image store in {'zone ' + zone.name if zone else 'any zone'}: "
                                    "add one with addImageStore first")
    ctx.start_job("template.download", {"template": template.uuid}, instance=template, instance_type="Template")
    ctx.event("TEMPLATE.CREATE", f"Registered template {template.name}", template)
    rows = template_rows(ctx.session, template, None)
    return len(rows), rows


@job_handler("template.download")
def download_job(ctx):
    template_ops.download(ctx.cloud, ctx.params["template"])
    with ctx.transaction() as session:
        template = session.scalar(select(Template).where(Template.uuid == ctx.params["template"]))
        return {"template": template_rows(session, template, None)}


def _hypervisor_name(plugins: PluginManager, name: str) -> str:
    return plugins.hypervisor(name).hypervisor_type


@api_command("listTemplates", response="template", is_list=True, response_fields=TEMPLATE_FIELDS,
             description="List all public, private, and privileged templates.",
             params={
                 "templatefilter": P.string("featured, self, selfexecutable, sharedexecutable, executable, "
                                            "community or all", required=True),
                 "id": P.uuid("the template ID"), "ids": P.list("the template IDs", item=P.uuid()),
                 "name": P.string("the template name"), "zoneid": P.uuid("list templates in this zone"),
                 "hypervisor": P.string("the hypervisor"),
                 "tags": P.map("list templates with these tags: tags[0].key=k&tags[0].value=v"),
             })
def list_templates(ctx, p):
    kind = p["templatefilter"].lower()
    if kind not in FILTERS:
        raise InvalidParameterError(f"templatefilter must be one of {', '.join(FILTERS)}")
    if kind == "all" and not ctx.caller.is_root_admin:
        raise PermissionDenied("templatefilter=all is for root admins")
    query = select(Template).where(Template.removed.is_(None), Template.template_type != "SYSTEM",
                                   Template.format != "ISO", visible_by_filter(ctx, kind))
    if "account" in p or "domainid" in p:
        query = query.where(ctx.owner_filter(Template))
    if "id" in p or "ids" in p:
        query = query.where(Template.uuid.in_([p["id"]] if "id" in p else p["ids"]))
    if "name" in p:
        query = query.where(Template.name == p["name"])
    if "hypervisor" in p:
        query = query.where(Template.hypervisor == p["hypervisor"])
    if "tags" in p:
        query = query.where(tag_filter(Template, "Template", p["tags"]))
    zone_id = ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False).id if "zoneid" in p else None
    # one row per template and zone: page over templates, then expand (CloudStack counts rows)
    rows = [row for t in ctx.session.scalars(
        query.where(Template.name.ilike(f"%{escape_like(p['keyword'])}%", escape="\\")) if "keyword" in p
        else query).all() for row in template_rows(ctx.session, t, zone_id)]
    return len(rows), rows[ctx.page_window()]


def visible_by_filter(ctx, kind: str):
    """The WHERE clause of CloudStack's templatefilter / isofilter values, for the caller."""
    caller = ctx.caller
    mine = Template.account_id == caller.account_id
    if caller.is_domain_admin:
        mine = Template.domain_id.in_(domain_ids_under(ctx.session, caller.domain_path))
    if "projectid" in ctx.params:  # "self" in a project: the project's own (-1: every project's of the caller)
        mine = ctx.owner_filter(Template)
    return {
        "featured": Template.is_featured.is_(True),
        "community": Template.is_public.is_(True) & Template.is_featured.is_(False),
        "self": mine, "selfexecutable": mine,
        "sharedexecutable": Template.is_public.is_(True) & ~mine,
        "executable": or_(mine, Template.is_public.is_(True), Template.is_featured.is_(True)),
        "all": Template.id.is_not(None),
    }[kind]


def _editable(ctx, template: Template) -> None:
    if not can_reach(ctx.session, ctx.caller, template.account_id, template.domain_id):
        raise PermissionDenied(f"Account {ctx.caller.account_name} may not change template {template.uuid}")


@api_command("updateTemplate", response="template", response_fields=TEMPLATE_FIELDS,
             description="Updates attributes of a template.",
             params={"id": P.uuid("the ID of the template", required=True), "name": P.string("the name"),
                     "displaytext": P.string("the display text", max_length=4096),
                     "ostypeid": P.uuid("the OS type"), "passwordenabled": P.boolean("password reset support"),
                     "isdynamicallyscalable": P.boolean("live scaling support"), "format": P.string("the format"),
                     "ispublic": P.boolean("available to all accounts"), "isfeatured": P.boolean("featured (admins)")})
def update_template(ctx, p):
    template = ctx.get(Template, p["id"], check_owner=False)
    _editable(ctx, template)
    if "isfeatured" in p and ctx.caller.role_type == "User":
        raise PermissionDenied("only admins may feature templates")
    for param, attr in (("name", "name"), ("displaytext", "display_text"), ("passwordenabled", "password_enabled"),
                        ("isdynamicallyscalable", "is_dynamically_scalable"), ("ispublic", "is_public"),
                        ("isfeatured", "is_featured")):
        if param in p:
            setattr(template, attr, p[param])
    if "format" in p:
        if p["format"].upper() not in FORMATS:
            raise InvalidParameterError(f"format must be one of {', '.join(FORMATS)}")
        template.format = p["format"].upper()
    if "ostypeid" in p:
        template.os_type_id = ctx.get(OsType, p["ostypeid"], "ostypeid", check_owner=False).id
    ctx.session.flush()
    ctx.session.refresh(template)
    ctx.event("TEMPLATE.UPDATE", f"Updated template {template.name}", template)
    return template_rows(ctx.session, template, None)[0]


@api_command("deleteTemplate", response="success", is_async=True,
             description="Deletes a template: its files on every image store, then its record.",
             params={"id": P.uuid("the ID of the template", required=True),
                     "zoneid": P.uuid("the zone (all zones when absent)"),
                     "forced": P.boolean("delete even if VMs were deployed from it")})
def delete_template(ctx, p):
    template = ctx.get(Template, p["id"], check_owner=False)
    _editable(ctx, template)
    in_use = ctx.session.scalar(select(VirtualMachine.id).where(
        VirtualMachine.template_id == template.id, VirtualMachine.removed.is_(None)).limit(1))
    if in_use and not p.get("forced"):
        from core.errors import ResourceInUseError

        raise ResourceInUseError(f"template {template.name} is used by VMs; destroy them or pass forced=true")
    ctx.event("TEMPLATE.DELETE", f"Deleted template {template.name}", template)
    return ctx.start_job("template.delete", {"template": template.uuid}, instance=template,
                         instance_type="Template")


@job_handler("template.delete")
def delete_job(ctx):
    template_ops.delete(ctx.cloud, ctx.params["template"])
    return SUCCESS
