"""VM snapshot commands: createVMSnapshot, listVMSnapshot, revertToVMSnapshot, deleteVMSnapshot.

The rules and the state changes are ``core.orchestration.vm_snapshots``'s. The async
jobs name the VM as their instance, so the periodic power-state sync leaves a VM alone
while its snapshot is taken (a memory snapshot pauses the guest).
"""

from __future__ import annotations

from sqlalchemy import or_, select

from api.views.compute import VM_FIELDS, vm_view
from api.views.vm_snapshots import VM_SNAPSHOT_FIELDS, vm_snapshot_view
from core.commands import ALL_ROLES, SUCCESS, P, api_command, escape_like
from core.errors import InvalidParameterError, UnsupportedError
from core.jobs import JobHandle, job_handler
from core.model import VirtualMachine, VmSnapshot, VmSnapshotState
from core.orchestration import vm_snapshots as snapshot_ops

STATES = (VmSnapshotState.ALLOCATED, VmSnapshotState.CREATING, VmSnapshotState.READY, VmSnapshotState.REVERTING,
          VmSnapshotState.EXPUNGING, VmSnapshotState.ERROR)


def _snapshot(ctx, uuid: str, param: str = "vmsnapshotid") -> VmSnapshot:
    return ctx.get(VmSnapshot, uuid, param)


def _start(ctx, handler: str, snapshot: VmSnapshot) -> JobHandle:
    # the VM is the job's instance (see the module docstring); the answer's id is the snapshot's
    handle = ctx.start_job(handler, {"snapshot": snapshot.uuid}, instance=snapshot.vm,
                           instance_type="VirtualMachine")
    return JobHandle(handle.job_uuid, snapshot.uuid)


@api_command("createVMSnapshot", response="vmsnapshot", is_async=True, roles=ALL_ROLES, since="4.2.0",
             response_fields=VM_SNAPSHOT_FIELDS, description="Creates snapshot for a vm.",
             params={
                 "virtualmachineid": P.uuid("The ID of the vm", required=True),
                 "name": P.string("The display name of the snapshot"),
                 "description": P.string("The description of the snapshot"),
                 "snapshotmemory": P.boolean("snapshot memory if true"),
                 "quiescevm": P.boolean("quiesce vm if true"),
             })
def create_vm_snapshot(ctx, p):
    vm = ctx.get(VirtualMachine, p["virtualmachineid"], "virtualmachineid")
    if vm.vm_type != "User":
        raise InvalidParameterError(f"Creating a VM snapshot failed: {vm.name} is a system VM")
    if p.get("quiescevm"):
        raise UnsupportedError("quiescevm needs a guest agent to freeze the guest's file systems, "
                               "which Strato's hypervisor drivers do not use")
    snapshot = snapshot_ops.allocate(ctx.cloud, ctx.session, vm, display_name=p.get("name"),
                                     description=p.get("description"), memory=p.get("snapshotmemory", False))
    ctx.event("VMSNAPSHOT.CREATE", f"Creating VM snapshot {snapshot.display_name} of VM {vm.name}", snapshot,
              state="Scheduled")
    return _start(ctx, "vmsnapshot.create", snapshot)


@job_handler("vmsnapshot.create")
def create_job(ctx):
    snapshot_ops.take(ctx.cloud, ctx.params["snapshot"])
    with ctx.transaction() as session:
        snapshot = session.scalar(select(VmSnapshot).where(VmSnapshot.uuid == ctx.params["snapshot"]))
        return {"vmsnapshot": vm_snapshot_view(session, snapshot)}


@api_command("listVMSnapshot", response="vmSnapshot", is_list=True, roles=ALL_ROLES, since="4.2.0",
             response_fields=VM_SNAPSHOT_FIELDS, description="List virtual machine snapshot by conditions",
             params={
                 "vmsnapshotid": P.uuid("The ID of the VM snapshot"),
                 "vmsnapshotids": P.list("the IDs of the vm snapshots, mutually exclusive with vmsnapshotid",
                                         item=P.uuid()),
                 "state": P.string("state of the virtual machine snapshot"),
                 "virtualmachineid": P.uuid("the ID of the vm"),
                 "name": P.string("lists snapshot by snapshot name or display name"),
             })
def list_vm_snapshots(ctx, p):
    if "vmsnapshotid" in p and "vmsnapshotids" in p:
        raise InvalidParameterError("vmsnapshotid and vmsnapshotids are mutually exclusive")
    by_id = "vmsnapshotid" in p or "vmsnapshotids" in p
    query = (select(VmSnapshot).join(VirtualMachine, VirtualMachine.id == VmSnapshot.vm_id)
             .where(VmSnapshot.removed.is_(None), VirtualMachine.removed.is_(None))
             .where(ctx.owner_filter(VmSnapshot, by_id=by_id)))
    if by_id:
        query = query.where(VmSnapshot.uuid.in_([p["vmsnapshotid"]] if "vmsnapshotid" in p else p["vmsnapshotids"]))
    if "virtualmachineid" in p:
        query = query.where(VmSnapshot.vm_id == ctx.get(VirtualMachine, p["virtualmachineid"], "virtualmachineid").id)
    if "state" in p:
        state = next((s for s in STATES if s.lower() == p["state"].strip().lower()), None)
        if state is None:
            raise InvalidParameterError(f"Unable to execute API command listvmsnapshot due to invalid value for "
                                        f"parameter state: one of {', '.join(STATES)}")
        query = query.where(VmSnapshot.state == state)
    if "name" in p:
        query = query.where(or_(VmSnapshot.display_name == p["name"], VmSnapshot.name == p["name"]))
    keyword = p.get("keyword")
    if keyword:
        pattern = f"%{escape_like(keyword)}%"
        query = query.where(or_(VmSnapshot.name.ilike(pattern, escape="\\"),
                                VmSnapshot.display_name.ilike(pattern, escape="\\"),
                                VmSnapshot.description.ilike(pattern, escape="\\")))
    total, rows = ctx.page(query, order_by=VmSnapshot.id)
    return total, [vm_snapshot_view(ctx.session, snapshot) for snapshot in rows]


@api_command("revertToVMSnapshot", response="virtualmachine", is_async=True, roles=ALL_ROLES, since="4.2.0",
             response_fields=VM_FIELDS, description="Revert VM from a vmsnapshot.",
             params={"vmsnapshotid": P.uuid("The ID of the vm snapshot", required=True)})
def revert_to_vm_snapshot(ctx, p):
    snapshot = _snapshot(ctx, p["vmsnapshotid"])
    snapshot_ops.check_revert(ctx.cloud, ctx.session, snapshot)
    ctx.event("VMSNAPSHOT.REVERTTO", f"Reverting VM {snapshot.vm.name} to VM snapshot {snapshot.display_name}",
              snapshot, state="Scheduled")
    return _start(ctx, "vmsnapshot.revert", snapshot)


@job_handler("vmsnapshot.revert")
def revert_job(ctx):
    snapshot_ops.revert(ctx.cloud, ctx.params["snapshot"])
    with ctx.transaction() as session:
        snapshot = session.scalar(select(VmSnapshot).where(VmSnapshot.uuid == ctx.params["snapshot"]))
        admin = ctx.caller is not None and ctx.caller.role_type != "User"
        return {"virtualmachine": vm_view(session, snapshot.vm, admin=admin)}


@api_command("deleteVMSnapshot", response="success", is_async=True, roles=ALL_ROLES, since="4.2.0",
             description="Deletes a vmsnapshot.",
             params={"vmsnapshotid": P.uuid("The ID of the VM snapshot", required=True)})
def delete_vm_snapshot(ctx, p):
    snapshot = _snapshot(ctx, p["vmsnapshotid"])
    snapshot_ops.check_delete(ctx.cloud, ctx.session, snapshot)
    ctx.event("VMSNAPSHOT.DELETE", f"Deleting VM snapshot {snapshot.display_name} of VM {snapshot.vm.name}",
              snapshot, state="Scheduled")
    return _start(ctx, "vmsnapshot.delete", snapshot)


@job_handler("vmsnapshot.delete")
def delete_job(ctx):
    snapshot_ops.delete(ctx.cloud, ctx.params["snapshot"])
    return SUCCESS
