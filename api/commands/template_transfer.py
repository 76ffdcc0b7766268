"""Templates made, copied and handed out: createTemplate (from a snapshot or a stopped VM's
volume), copyTemplate (to other zones' image stores), extractTemplate (a download link),
and ``serve_extract``, the management server's answer to such a link
(``EXTRACT_PATH/<token>/<file name>``, routed by ``api.app``).
"""

from __future__ import annotations

import flask
from sqlalchemy import select

from api.views.compute import TEMPLATE_FIELDS, template_rows
from api.views.storage import EXTRACT_FIELDS, extract_view
from core.access import can_reach, resource_owner
from core.commands import ALL_ROLES, P, api_command
from core.errors import PermissionDenied, UnsupportedError
from core.jobs import job_handler
from core.model import OsType, Snapshot, SnapshotState, Template, TemplateStoreRef, Volume, Zone
from core.orchestration import limits
from core.orchestration import snapshots as snapshot_ops
from core.orchestration import template_transfer as transfer_ops

from .zones import choice, invalid

#: where the management server serves extracted templates
EXTRACT_PATH = "/client/extract"
EXTRACT_MODES = ("HTTP_DOWNLOAD", "FTP_UPLOAD")
_CHUNK = 1 << 20


def _reachable(ctx, template: Template, what: str) -> None:
    if not can_reach(ctx.session, ctx.caller, template.account_id, template.domain_id):
        raise PermissionDenied(f"Account {ctx.caller.account_name} may not {what} template {template.uuid}")


# -- createTemplate -----------------------------------------------------------------------


@api_command("createTemplate", response="template", is_async=True, roles=ALL_ROLES, response_fields=TEMPLATE_FIELDS,
             description="Creates a private template from a volume snapshot or from a stopped VM's volume.",
             params={
                 "name": P.string("the name of the template", required=True),
                 "displaytext": P.string("the display text of the template (default: the name)", max_length=4096),
                 "ostypeid": P.uuid("the OS type that best represents the template's OS", required=True),
                 "snapshotid": P.uuid("the snapshot to make the template from; either this or volumeid"),
                 "volumeid": P.uuid("the volume (of a stopped VM, or detached) to make it from"),
                 "zoneid": P.uuid("the zone of the template (with snapshotid: the snapshot's zone)"),
                 "ispublic": P.boolean("true to make the template available to all accounts"),
                 "isfeatured": P.boolean("true to feature the template (admins)"),
                 "passwordenabled": P.boolean("true if the template supports the password reset feature"),
                 "requireshvm": P.boolean("true if the template requires HVM"),
                 "bits": P.integer("32 or 64 bits"),
                 "isdynamicallyscalable": P.boolean("true if the template has tools for live scaling"),
                 "projectid": P.uuid("the project owning the template (it is charged for it)"),
             })
def create_template(ctx, p):
    if ("snapshotid" in p) == ("volumeid" in p):
        raise invalid(ctx, "snapshotid", "give either snapshotid or volumeid")
    if p.get("isfeatured") and ctx.caller.role_type == "User":
        raise PermissionDenied("only admins may create featured templates")
    os_type = ctx.get(OsType, p["ostypeid"], "ostypeid", check_owner=False)
    if "snapshotid" in p:
        snapshot = ctx.get(Snapshot, p["snapshotid"], "snapshotid")
        if snapshot.state != SnapshotState.BACKED_UP or snapshot.store is None or snapshot.store.removed:
            raise invalid(ctx, "snapshotid", f"snapshot {snapshot.name} is {snapshot.state}, not BackedUp")
        volume, store = snapshot.volume, snapshot.store
        if "zoneid" in p and p["zoneid"] != ctx.session.get(Zone, snapshot.zone_id).uuid:
            raise invalid(ctx, "zoneid", f"snapshot {snapshot.name} is in another zone")
        hypervisor = snapshot.hypervisor
    else:
        volume = ctx.get(Volume, p["volumeid"], "volumeid")
        snapshot_ops.check_template_volume(ctx.session, volume)
        store = snapshot_ops.choose_store(ctx.session, volume.zone_id, volume.pool.provider)
        hypervisor = volume.vm.hypervisor if volume.vm else None
    source = ctx.session.get(Template, volume.template_id) if volume.template_id else None
    hypervisor = hypervisor or (volume.pool.hypervisor if volume.pool else None) or \
        (source.hypervisor if source else None) or "Any"
    owner = resource_owner(ctx.session, ctx.caller, project_uuid=p.get("projectid"))
    limits.reserve(ctx.session, owner, limits.ResourceType.TEMPLATE, 1)  # 532 past the owner's limit
    limits.check_room(ctx.session, owner, limits.ResourceType.SECONDARY_STORAGE)
    template = Template(
        name=p["name"], display_text=p.get("displaytext") or p["name"], format=volume.format, hypervisor=hypervisor,
        url=None, os_type_id=os_type.id, account_id=owner.id, domain_id=owner.domain_id,
        is_public=p.get("ispublic", False), is_featured=p.get("isfeatured", False),
        password_enabled=p.get("passwordenabled", False), requires_hvm=p.get("requireshvm", True),
        is_dynamically_scalable=p.get("isdynamicallyscalable", False), bits=p.get("bits", 64),
        size=volume.size, zone_id=volume.zone_id,
        details={"sourcesnapshotid": p["snapshotid"]} if "snapshotid" in p else {"sourcevolumeid": volume.uuid})
    ctx.session.add(template)
    ctx.session.flush()
    snapshot_ops.add_template_ref(ctx.session, template, store)
    return ctx.start_job("template.create", {"template": template.uuid, "snapshot": p.get("snapshotid"),
                                             "volume": None if "snapshotid" in p else volume.uuid},
                         instance=template, instance_type="Template")


@job_handler("template.create")
def _create_job(job) -> dict:
    snapshot_ops.make_template(job.cloud, job.params["template"], snapshot_uuid=job.params.get("snapshot"),
                               volume_uuid=job.params.get("volume"), caller=job.caller)
    with job.transaction() as session:
        template = session.scalar(select(Template).where(Template.uuid == job.params["template"]))
        return {"template": template_rows(session, template, None)[0]}


# -- copyTemplate --------------------------------------------------------------------------


@api_command("copyTemplate", response="template", is_async=True, roles=ALL_ROLES, response_fields=TEMPLATE_FIELDS,
             description="Copies a template to the image stores of other zones.",
             params={
                 "id": P.uuid("the ID of the template", required=True),
                 "sourcezoneid": P.uuid("the zone the template is copied from (default: any it is ready in)"),
                 "destzoneid": P.uuid("the zone to copy the template to"),
                 "destzoneids": P.list("the zones to copy the template to", item=P.uuid()),
             })
def copy_template(ctx, p):
    if ("destzoneid" in p) == bool(p.get("destzoneids")):
        raise invalid(ctx, "destzoneid", "give either destzoneid or destzoneids")
    template = ctx.get(Template, p["id"], check_owner=False)
    _reachable(ctx, template, "copy")
    source = ctx.get(Zone, p["sourcezoneid"], "sourcezoneid", check_owner=False) if "sourcezoneid" in p else None
    transfer_ops.source_ref(ctx.session, template, source.id if source else None)
    destinations = [ctx.get(Zone, uuid, "destzoneids" if "destzoneids" in p else "destzoneid", check_owner=False)
                    for uuid in (p.get("destzoneids") or [p["destzoneid"]])]
    for zone in destinations:
        if source is not None and zone.id == source.id:
            raise invalid(ctx, "destzoneid", f"the template would be copied onto zone {zone.name} itself")
        transfer_ops.add_copy_refs(ctx.session, template, zone)
    ctx.event("TEMPLATE.COPY", f"Copying template {template.name} to zones "
              f"{', '.join(z.name for z in destinations)}", template)
    return ctx.start_job("template.copy", {"template": template.uuid, "source": source.uuid if source else None,
                                           "zones": [z.uuid for z in destinations]},
                         instance=template, instance_type="Template")


@job_handler("template.copy")
def _copy_job(job) -> dict:
    with job.transaction() as session:
        zones = {uuid: session.scalar(select(Zone.id).where(Zone.uuid == uuid))
                 for uuid in [job.params["source"], *job.params["zones"]] if uuid}
    failure = None
    for uuid in job.params["zones"]:
        try:
            transfer_ops.copy(job.cloud, job.params["template"], zones.get(job.params["source"]), zones[uuid],
                              job.caller)
        except Exception as exc:  # the other zones are still copied; the first failure fails the job
            failure = failure or exc
    if failure is not None:
        raise failure
    with job.transaction() as session:
        template = session.scalar(select(Template).where(Template.uuid == job.params["template"]))
        return {"template": template_rows(session, template, zones[job.params["zones"][0]])[0]}


# -- extractTemplate ------------------------------------------------------------------------


@api_command("extractTemplate", response="template", is_async=True, roles=ALL_ROLES, response_fields=EXTRACT_FIELDS,
             description="Makes a download link (HTTP_DOWNLOAD) for a template, valid for four hours.",
             params={
                 "id": P.uuid("the ID of the template", required=True),
                 "mode": P.string("HTTP_DOWNLOAD (FTP_UPLOAD is not supported)", required=True),
                 "zoneid": P.uuid("the zone whose copy to hand out (default: any)"),
                 "url": P.string("FTP_UPLOAD's destination: not supported", max_length=2048),
             })
def extract_template(ctx, p):
    mode = choice(ctx, "mode", p["mode"], EXTRACT_MODES)
    if mode != "HTTP_DOWNLOAD":
        raise UnsupportedError("extractTemplate supports mode HTTP_DOWNLOAD only")
    template = ctx.get(Template, p["id"], check_owner=False)
    _reachable(ctx, template, "extract")
    if not template.is_extractable and not ctx.caller.is_root_admin:
        raise invalid(ctx, "id", f"template {template.name} is not extractable")
    zone = ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False) if "zoneid" in p else None
    ref = transfer_ops.source_ref(ctx.session, template, zone.id if zone else None)
    driver = ctx.cloud.plugins.image_store(ref.store.provider)
    if not driver.capabilities.get("template_extract"):
        raise UnsupportedError(f"the {ref.store.provider} storage plugin cannot hand templates out for download")
    base = flask.request.host_url.rstrip("/") if flask.has_request_context() else ""
    ctx.event("TEMPLATE.EXTRACT", f"Extracting template {template.name}", template)
    return ctx.start_job("template.extract", {"template": template.uuid, "ref": ref.id, "base": base},
                         instance=template, instance_type="Template")


@job_handler("template.extract")
def _extract_job(job) -> dict:
    with job.transaction() as session:
        template = session.scalar(select(Template).where(Template.uuid == job.params["template"]))
        ref = session.get(TemplateStoreRef, job.params["ref"])
        link, token = transfer_ops.create_link(session, template, ref, job.caller.account_id if job.caller else None)
        name = ref.install_path.rsplit("/", 1)[-1]
        url = f"{job.params['base']}{EXTRACT_PATH}/{token}/{name}"
        zone = ref.store.zone
        return {"template": extract_view(session, template, link, zone, url)}


def serve_extract(cloud, token: str) -> flask.Response:
    """The answer to a download link: the template's file (200, streamed), 404 for a link
    that does not exist, 410 for one that expired. Nothing else about the cloud is said."""
    try:
        name, size, handle = transfer_ops.open_link(cloud, token)
    except transfer_ops.LinkError as exc:
        return flask.Response(f"{exc}\n", status=exc.status, mimetype="text/plain")

    def chunks():
        try:
            while data := handle.read(_CHUNK):
                yield data
        finally:
            handle.close()

    if flask.request.method == "HEAD":
        handle.close()
        body = b""
    else:
        body = chunks()
    response = flask.Response(body, mimetype="application/octet-stream", direct_passthrough=True)
    response.headers["Content-Length"] = str(size)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


__all__ = ["EXTRACT_PATH", "serve_extract"]
