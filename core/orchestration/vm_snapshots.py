"""VM snapshots: every disk of a VM, and its memory when it runs, through the hypervisor driver.

CloudStack's rules (VMSnapshotManagerImpl): a snapshot is taken of a Running or Stopped VM;
a running VM's snapshot holds its memory (``DiskAndMemory``, the driver contract takes the
memory whenever the VM runs), a stopped VM's does not (``Disk``); a VM is reverted only to a
snapshot of the same kind as its state, so a revert never starts or stops it; one snapshot
task per VM at a time; at most ``vmsnapshot.max`` live snapshots per VM.

``allocate`` and the ``check_*`` functions run in the command's transaction; ``take``,
``revert`` and ``delete`` run in the job. Each state change is one guarded UPDATE (state and
``version``) in its own transaction, the driver call sits between them, and every failure
returns the snapshot to a stable state before the error goes up:

- take fails: the row is removed (the driver leaves no snapshot of that name);
- revert fails: the snapshot is Ready again;
- delete fails: the snapshot is back in the state it had.

A task whose job died leaves its snapshot Creating/Reverting/Expunging; ``settle_stale``
(called by every command before it checks for a running task, and by the periodic pass
through ``settle_interrupted``) moves such a snapshot to Error (Creating: the driver may
have made it; deleting it is safe, the driver's delete is idempotent) or Ready (Reverting);
an interrupted delete (Expunging) is finished by ``settle_interrupted``.
"""

from __future__ import annotations

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from ..errors import ConcurrentOperationError, InvalidParameterError, ResourceLimitError, UnsupportedError
from ..events import record
from ..model import (
    AsyncJob,
    Host,
    JobStatus,
    VirtualMachine,
    VmSnapshot,
    VmSnapshotState,
    VmSnapshotType,
    VolumeState,
    Zone,
    utcnow,
)
from . import identity, usage
from .refs import host_ref, vm_spec

S = VmSnapshotState
#: job handlers of VM snapshot tasks (the jobs carry the VM's uuid as their instance)
HANDLERS = ("vmsnapshot.create", "vmsnapshot.revert", "vmsnapshot.delete")
ACTIVE = (S.CREATING, S.REVERTING, S.EXPUNGING)
#: the states a snapshot may be deleted from (Expunging: a delete that failed half-way)
DELETABLE = (S.READY, S.ERROR, S.EXPUNGING)


# -- in the command's transaction ------------------------------------------------------------------


def allocate(cloud, session: Session, vm: VirtualMachine, *, display_name: str | None, description: str | None,
             memory: bool) -> VmSnapshot:
    """Check that ``vm`` can be snapshotted now and add the snapshot row (Allocated).

    Raises 432 when the VM's hypervisor cannot snapshot VMs, 431 for a VM in the wrong
    state, a memory request that does not fit the state, a display name the VM's snapshots
    already use or another snapshot task on the VM, 532 past ``vmsnapshot.max``.
    """
    _check_supported(cloud, vm)
    if vm.state not in ("Running", "Stopped"):
        raise InvalidParameterError(f"Creating a VM snapshot failed: VM {vm.name} is {vm.state}, "
                                    "not Running or Stopped")
    if memory and vm.state != "Running":
        raise InvalidParameterError(f"Can not snapshot the memory of VM {vm.name}: it is not Running")
    if vm.state == "Running" and not memory:
        # the driver contract snapshots a running VM's memory with its disks (as CloudStack on KVM)
        raise InvalidParameterError(f"VM {vm.name} is Running: its snapshot includes its memory; pass "
                                    "snapshotmemory=true, or stop the VM for a disk-only snapshot")
    root = next((v for v in vm.volumes if v.volume_type == "ROOT" and v.removed is None), None)
    if root is None or root.state != VolumeState.READY or (vm.host_id or vm.last_host_id) is None:
        raise InvalidParameterError(f"VM {vm.name} has never been started: it has no disks to snapshot yet")
    check_no_task(session, vm)
    live = _live(session, vm)
    limit = cloud.config.get(session, "vmsnapshot.max")
    if len(live) >= limit:
        raise ResourceLimitError(f"VM {vm.name} has {len(live)} VM snapshots, the most a VM may have "
                                 f"(vmsnapshot.max = {limit}); delete old ones first")
    name = _unique_name(vm, {s.name for s in live})
    display_name = display_name or name
    if any(s.display_name == display_name for s in live):
        raise InvalidParameterError(f"VM {vm.name} already has a VM snapshot named {display_name}")
    parent = next((s for s in live if s.current), None)
    snapshot = VmSnapshot(name=name, display_name=display_name, description=description, vm_id=vm.id,
                          account_id=vm.account_id, domain_id=vm.domain_id,
                          service_offering_id=vm.service_offering_id,
                          snapshot_type=VmSnapshotType.DISK_AND_MEMORY if memory else VmSnapshotType.DISK,
                          state=S.ALLOCATED, parent_id=parent.id if parent else None)
    session.add(snapshot)
    session.flush()
    return snapshot


def check_revert(cloud, session: Session, snapshot: VmSnapshot) -> None:
    """431 unless the VM can be reverted to ``snapshot`` now (CloudStack's rules, module docstring)."""
    vm = snapshot.vm
    _check_supported(cloud, vm)
    if vm.state not in ("Running", "Stopped"):
        raise InvalidParameterError(f"Reverting to a VM snapshot failed: VM {vm.name} is {vm.state}, "
                                    "not Running or Stopped")
    if vm.state == "Running" and snapshot.snapshot_type == VmSnapshotType.DISK:
        raise InvalidParameterError(
            f"VM {vm.name} is Running and VM snapshot {snapshot.display_name} holds no memory: reverting would "
            "stop the VM. Stop it first to revert to a disk-only snapshot")
    if vm.state == "Stopped" and snapshot.snapshot_type == VmSnapshotType.DISK_AND_MEMORY:
        raise InvalidParameterError(
            f"VM {vm.name} is Stopped and VM snapshot {snapshot.display_name} holds its memory: reverting would "
            "start the VM. Start it first to revert to a snapshot with memory")
    if vm.state == "Running" and snapshot.service_offering_id != vm.service_offering_id:
        raise InvalidParameterError(
            f"VM {vm.name} runs with another service offering than when VM snapshot {snapshot.display_name} was "
            "taken; stop the VM and change its offering back first")
    check_no_task(session, vm)
    if snapshot.state != S.READY:
        raise InvalidParameterError(f"VM snapshot {snapshot.display_name} is {snapshot.state}, not Ready")


def check_delete(cloud, session: Session, snapshot: VmSnapshot) -> None:
    vm = snapshot.vm
    _check_supported(cloud, vm)
    if vm.state not in ("Running", "Stopped"):
        raise InvalidParameterError(f"Deleting a VM snapshot failed: VM {vm.name} is {vm.state}, "
                                    "not Running or Stopped")
    check_no_task(session, vm)
    if snapshot.state not in DELETABLE:
        raise InvalidParameterError(f"VM snapshot {snapshot.display_name} is {snapshot.state}; only a snapshot in "
                                    f"{', '.join(DELETABLE)} can be deleted")


def check_no_task(session: Session, vm: VirtualMachine) -> None:
    """431 while a VM snapshot job of ``vm`` is pending (settling those whose job died)."""
    settle_stale(session, vm)
    busy = session.scalar(select(exists().where(
        AsyncJob.instance_uuid == vm.uuid, AsyncJob.status == JobStatus.PENDING, AsyncJob.handler.in_(HANDLERS))))
    if busy:
        raise InvalidParameterError(f"There is another VM snapshot task on VM {vm.name}; try again later")


#: the states a snapshot is in only while a job works on it
IN_A_TASK = (S.ALLOCATED, S.CREATING, S.REVERTING, S.EXPUNGING)


def settle_stale(session: Session, vm: VirtualMachine) -> list[str]:
    """Snapshots left in a task's state by a job that is no longer pending (see the module
    docstring); returns the uuids of those whose deletion died (still Expunging)."""
    stuck = [s for s in _live(session, vm) if s.state in IN_A_TASK]
    if not stuck:
        return []
    pending = session.scalars(select(AsyncJob.params).where(
        AsyncJob.instance_uuid == vm.uuid, AsyncJob.status == JobStatus.PENDING,
        AsyncJob.handler.in_(HANDLERS))).all()
    running = {params.get("snapshot") for params in pending}
    interrupted_deletes = []
    for snapshot in stuck:
        if snapshot.uuid in running:
            continue
        if snapshot.state == S.EXPUNGING:
            interrupted_deletes.append(snapshot.uuid)
            continue
        _move(session, snapshot, S.ERROR if snapshot.state == S.CREATING else
              S.READY if snapshot.state == S.REVERTING else S.REMOVED,
              **({"removed": utcnow()} if snapshot.state == S.ALLOCATED else {}))
    return interrupted_deletes


def settle_interrupted(cloud) -> list[str]:
    """The periodic pass's step: every VM's snapshots whose task died are settled, and the
    deletions that died are finished (the user asked for them; the driver's delete is
    idempotent). Returns the uuids of the snapshots deleted."""
    with cloud.db.transaction() as session:
        vms = session.scalars(select(VirtualMachine).where(VirtualMachine.id.in_(
            select(VmSnapshot.vm_id).where(VmSnapshot.removed.is_(None), VmSnapshot.state.in_(IN_A_TASK))))).all()
        unfinished = [uuid for vm in vms for uuid in settle_stale(session, vm)]
    for snapshot_uuid in unfinished:
        delete(cloud, snapshot_uuid)
    return unfinished


# -- in the job ----------------------------------------------------------------------------------


def take(cloud, snapshot_uuid: str) -> None:
    """Allocated -> Creating -> Ready (and current). On failure the row is removed."""
    with cloud.db.transaction() as session:
        snapshot = _snapshot(session, snapshot_uuid)
        _move(session, snapshot, S.CREATING, expect=(S.ALLOCATED,))
        vm = snapshot.vm
        wants = VmSnapshotType.DISK_AND_MEMORY if vm.state == "Running" else VmSnapshotType.DISK
        if vm.state not in ("Running", "Stopped") or wants != snapshot.snapshot_type:
            # the VM changed state between the command and its job
            _move(session, snapshot, S.REMOVED, removed=utcnow())
            failure = InvalidParameterError(f"VM {vm.name} is now {vm.state}; its {snapshot.snapshot_type} "
                                            "snapshot was not taken")
        else:
            failure = None
            driver, host, spec = _target(cloud, session, vm)
            name, description = snapshot.name, snapshot.description or ""
    if failure is not None:
        raise failure
    try:
        driver.create_vm_snapshot(host, spec, name, description)
    except Exception:
        with cloud.db.transaction() as session:
            _move(session, _snapshot(session, snapshot_uuid), S.REMOVED, removed=utcnow())
        raise
    with cloud.db.transaction() as session:
        snapshot = _snapshot(session, snapshot_uuid)
        _clear_current(session, snapshot)
        _move(session, snapshot, S.READY, expect=(S.CREATING,), current=True)
        _usage(session, "VMSNAPSHOT.CREATE", snapshot)
        record(session, "VMSNAPSHOT.CREATE", f"Created VM snapshot {snapshot.display_name} of VM {snapshot.vm.name}",
               resource=snapshot, plugins=cloud.plugins)


def revert(cloud, snapshot_uuid: str) -> None:
    """Ready -> Reverting -> Ready (and current); the VM's disks (and memory) are the snapshot's.
    A stopped VM gets back the offering it had then. On failure the snapshot is Ready again."""
    with cloud.db.transaction() as session:
        snapshot = _snapshot(session, snapshot_uuid)
        check_revert_state(snapshot)
        _move(session, snapshot, S.REVERTING, expect=(S.READY,))
        driver, host, spec = _target(cloud, session, snapshot.vm)
        name = snapshot.name
    try:
        driver.revert_vm_snapshot(host, spec, name)
    except Exception:
        with cloud.db.transaction() as session:
            _move(session, _snapshot(session, snapshot_uuid), S.READY, expect=(S.REVERTING,))
        raise
    with cloud.db.transaction() as session:
        snapshot = _snapshot(session, snapshot_uuid)
        vm = snapshot.vm
        if vm.state == "Stopped" and vm.service_offering_id != snapshot.service_offering_id:
            vm.service_offering_id = snapshot.service_offering_id
        _clear_current(session, snapshot)
        _move(session, snapshot, S.READY, expect=(S.REVERTING,), current=True)
        record(session, "VMSNAPSHOT.REVERTTO", f"Reverted VM {vm.name} to VM snapshot {snapshot.display_name}",
               resource=snapshot, plugins=cloud.plugins)


def check_revert_state(snapshot: VmSnapshot) -> None:
    """The VM's state, read again in the job: it may have changed since the command."""
    vm = snapshot.vm
    fits = {"Running": VmSnapshotType.DISK_AND_MEMORY, "Stopped": VmSnapshotType.DISK}.get(vm.state)
    if fits != snapshot.snapshot_type:
        raise InvalidParameterError(f"VM {vm.name} is now {vm.state}; it cannot be reverted to the "
                                    f"{snapshot.snapshot_type} snapshot {snapshot.display_name}")


def delete(cloud, snapshot_uuid: str) -> None:
    """-> Expunging -> Removed. Its children hang from its parent afterwards, and its parent
    becomes current if it was. On failure the snapshot is back in the state it had."""
    with cloud.db.transaction() as session:
        snapshot = _snapshot(session, snapshot_uuid)
        before = snapshot.state
        _move(session, snapshot, S.EXPUNGING, expect=DELETABLE)
        driver, host, spec = _target(cloud, session, snapshot.vm)
        name = snapshot.name
    try:
        driver.delete_vm_snapshot(host, spec, name)
    except Exception:
        with cloud.db.transaction() as session:
            _move(session, _snapshot(session, snapshot_uuid), before, expect=(S.EXPUNGING,))
        raise
    with cloud.db.transaction() as session:
        snapshot = _snapshot(session, snapshot_uuid)
        session.execute(update(VmSnapshot).where(VmSnapshot.parent_id == snapshot.id)
                        .values(parent_id=snapshot.parent_id).execution_options(synchronize_session=False))
        if snapshot.current and snapshot.parent_id is not None:
            session.execute(update(VmSnapshot).where(VmSnapshot.id == snapshot.parent_id,
                                                     VmSnapshot.removed.is_(None))
                            .values(current=True).execution_options(synchronize_session=False))
        _move(session, snapshot, S.REMOVED, expect=(S.EXPUNGING,), removed=utcnow(), current=False)
        if before != S.ERROR:  # an Error snapshot was never charged
            _usage(session, "VMSNAPSHOT.DELETE", snapshot)
        record(session, "VMSNAPSHOT.DELETE", f"Deleted VM snapshot {snapshot.display_name} of VM {snapshot.vm.name}",
               resource=snapshot, plugins=cloud.plugins)


def forget_all(session: Session, vm: VirtualMachine) -> None:
    """The VM is expunged: its hypervisor object (with the snapshots' metadata) and its disks
    (with the snapshots' data) are gone, so are its snapshots. In the expunge's transaction."""
    for snapshot in _live(session, vm):
        if snapshot.state in (S.READY, S.REVERTING, S.EXPUNGING):  # charged since it was taken
            _usage(session, "VMSNAPSHOT.DELETE", snapshot)
    session.execute(update(VmSnapshot).where(VmSnapshot.vm_id == vm.id, VmSnapshot.removed.is_(None))
                    .values(state=S.REMOVED, removed=utcnow(), current=False, version=VmSnapshot.version + 1)
                    .execution_options(synchronize_session=False))


def delete_all_of(cloud, account_id: int) -> None:
    """deleteAccount, before its VMs go (as CloudStack): the account's VM snapshots deleted on
    their hypervisor (``check_delete`` + ``delete``). Those of a VM neither Running nor
    Stopped go with the VM's expunge (``forget_all``)."""
    with cloud.db.transaction() as session:
        uuids = list(session.scalars(
            select(VmSnapshot.uuid).join(VirtualMachine, VirtualMachine.id == VmSnapshot.vm_id)
            .where(VmSnapshot.account_id == account_id, VmSnapshot.removed.is_(None),
                   VirtualMachine.state.in_(("Running", "Stopped"))).order_by(VmSnapshot.id.desc())))
    for snapshot_uuid in uuids:
        with cloud.db.transaction() as session:
            check_delete(cloud, session, _snapshot(session, snapshot_uuid))
        delete(cloud, snapshot_uuid)


identity.register_cleaner("vm snapshots", delete_all_of, before="vms")


# -- helpers ---------------------------------------------------------------------------------------


def _usage(session: Session, event_type: str, snapshot: VmSnapshot) -> None:
    """VM snapshot usage (CloudStack's VM_SNAPSHOT), in the change's transaction. The size is
    that of the VM's disks: the hypervisor contract reports no snapshot sizes."""
    vm = snapshot.vm
    zone = session.get(Zone, vm.zone_id)
    size = sum(v.size for v in vm.volumes if v.removed is None and v.state != VolumeState.ALLOCATED)
    usage.record(session, event_type, account_id=snapshot.account_id, domain_id=snapshot.domain_id,
                 resource_type="VMSnapshot", resource_uuid=snapshot.uuid, resource_name=snapshot.display_name,
                 zone_uuid=zone.uuid if zone else None, size=size, details={"vm_uuid": vm.uuid})


def _check_supported(cloud, vm: VirtualMachine) -> None:
    hypervisor = vm.hypervisor or vm.template.hypervisor
    driver = cloud.plugins.hypervisor(hypervisor)
    if not driver.capabilities.get("vm_snapshots"):
        raise UnsupportedError(f"VM snapshots are not supported on hypervisor {driver.hypervisor_type}")


def _target(cloud, session: Session, vm: VirtualMachine):
    """The driver, the host holding the VM's definition (its host, or the last one when
    stopped) and the VM's spec."""
    host = vm.host if vm.host_id else session.get(Host, vm.last_host_id) if vm.last_host_id else None
    if host is None or host.removed is not None:
        raise InvalidParameterError(f"VM {vm.name} is on no host, so its snapshots cannot be reached")
    return cloud.plugins.hypervisor(host.hypervisor), host_ref(host), vm_spec(session, vm)


def _live(session: Session, vm: VirtualMachine) -> list[VmSnapshot]:
    return list(session.scalars(select(VmSnapshot).where(VmSnapshot.vm_id == vm.id, VmSnapshot.removed.is_(None))
                                .order_by(VmSnapshot.id)))


def _unique_name(vm: VirtualMachine, taken: set[str]) -> str:
    """CloudStack's ``<instance name>_VS_<yyyyMMddHHmmss>``, with a suffix when two come in one second."""
    base = f"{vm.instance_name}_VS_{utcnow():%Y%m%d%H%M%S}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def _snapshot(session: Session, snapshot_uuid: str) -> VmSnapshot:
    snapshot = session.scalar(select(VmSnapshot).where(VmSnapshot.uuid == snapshot_uuid))
    if snapshot is None:
        raise InvalidParameterError(f"VM snapshot {snapshot_uuid} does not exist")
    return snapshot


def _clear_current(session: Session, snapshot: VmSnapshot) -> None:
    """No other snapshot of the VM is current (``snapshot`` is about to be)."""
    session.execute(update(VmSnapshot).where(VmSnapshot.vm_id == snapshot.vm_id, VmSnapshot.id != snapshot.id)
                    .values(current=False).execution_options(synchronize_session=False))


def _move(session: Session, snapshot: VmSnapshot, to: str, *, expect: tuple[str, ...] | None = None,
          **changes) -> None:
    """One guarded UPDATE: from the state read (which must be in ``expect``) at the version read."""
    if expect is not None and snapshot.state not in expect:
        raise InvalidParameterError(f"VM snapshot {snapshot.display_name} is {snapshot.state}, not "
                                    f"{' or '.join(expect)}")
    result = session.execute(
        update(VmSnapshot).where(VmSnapshot.id == snapshot.id, VmSnapshot.state == snapshot.state,
                                 VmSnapshot.version == snapshot.version)
        .values(state=to, version=VmSnapshot.version + 1, **changes).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise ConcurrentOperationError(f"VM snapshot {snapshot.uuid} was changed by another operation; try again")
    session.refresh(snapshot)
