"""Volume commands: createVolume, attachVolume, detachVolume, resizeVolume, migrateVolume,
deleteVolume, listVolumes. The async ones queue a job whose handler follows the command;
the work is ``core.orchestration.volumes``.

Sizes given in the API are GB (GiB), as CloudStack's; views answer bytes.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api.views.identity import prefetch_tags
from api.views.storage import VOLUME_FIELDS, volume_view
from core.commands import ALL_ROLES, ROOT_ONLY, SUCCESS, P, api_command
from core.errors import PermissionDenied
from core.jobs import job_handler
from core.model import DiskOffering, Snapshot, SnapshotState, StoragePool, VirtualMachine, Volume, Zone
from core.orchestration import volumes as volume_ops

from .offerings import visible_to_caller
from .tags import tag_filter
from .vms import _owner
from .zones import invalid

GiB = 1024**3
#: CloudStack's custom.diskoffering.size.min / .max (GB)
CUSTOM_SIZE_MIN, CUSTOM_SIZE_MAX = 1, 1024


def _render(job, volume_uuid: str, snapshot_uuid: str | None = None) -> dict:
    with job.transaction() as session:
        volume = session.scalar(select(Volume).where(Volume.uuid == volume_uuid))
        admin = job.caller is not None and job.caller.role_type != "User"
        return {"volume": volume_view(session, volume, admin=admin, snapshot_uuid=snapshot_uuid)}


def _is_admin(ctx) -> bool:
    return ctx.caller.role_type != "User"


def _disk_offering(ctx, uuid: str) -> DiskOffering:
    offering = ctx.session.scalar(select(DiskOffering).where(
        DiskOffering.uuid == uuid, DiskOffering.removed.is_(None), visible_to_caller(ctx, DiskOffering.domain_id)))
    if offering is None:
        raise invalid(ctx, "diskofferingid", f"no disk offering {uuid} is available to the caller")
    return offering


def _size(ctx, offering: DiskOffering, p) -> int:
    """The size in bytes a disk offering gives (``size`` GB for a customized one)."""
    if not offering.customized:
        return offering.disk_size
    if "size" not in p:
        raise invalid(ctx, "size", f"disk offering {offering.name} is customized: give the size in GB")
    if not CUSTOM_SIZE_MIN <= p["size"] <= CUSTOM_SIZE_MAX:
        raise invalid(ctx, "size", f"the size must be from {CUSTOM_SIZE_MIN} to {CUSTOM_SIZE_MAX} GB")
    return p["size"] * GiB


@api_command("createVolume", response="volume", is_async=True, roles=ALL_ROLES, response_fields=VOLUME_FIELDS,
             description="Creates a disk volume from a disk offering or a snapshot. A volume from a disk offering "
                         "is allocated on primary storage once it is attached to a VM.",
             params={
                 "name": P.string("the name of the disk volume"),
                 "diskofferingid": P.uuid("the ID of the disk offering; either this or snapshotid"),
                 "size": P.long("the size in GB, for a customized disk offering", minimum=1),
                 "snapshotid": P.uuid("the snapshot to make the volume from; either this or diskofferingid"),
                 "zoneid": P.uuid("the zone of the volume (required with diskofferingid)"),
                 "virtualmachineid": P.uuid("a VM to attach the volume to once it is created"),
                 "account": P.string("the account of the volume (with domainid)"),
                 "domainid": P.uuid("the domain of that account"),
                 "projectid": P.uuid("the project of the volume (it owns the volume and is charged for it)"),
             })
def create_volume(ctx, p):
    if "diskofferingid" not in p and "snapshotid" not in p:
        raise invalid(ctx, "diskofferingid", "either diskofferingid or snapshotid must be given")
    owner = _owner(ctx, p)
    snapshot = None
    if "snapshotid" in p:
        snapshot = ctx.get(Snapshot, p["snapshotid"], "snapshotid")
        if snapshot.state != SnapshotState.BACKED_UP:
            raise invalid(ctx, "snapshotid", f"snapshot {snapshot.name} is {snapshot.state}, not BackedUp")
        zone = ctx.session.get(Zone, snapshot.zone_id)
        if "zoneid" in p and p["zoneid"] != zone.uuid:
            raise invalid(ctx, "zoneid", f"snapshot {snapshot.name} is in zone {zone.name}")
        source = snapshot.volume
        offering = _disk_offering(ctx, p["diskofferingid"]) if "diskofferingid" in p else (
            ctx.session.get(DiskOffering, source.disk_offering_id) if source.disk_offering_id else None)
        size = snapshot.size
    else:
        if "zoneid" not in p:
            raise invalid(ctx, "zoneid", "a volume from a disk offering needs the zone")
        zone = ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False)
        offering = _disk_offering(ctx, p["diskofferingid"])
        size = _size(ctx, offering, p)
    if zone.allocation_state != "Enabled" and not ctx.caller.is_root_admin:
        raise PermissionDenied(f"zone {zone.name} is disabled")
    vm = None
    if "virtualmachineid" in p:
        vm = ctx.get(VirtualMachine, p["virtualmachineid"], "virtualmachineid")
        if vm.account_id != owner.id:
            raise PermissionDenied(f"VM {vm.name} belongs to another account than the volume")
        if vm.zone_id != zone.id:
            raise invalid(ctx, "virtualmachineid", f"VM {vm.name} is not in zone {zone.name}")
        volume_ops.check_hotplug(ctx.cloud, vm)
    volume = volume_ops.allocate(ctx.session, owner=owner, zone=zone, size=size, name=p.get("name"),
                                 offering=offering)
    if vm is not None:
        volume_ops.check_attach(ctx.cloud, ctx.session, volume, vm, None)
    if snapshot is None:  # a volume from a snapshot is created (and its event recorded) by the job
        ctx.event("VOLUME.CREATE", f"Created volume {volume.name} of {size} bytes", volume)
    return ctx.start_job("volume.create", {"volume": volume.uuid, "snapshot": snapshot.uuid if snapshot else None,
                                           "vm": vm.uuid if vm else None}, instance=volume, instance_type="Volume")


@job_handler("volume.create")
def _create_job(job) -> dict:
    if job.params.get("snapshot"):
        volume_ops.create_from_snapshot(job.cloud, job.params["volume"], job.params["snapshot"], job.caller)
    if job.params.get("vm"):
        volume_ops.attach(job.cloud, job.params["volume"], job.params["vm"], caller=job.caller)
    return _render(job, job.params["volume"], job.params.get("snapshot"))


@api_command("attachVolume", response="volume", is_async=True, roles=ALL_ROLES, response_fields=VOLUME_FIELDS,
             description="Attaches a disk volume to a virtual machine of its account.",
             params={
                 "id": P.uuid("the ID of the disk volume", required=True),
                 "virtualmachineid": P.uuid("the ID of the virtual machine", required=True),
                 "deviceid": P.long("the device ID on the VM (default: the lowest free one)", minimum=0),
             })
def attach_volume(ctx, p):
    volume = ctx.get(Volume, p["id"])
    vm = ctx.get(VirtualMachine, p["virtualmachineid"], "virtualmachineid")
    volume_ops.check_attach(ctx.cloud, ctx.session, volume, vm, p.get("deviceid"))
    volume_ops.check_hotplug(ctx.cloud, vm)
    return ctx.start_job("volume.attach", {"volume": volume.uuid, "vm": vm.uuid, "deviceid": p.get("deviceid")},
                         instance=volume, instance_type="Volume")


@job_handler("volume.attach")
def _attach_job(job) -> dict:
    volume_ops.attach(job.cloud, job.params["volume"], job.params["vm"], job.params.get("deviceid"), job.caller)
    return _render(job, job.params["volume"])


@api_command("detachVolume", response="volume", is_async=True, roles=ALL_ROLES, response_fields=VOLUME_FIELDS,
             description="Detaches a disk volume from a virtual machine.",
             params={
                 "id": P.uuid("the ID of the disk volume"),
                 "virtualmachineid": P.uuid("the VM the volume is attached to (with deviceid)"),
                 "deviceid": P.long("the device ID of the volume on that VM (with virtualmachineid)", minimum=0),
             })
def detach_volume(ctx, p):
    if "id" in p:
        volume = ctx.get(Volume, p["id"])
    elif "virtualmachineid" in p and "deviceid" in p:
        vm = ctx.get(VirtualMachine, p["virtualmachineid"], "virtualmachineid")
        volume = next((v for v in vm.volumes if v.removed is None and v.device_id == p["deviceid"]), None)
        if volume is None:
            raise invalid(ctx, "deviceid", f"VM {vm.name} has no volume with device ID {p['deviceid']}")
    else:
        raise invalid(ctx, "id", "give id, or virtualmachineid with deviceid")
    volume_ops.check_detach(ctx.cloud, volume)
    volume_ops.check_hotplug(ctx.cloud, volume.vm)
    return ctx.start_job("volume.detach", {"volume": volume.uuid, "vm": volume.vm.uuid}, instance=volume,
                         instance_type="Volume")


@job_handler("volume.detach")
def _detach_job(job) -> dict:
    volume_ops.detach(job.cloud, job.params["volume"], job.caller)
    return _render(job, job.params["volume"])


@api_command("resizeVolume", response="volume", is_async=True, roles=ALL_ROLES, response_fields=VOLUME_FIELDS,
             description="Grows a volume (to size GB, or to a disk offering's size). Shrinking is refused.",
             params={
                 "id": P.uuid("the ID of the disk volume", required=True),
                 "size": P.long("the new size in GB (for a customized offering, or without one)", minimum=1),
                 "diskofferingid": P.uuid("the new disk offering"),
                 "shrinkok": P.boolean("allow shrinking: not supported, a smaller size is refused either way"),
             })
def resize_volume(ctx, p):
    volume = ctx.get(Volume, p["id"])
    offering = None
    if "diskofferingid" in p:
        offering = _disk_offering(ctx, p["diskofferingid"])
        new_size = _size(ctx, offering, p)
    elif "size" in p:
        new_size = p["size"] * GiB
    else:
        raise invalid(ctx, "size", "give the new size (GB) or a disk offering")
    if new_size < volume.size:
        raise invalid(ctx, "size", f"volume {volume.name} is {volume.size // GiB} GB; it can only grow "
                      "(shrinking would lose data)")
    volume_ops.check_resize(volume, new_size)
    return ctx.start_job("volume.resize", {"volume": volume.uuid, "size": new_size,
                                           "offering": offering.uuid if offering else None},
                         instance=volume, instance_type="Volume")


@job_handler("volume.resize")
def _resize_job(job) -> dict:
    offering_id = None
    if job.params.get("offering"):
        with job.transaction() as session:
            offering_id = session.scalar(select(DiskOffering.id).where(DiskOffering.uuid == job.params["offering"]))
    volume_ops.resize(job.cloud, job.params["volume"], job.params["size"], offering_id, job.caller)
    return _render(job, job.params["volume"])


@api_command("migrateVolume", response="volume", is_async=True, roles=ROOT_ONLY, response_fields=VOLUME_FIELDS,
             description="Moves a volume (not in use by a running VM) to another primary storage pool.",
             params={
                 "volumeid": P.uuid("the ID of the volume", required=True),
                 "storageid": P.uuid("the destination storage pool", required=True),
                 "livemigrate": P.boolean("migrate a volume a running VM uses: not supported"),
             })
def migrate_volume(ctx, p):
    volume = ctx.get(Volume, p["volumeid"], "volumeid")
    pool = ctx.get(StoragePool, p["storageid"], "storageid")
    volume_ops.check_migrate(ctx.session, volume, pool)
    return ctx.start_job("volume.migrate", {"volume": volume.uuid, "pool": pool.uuid}, instance=volume,
                         instance_type="Volume")


@job_handler("volume.migrate")
def _migrate_job(job) -> dict:
    volume_ops.migrate(job.cloud, job.params["volume"], job.params["pool"], job.caller)
    return _render(job, job.params["volume"])


@api_command("deleteVolume", response="success", roles=ALL_ROLES,
             description="Deletes a detached disk volume (536 while it is attached); its snapshots stay.",
             params={"id": P.uuid("the ID of the disk volume", required=True)})
def delete_volume(ctx, p):
    volume = ctx.get(Volume, p["id"])
    volume_ops.delete(ctx.cloud, ctx.session, volume, ctx.caller)
    return SUCCESS


@api_command("listVolumes", response="volume", is_list=True, response_fields=VOLUME_FIELDS,
             description="Lists all volumes.",
             params={"id": P.uuid("the ID of the volume"), "ids": P.list("the IDs of the volumes", item=P.uuid()),
                     "name": P.string("the name of the volume"), "type": P.string("ROOT or DATADISK"),
                     "virtualmachineid": P.uuid("the VM the volumes are attached to"),
                     "zoneid": P.uuid("the zone"), "state": P.string("the state of the volumes"),
                     "storageid": P.uuid("the primary pool of the volumes (admins)"),
                     "diskofferingid": P.uuid("the disk offering of the volumes"),
                     "tags": P.map("list volumes with these tags: tags[0].key=k&tags[0].value=v")})
def list_volumes(ctx, p):
    query = select(Volume).where(Volume.removed.is_(None),
                                 ctx.owner_filter(Volume, by_id="id" in p or "ids" in p))
    if "id" in p or "ids" in p:
        query = query.where(Volume.uuid.in_([p["id"]] if "id" in p else p["ids"]))
    if "name" in p:
        query = query.where(Volume.name == p["name"])
    if "type" in p:
        query = query.where(Volume.volume_type == p["type"].upper())
    if "state" in p:
        query = query.where(Volume.state == p["state"])
    if "virtualmachineid" in p:
        query = query.where(Volume.vm_id == ctx.get(VirtualMachine, p["virtualmachineid"], "virtualmachineid").id)
    if "zoneid" in p:
        query = query.where(Volume.zone_id == ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False).id)
    if "storageid" in p:
        if not _is_admin(ctx):
            raise PermissionDenied("only admins may list volumes by storage pool")
        query = query.where(Volume.pool_id == ctx.get(StoragePool, p["storageid"], "storageid").id)
    if "diskofferingid" in p:
        query = query.where(Volume.disk_offering_id == ctx.get(DiskOffering, p["diskofferingid"], "diskofferingid",
                                                               check_owner=False).id)
    if "tags" in p:
        query = query.where(tag_filter(Volume, "Volume", p["tags"]))
    query = query.options(selectinload(Volume.vm), selectinload(Volume.pool))
    total, volumes = ctx.page(query, name_column=Volume.name, order_by=Volume.id)
    prefetch_tags(ctx.session, "Volume", [v.id for v in volumes])
    admin = _is_admin(ctx)
    return total, [volume_view(ctx.session, v, admin=admin) for v in volumes]
