"""Volume snapshot commands: createSnapshot, listSnapshots, revertSnapshot, deleteSnapshot,
and snapshot policies: createSnapshotPolicy, listSnapshotPolicies, deleteSnapshotPolicies.
The work is ``core.orchestration.snapshots``."""

from __future__ import annotations

from sqlalchemy import select

from api.views.identity import prefetch_tags
from api.views.storage import SNAPSHOT_FIELDS, SNAPSHOT_POLICY_FIELDS, snapshot_policy_view, snapshot_view
from core.commands import ALL_ROLES, SUCCESS, P, api_command
from core.jobs import job_handler
from core.model import IntervalType, Snapshot, SnapshotPolicy, Volume, Zone
from core.orchestration import snapshots as snapshot_ops

from .tags import tag_filter
from .zones import choice, invalid

SNAPSHOT_TYPES = ("MANUAL", "RECURRING")


def _render(job, snapshot_uuid: str) -> dict:
    with job.transaction() as session:
        snapshot = session.scalar(select(Snapshot).where(Snapshot.uuid == snapshot_uuid))
        return {"snapshot": snapshot_view(session, snapshot)}


@api_command("createSnapshot", response="snapshot", is_async=True, roles=ALL_ROLES, response_fields=SNAPSHOT_FIELDS,
             description="Creates an instant snapshot of a volume, backed up to an image store of its zone.",
             params={
                 "volumeid": P.uuid("the ID of the disk volume", required=True),
                 "name": P.string("the name of the snapshot"),
                 "account": P.string("accepted for compatibility: a snapshot belongs to its volume's account"),
                 "domainid": P.uuid("accepted for compatibility: a snapshot belongs to its volume's account"),
             })
def create_snapshot(ctx, p):
    volume = ctx.get(Volume, p["volumeid"], "volumeid")
    snapshot = snapshot_ops.allocate(ctx.cloud, ctx.session, volume, name=p.get("name"))
    return ctx.start_job("snapshot.create", {"snapshot": snapshot.uuid, "volume": volume.uuid}, instance=snapshot,
                         instance_type="Snapshot")


@job_handler("snapshot.create")
def _create_job(job) -> dict:
    snapshot_ops.take(job.cloud, job.params["snapshot"], job.caller)
    return _render(job, job.params["snapshot"])


@api_command("listSnapshots", response="snapshot", is_list=True, roles=ALL_ROLES, response_fields=SNAPSHOT_FIELDS,
             description="Lists volume snapshots.",
             params={
                 "id": P.uuid("the ID of the snapshot"), "ids": P.list("the IDs of the snapshots", item=P.uuid()),
                 "name": P.string("the name of the snapshot"), "volumeid": P.uuid("the ID of the disk volume"),
                 "zoneid": P.uuid("the zone of the snapshots"),
                 "snapshottype": P.string("MANUAL or RECURRING"),
                 "intervaltype": P.string("HOURLY, DAILY, WEEKLY or MONTHLY"),
                 "tags": P.map("list snapshots with these tags: tags[0].key=k&tags[0].value=v"),
             })
def list_snapshots(ctx, p):
    by_id = "id" in p or "ids" in p
    query = select(Snapshot).where(Snapshot.removed.is_(None), ctx.owner_filter(Snapshot, by_id=by_id))
    if by_id:
        query = query.where(Snapshot.uuid.in_([p["id"]] if "id" in p else p["ids"]))
    if "name" in p:
        query = query.where(Snapshot.name == p["name"])
    if "volumeid" in p:
        query = query.where(Snapshot.volume_id == ctx.get(Volume, p["volumeid"], "volumeid",
                                                          include_removed=True).id)
    if "zoneid" in p:
        query = query.where(Snapshot.zone_id == ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False).id)
    if "snapshottype" in p:
        manual = choice(ctx, "snapshottype", p["snapshottype"], SNAPSHOT_TYPES) == "MANUAL"
        query = query.where((Snapshot.snapshot_type == "MANUAL") if manual else (Snapshot.snapshot_type != "MANUAL"))
    if "intervaltype" in p:
        query = query.where(Snapshot.snapshot_type == choice(ctx, "intervaltype", p["intervaltype"],
                                                             IntervalType.ORDER))
    if "tags" in p:
        query = query.where(tag_filter(Snapshot, "Snapshot", p["tags"]))
    total, snapshots = ctx.page(query, name_column=Snapshot.name, order_by=Snapshot.id.desc())
    prefetch_tags(ctx.session, "Snapshot", [s.id for s in snapshots])
    return total, [snapshot_view(ctx.session, s) for s in snapshots]


@api_command("revertSnapshot", response="snapshot", is_async=True, roles=ALL_ROLES, response_fields=SNAPSHOT_FIELDS,
             description="Reverts a volume (of a stopped VM, or detached) to a snapshot.",
             params={"id": P.uuid("the ID of the snapshot", required=True)})
def revert_snapshot(ctx, p):
    snapshot = ctx.get(Snapshot, p["id"])
    snapshot_ops.check_revert(ctx.session, snapshot)
    return ctx.start_job("snapshot.revert", {"snapshot": snapshot.uuid, "volume": snapshot.volume.uuid},
                         instance=snapshot, instance_type="Snapshot")


@job_handler("snapshot.revert")
def _revert_job(job) -> dict:
    snapshot_ops.revert(job.cloud, job.params["snapshot"], job.caller)
    return _render(job, job.params["snapshot"])


@api_command("deleteSnapshot", response="success", is_async=True, roles=ALL_ROLES,
             description="Deletes a snapshot and its backup on the image store.",
             params={"id": P.uuid("the ID of the snapshot", required=True)})
def delete_snapshot(ctx, p):
    snapshot = ctx.get(Snapshot, p["id"])
    snapshot_ops.check_delete(snapshot)
    return ctx.start_job("snapshot.delete", {"snapshot": snapshot.uuid}, instance=snapshot, instance_type="Snapshot")


@job_handler("snapshot.delete")
def _delete_job(job) -> dict:
    snapshot_ops.delete(job.cloud, job.params["snapshot"], job.caller)
    return SUCCESS


@api_command("createSnapshotPolicy", response="snapshotpolicy", roles=ALL_ROLES,
             response_fields=SNAPSHOT_POLICY_FIELDS,
             description="Creates (or, for an interval the volume has one for, updates) a recurring snapshot policy.",
             params={
                 "volumeid": P.uuid("the ID of the disk volume", required=True),
                 "intervaltype": P.string("HOURLY, DAILY, WEEKLY or MONTHLY", required=True),
                 "schedule": P.string("MM for HOURLY, MM:HH for DAILY, MM:HH:DD for WEEKLY (DD 1-7, Sunday "
                                      "first) and MONTHLY (DD 1-28)", required=True),
                 "timezone": P.string("the time zone of the schedule, e.g. UTC or Europe/Berlin", required=True),
                 "maxsnaps": P.integer("how many of its snapshots the policy keeps", required=True),
                 "fordisplay": P.boolean("show the policy to the volume's owner (default true)"),
             })
def create_snapshot_policy(ctx, p):
    volume = ctx.get(Volume, p["volumeid"], "volumeid")
    interval = choice(ctx, "intervaltype", p["intervaltype"], IntervalType.ORDER)
    existed = ctx.session.scalar(select(SnapshotPolicy.id).where(SnapshotPolicy.volume_id == volume.id,
                                                                 SnapshotPolicy.interval_type == interval))
    policy = snapshot_ops.set_policy(ctx.cloud, ctx.session, volume, interval=interval, schedule=p["schedule"],
                                     timezone=p["timezone"], max_snaps=p["maxsnaps"],
                                     display=p.get("fordisplay", True))
    ctx.event("SNAPSHOTPOLICY.UPDATE" if existed else "SNAPSHOTPOLICY.CREATE",
              f"{'Updated' if existed else 'Created'} the {interval} snapshot policy of volume {volume.name}", policy)
    return snapshot_policy_view(ctx.session, policy)


@api_command("listSnapshotPolicies", response="snapshotpolicy", is_list=True, roles=ALL_ROLES,
             response_fields=SNAPSHOT_POLICY_FIELDS, description="Lists snapshot policies.",
             params={"volumeid": P.uuid("the ID of the disk volume"), "id": P.uuid("the ID of the policy"),
                     "fordisplay": P.boolean("list only policies shown (true) or hidden (false) to users")})
def list_snapshot_policies(ctx, p):
    query = select(SnapshotPolicy).where(ctx.owner_filter(SnapshotPolicy, by_id="id" in p or "volumeid" in p))
    if "id" in p:
        query = query.where(SnapshotPolicy.uuid == p["id"])
    if "volumeid" in p:
        query = query.where(SnapshotPolicy.volume_id == ctx.get(Volume, p["volumeid"], "volumeid").id)
    if "fordisplay" in p:
        query = query.where(SnapshotPolicy.display.is_(p["fordisplay"]))
    if ctx.caller.role_type == "User":
        query = query.where(SnapshotPolicy.display.is_(True))
    total, policies = ctx.page(query, order_by=SnapshotPolicy.id)
    return total, [snapshot_policy_view(ctx.session, policy) for policy in policies]


@api_command("deleteSnapshotPolicies", response="success", roles=ALL_ROLES,
             description="Deletes snapshot policies; the snapshots they took stay.",
             params={"id": P.uuid("the ID of the policy"), "ids": P.list("the IDs of the policies", item=P.uuid())})
def delete_snapshot_policies(ctx, p):
    uuids = ([p["id"]] if "id" in p else []) + p.get("ids", [])
    if not uuids:
        raise invalid(ctx, "id", "give id or ids")
    for uuid in dict.fromkeys(uuids):
        policy = ctx.get(SnapshotPolicy, uuid, "id" if uuid == p.get("id") else "ids")
        ctx.event("SNAPSHOTPOLICY.DELETE", f"Deleted the {policy.interval_type} snapshot policy of volume "
                  f"{policy.volume.name}", policy)
        snapshot_ops.delete_policy(ctx.session, policy)
    return SUCCESS
