"""Data volumes: create (from a disk offering or a snapshot), attach, detach, resize,
migrate and delete, with CloudStack's volume states and the pools' STORAGE_ALLOCATED capacity.

Every state change is one transaction: ``move`` (one UPDATE guarded by the volume's state
and ``version``, along CloudStack's Volume.State machine) plus the capacity it takes or
gives back. Driver calls happen between transactions, and each failure path returns the
volume to a stable state (Allocated, Ready, or gone) before the error goes up. A volume
left in a transitional state by a process that died is settled by ``settle``.

Where a volume lives: a volume from a disk offering is Allocated (no pool, no file) until
a VM with storage needs it. Attached to a VM whose root volume is on a pool, it is created
at once on a pool that VM's cluster reaches; attached to a VM that never started, it is
created when the VM starts (``create_attached``, called by ``vm.start``). A volume made
from a snapshot is created at once. A pool takes a new volume only while Up (not Disabled
nor in maintenance), carrying the offering's storage tags, with room under
``pool.storage.allocated.capacity.disablethreshold`` (capacity times overprovisioning).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..db import after_commit
from ..errors import (
    ConcurrentOperationError,
    InsufficientCapacityError,
    InvalidParameterError,
    PermissionDenied,
    ResourceInUseError,
    StratoError,
    UnsupportedError,
)
from ..events import record
from ..model import (
    Account,
    AsyncJob,
    CapacityType,
    DiskOffering,
    Host,
    JobStatus,
    Snapshot,
    SnapshotPolicy,
    StoragePool,
    VirtualMachine,
    Volume,
    VolumeState,
    Zone,
    utcnow,
)
from . import capacity, identity, limits
from .refs import host_ref, pool_ref, vm_spec, volume_spec

log = logging.getLogger(__name__)
GiB = 1024**3


class VS:
    """CloudStack's Volume.State values."""

    ALLOCATED = VolumeState.ALLOCATED
    CREATING = VolumeState.CREATING
    READY = VolumeState.READY
    RESIZING = VolumeState.RESIZING
    MIGRATING = VolumeState.MIGRATING
    SNAPSHOTTING = "Snapshotting"
    REVERTING = "RevertSnapshotting"
    #: CloudStack's state while a volume is plugged into a VM; Strato uses it while unplugging too
    ATTACHING = "Attaching"
    DESTROY = VolumeState.DESTROY
    EXPUNGING = VolumeState.EXPUNGING
    EXPUNGED = VolumeState.EXPUNGED


class Ev:
    CREATE = "CreateRequested"
    SUCCEEDED = "OperationSucceeded"
    FAILED = "OperationFailed"
    RESIZE = "ResizeRequested"
    MIGRATE = "MigrationRequested"
    SNAPSHOT = "SnapshotRequested"
    REVERT = "RevertSnapshotRequested"
    ATTACH = "AttachRequested"
    DESTROY = "DestroyRequested"
    EXPUNGE = "ExpungingRequested"


#: (from, event) -> to: the part of CloudStack's Volume.State machine Strato uses
TRANSITIONS = {
    (VS.ALLOCATED, Ev.CREATE): VS.CREATING,
    (VS.ALLOCATED, Ev.SUCCEEDED): VS.ALLOCATED,
    (VS.ALLOCATED, Ev.DESTROY): VS.DESTROY,
    (VS.CREATING, Ev.SUCCEEDED): VS.READY,
    (VS.CREATING, Ev.FAILED): VS.ALLOCATED,
    (VS.READY, Ev.SUCCEEDED): VS.READY,
    (VS.READY, Ev.RESIZE): VS.RESIZING,
    (VS.READY, Ev.MIGRATE): VS.MIGRATING,
    (VS.READY, Ev.SNAPSHOT): VS.SNAPSHOTTING,
    (VS.READY, Ev.REVERT): VS.REVERTING,
    (VS.READY, Ev.ATTACH): VS.ATTACHING,
    (VS.READY, Ev.DESTROY): VS.DESTROY,
    **{(busy, outcome): VS.READY for busy in (VS.RESIZING, VS.MIGRATING, VS.SNAPSHOTTING, VS.REVERTING,
                                               VS.ATTACHING) for outcome in (Ev.SUCCEEDED, Ev.FAILED)},
    (VS.DESTROY, Ev.EXPUNGE): VS.EXPUNGING,
    (VS.EXPUNGING, Ev.SUCCEEDED): VS.EXPUNGED,
    (VS.EXPUNGING, Ev.FAILED): VS.DESTROY,
}

#: states a job moves a volume through; ``settle`` returns them to stable ones after a crash
TRANSITIONAL = frozenset({VS.CREATING, VS.RESIZING, VS.MIGRATING, VS.SNAPSHOTTING, VS.REVERTING, VS.ATTACHING,
                          VS.EXPUNGING})
#: a volume is attached to or detached from a VM in one of these states (as CloudStack)
VM_STATES_FOR_ATTACH = ("Running", "Stopped")
#: data volumes per VM when the hypervisor driver declares no ``max_data_volumes``
#: (CloudStack's default max_data_volumes_limit)
MAX_DATA_VOLUMES = 6
#: device 3 is the CD-ROM's on the hypervisors CloudStack supports; it never picks it
CDROM_DEVICE = 3


# -- the state machine ----------------------------------------------------------


def move(session: Session, volume: Volume, event: str, **changes) -> str:
    """Move ``volume`` by ``event`` in one UPDATE guarded by its state and version, applying
    ``changes`` with it; refreshes ``volume``. 431 for a move the machine does not allow,
    ConcurrentOperationError when another operation changed the volume first."""
    new = TRANSITIONS.get((volume.state, event))
    if new is None:
        raise InvalidParameterError(f"Volume {volume.name} is {volume.state}; it cannot take {event} now")
    done = session.execute(
        update(Volume).where(Volume.id == volume.id, Volume.state == volume.state, Volume.version == volume.version)
        .values(state=new, version=Volume.version + 1, **changes).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise ConcurrentOperationError(f"Volume {volume.uuid} was changed by another operation; try again")
    session.refresh(volume)
    return new


def _gone(session: Session, volume: Volume) -> None:
    """An Allocated or Destroy volume with no file on any pool: Expunged and removed, no
    longer counted against its owner's limits."""
    if volume.state == VS.ALLOCATED:
        move(session, volume, Ev.DESTROY)
    move(session, volume, Ev.EXPUNGE)
    move(session, volume, Ev.SUCCEEDED, removed=utcnow(), vm_id=None, device_id=None, pool_id=None)
    _uncount(session, volume)


def _uncount(session: Session, volume: Volume) -> None:
    limits.release_many(session, volume.account_id, {limits.ResourceType.VOLUME: 1,
                                                     limits.ResourceType.PRIMARY_STORAGE: volume.size})


# -- placement --------------------------------------------------------------------


def reserve_pool(cloud, session: Session, *, zone_id: int, size: int, tags: list[str],
                 cluster_id: int | None = None, prefer: int | None = None,
                 exclude: int | None = None) -> StoragePool:
    """The first pool (``prefer`` first) of the zone that is Up, reachable from cluster
    ``cluster_id`` (any cluster when None), carries ``tags`` and has room for ``size``
    bytes, with that space reserved; 533 saying why when there is none."""
    threshold = cloud.config.get(session, "pool.storage.allocated.capacity.disablethreshold")
    query = select(StoragePool).where(StoragePool.zone_id == zone_id, StoragePool.removed.is_(None),
                                      StoragePool.status == "Up")
    if cluster_id is not None:
        query = query.where((StoragePool.scope != "CLUSTER") | (StoragePool.cluster_id == cluster_id))
    pools = sorted(session.scalars(query.order_by(StoragePool.id)), key=lambda p: p.id != prefer)
    reasons = []
    for pool in pools:
        if pool.id == exclude:
            continue
        if not set(tags) <= set(pool.tag_list):
            reasons.append(f"no pool that is Up has the storage tags {','.join(tags)}")
            continue
        limit = pool.capacity_bytes * pool.overprovisioning * threshold
        if capacity.reserve(session, CapacityType.STORAGE_ALLOCATED, size, limit, pool_id=pool.id):
            return pool
        reasons.append(f"pool {pool.name} has not enough free space")
    if not [p for p in pools if p.id != exclude]:
        reasons.append("no storage pool " + ("the VM's cluster reaches " if cluster_id is not None else "")
                       + "is Up in the zone (pools that are Disabled or in maintenance take no new volumes)")
    raise InsufficientCapacityError(f"No primary storage can take a volume of {size} bytes: "
                                    + "; ".join(dict.fromkeys(reasons)))


def vm_cluster_id(session: Session, vm: VirtualMachine) -> int | None:
    """The cluster whose pools the VM reaches: its host's (or last host's), else that of
    the cluster pool its root volume is on; None for a VM that never started."""
    host_id = vm.host_id or vm.last_host_id
    if host_id:
        return session.get(Host, host_id).cluster_id
    root = root_volume(vm)
    if root is not None and root.pool is not None and root.pool.scope == "CLUSTER":
        return root.pool.cluster_id
    return None


def reachable(pool: StoragePool, cluster_id: int | None) -> bool:
    return pool.scope != "CLUSTER" or cluster_id is None or pool.cluster_id == cluster_id


def root_volume(vm: VirtualMachine) -> Volume | None:
    return next((v for v in vm.volumes if v.volume_type == "ROOT" and v.removed is None), None)


def storage_tags(session: Session, volume: Volume) -> list[str]:
    offering = session.get(DiskOffering, volume.disk_offering_id) if volume.disk_offering_id else None
    return [t.strip() for t in ((offering.storage_tags if offering else None) or "").split(",") if t.strip()]


def _spec(session: Session, volume: Volume):
    session.flush()
    session.refresh(volume, ["pool"])
    return volume_spec(volume)


def _storage(cloud, pool: StoragePool):
    return cloud.plugins.primary_storage(pool.provider)


def _unsupported(what: str, who) -> UnsupportedError:
    return UnsupportedError(f"{what} is not supported by {getattr(who, 'name', who)}")


def _event(cloud, session: Session, event_type: str, description: str, volume: Volume, caller=None,
           level: str = "INFO") -> None:
    record(session, event_type, description, caller=caller, resource=volume, level=level, plugins=cloud.plugins)


# -- create ---------------------------------------------------------------------


def allocate(session: Session, *, owner: Account, zone: Zone, size: int, name: str | None = None,
             offering: DiskOffering | None = None) -> Volume:
    """A new Allocated data volume (no pool, no file yet), in the command's transaction;
    counted against the owner's volume and primary storage limits (532 past one)."""
    limits.reserve_many(session, owner, {limits.ResourceType.VOLUME: 1, limits.ResourceType.PRIMARY_STORAGE: size})
    volume = Volume(name=name or "pending", account_id=owner.id, domain_id=owner.domain_id, zone_id=zone.id,
                    volume_type="DATADISK", device_id=None, size=size, state=VS.ALLOCATED, format="QCOW2",
                    disk_offering_id=offering.id if offering else None)
    session.add(volume)
    session.flush()
    if not name:
        volume.name = f"DATA-{volume.id}"
    return volume


def create_from_snapshot(cloud, volume_uuid: str, snapshot_uuid: str, caller=None) -> None:
    """Make an Allocated volume's file from a snapshot's backup, on the snapshot volume's pool
    when it can take it, else the first pool of the zone that can. On failure the volume is
    gone (nothing of it stays on any pool) and the error goes up."""
    try:
        with cloud.db.transaction() as session:
            volume = _volume(session, volume_uuid)
            snapshot = session.scalar(select(Snapshot).where(Snapshot.uuid == snapshot_uuid))
            if snapshot is None or snapshot.removed is not None or snapshot.backup_path is None:
                raise InvalidParameterError(f"snapshot {snapshot_uuid} has no backup to make a volume from")
            pool = reserve_pool(cloud, session, zone_id=volume.zone_id, size=volume.size,
                                tags=storage_tags(session, volume), prefer=snapshot.volume.pool_id)
            move(session, volume, Ev.CREATE, pool_id=pool.id)
            spec, ref, driver = _spec(session, volume), pool_ref(pool), _storage(cloud, pool)
            store, backup = pool_ref(snapshot.store), snapshot.backup_path
    except StratoError:
        with cloud.db.transaction() as session:
            volume = _volume(session, volume_uuid)
            if volume.state == VS.ALLOCATED:
                _gone(session, volume)
        raise
    try:
        try:
            path = driver.restore_snapshot(ref, spec, store, backup)
        except NotImplementedError:
            raise _unsupported("creating a volume from a snapshot", driver) from None
    except Exception:
        with cloud.db.transaction() as session:
            volume = _volume(session, volume_uuid)
            capacity.release(session, CapacityType.STORAGE_ALLOCATED, volume.size, pool_id=volume.pool_id)
            move(session, volume, Ev.FAILED, pool_id=None, path=None)
            _gone(session, volume)
        raise
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        move(session, volume, Ev.SUCCEEDED, path=path)
        _event(cloud, session, "VOLUME.CREATE", f"Created volume {volume.name} from snapshot {snapshot_uuid}",
               volume, caller)


def _create_file(cloud, volume_uuid: str, cluster_id: int | None) -> None:
    """Create an Allocated volume's (empty) file on a pool reachable from ``cluster_id``:
    Ready afterwards. On failure it is Allocated again, its reservation released."""
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        if volume.state != VS.ALLOCATED:
            return
        pool = reserve_pool(cloud, session, zone_id=volume.zone_id, size=volume.size,
                            tags=storage_tags(session, volume), cluster_id=cluster_id)
        move(session, volume, Ev.CREATE, pool_id=pool.id)
        spec, ref, driver = _spec(session, volume), pool_ref(pool), _storage(cloud, pool)
    try:
        path = driver.create_volume(ref, spec, None)
    except Exception:
        with cloud.db.transaction() as session:
            volume = _volume(session, volume_uuid)
            capacity.release(session, CapacityType.STORAGE_ALLOCATED, volume.size, pool_id=volume.pool_id)
            move(session, volume, Ev.FAILED, pool_id=None, path=None)
        raise
    with cloud.db.transaction() as session:
        move(session, _volume(session, volume_uuid), Ev.SUCCEEDED, path=path)


def create_attached(cloud, vm_uuid: str) -> None:
    """For a starting VM (its host chosen): create its Allocated data volumes on pools its
    host's cluster reaches, and check its Ready ones are reachable (431 otherwise). A volume
    that fails is Allocated again and the error goes up; those created before stay Ready."""
    with cloud.db.transaction() as session:
        vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
        cluster_id = vm_cluster_id(session, vm)
        pending = []
        for volume in vm.volumes:
            if volume.removed is not None or volume.volume_type != "DATADISK":
                continue
            if volume.state == VS.ALLOCATED:
                pending.append(volume.uuid)
            elif volume.pool is not None and not reachable(volume.pool, cluster_id):
                raise InvalidParameterError(
                    f"VM {vm.name}'s data volume {volume.name} is on pool {volume.pool.name}, which its host's "
                    "cluster does not reach; migrate the volume (migrateVolume) or detach it")
    for volume_uuid in pending:
        _create_file(cloud, volume_uuid, cluster_id)


# -- attach and detach ------------------------------------------------------------


def check_attach(cloud, session: Session, volume: Volume, vm: VirtualMachine, device_id: int | None) -> int:
    """Everything attachVolume refuses, checked; returns the device id to use.

    531 for a VM of another account; 431 for a root volume, a volume attached already or
    busy, a VM that is neither Running nor Stopped, another zone, a device id that is 0,
    taken or too high, too many volumes, or a pool the VM's cluster does not reach."""
    if volume.volume_type != "DATADISK":
        raise InvalidParameterError(f"Volume {volume.name} is a {volume.volume_type} volume; only data volumes "
                                    "can be attached")
    if vm.account_id != volume.account_id:
        raise PermissionDenied(f"Volume {volume.name} and VM {vm.name} belong to different accounts")
    if volume.vm_id is not None:
        raise InvalidParameterError(f"Volume {volume.name} is already attached to a VM; detach it first")
    if volume.state not in (VS.ALLOCATED, VS.READY):
        raise InvalidParameterError(f"Volume {volume.name} is {volume.state}; it must be Allocated or Ready "
                                    "to be attached")
    if vm.state not in VM_STATES_FOR_ATTACH:
        raise InvalidParameterError(f"VM {vm.name} is {vm.state}; volumes are attached to Running or Stopped VMs")
    if vm.zone_id != volume.zone_id:
        raise InvalidParameterError(f"Volume {volume.name} and VM {vm.name} are in different zones")
    if volume.pool is not None and not reachable(volume.pool, vm_cluster_id(session, vm)):
        raise InvalidParameterError(f"Volume {volume.name} is on pool {volume.pool.name}, which VM {vm.name}'s "
                                    "cluster does not reach; migrate it first (migrateVolume)")
    limit = _max_data_volumes(cloud, vm)
    attached = [v for v in vm.volumes if v.removed is None and v.id != volume.id]
    if sum(v.volume_type == "DATADISK" for v in attached) >= limit:
        raise InvalidParameterError(f"VM {vm.name} has the maximum of {limit} data volumes")
    used = {v.device_id for v in attached}
    if device_id is not None:
        if device_id <= 0 or device_id > limit + 1:
            raise InvalidParameterError(f"deviceid must be between 1 and {limit + 1} (0 is the root volume's)")
        if device_id in used:
            raise InvalidParameterError(f"device {device_id} is used by another volume of VM {vm.name}")
        return device_id
    return next(d for d in range(1, limit + 3) if d not in used and d != CDROM_DEVICE)


def _max_data_volumes(cloud, vm: VirtualMachine) -> int:
    try:
        driver = cloud.plugins.hypervisor(vm.hypervisor) if vm.hypervisor else None
    except UnsupportedError:
        driver = None
    return int((driver.capabilities if driver else {}).get("max_data_volumes", MAX_DATA_VOLUMES))


def check_hotplug(cloud, vm: VirtualMachine) -> None:
    """432 when ``vm`` runs on a hypervisor whose driver cannot plug volumes in while it runs."""
    if vm.state != "Running":
        return
    driver = cloud.plugins.hypervisor(vm.hypervisor)
    if not driver.capabilities.get("volume_hotplug"):
        raise UnsupportedError(f"the {driver.hypervisor_type} driver cannot attach or detach volumes of a "
                               f"running VM; stop VM {vm.name} first")


def attach(cloud, volume_uuid: str, vm_uuid: str, device_id: int | None = None, caller=None) -> None:
    """Attach a data volume to a VM of its account: created first (on a pool the VM's cluster
    reaches) when it is Allocated and the VM has storage, plugged in through the hypervisor
    driver when the VM runs. On failure the volume is detached again (a volume created on
    the way stays Ready) and the error goes up."""
    with cloud.db.transaction() as session:
        vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid).with_for_update())
        volume = _volume(session, volume_uuid)
        device = check_attach(cloud, session, volume, vm, device_id)
        check_hotplug(cloud, vm)
        root = root_volume(vm)
        needs_file = volume.state == VS.ALLOCATED and root is not None and root.pool_id is not None
        cluster_id = vm_cluster_id(session, vm)
        running = vm.state == "Running"
        # recorded now: a concurrent attach to this VM sees the device taken (the VM row is locked)
        move(session, volume, Ev.ATTACH if running and not needs_file else Ev.SUCCEEDED,
             vm_id=vm.id, device_id=device)
        if not needs_file and not running:
            _event(cloud, session, "VOLUME.ATTACH", f"Attached volume {volume.name} to VM {vm.name}", volume, caller)
            return
    if needs_file:
        try:
            _create_file(cloud, volume_uuid, cluster_id)
        except Exception:
            with cloud.db.transaction() as session:
                move(session, _volume(session, volume_uuid), Ev.SUCCEEDED, vm_id=None, device_id=None)
            raise
        if not running:
            with cloud.db.transaction() as session:
                volume = _volume(session, volume_uuid)
                _event(cloud, session, "VOLUME.ATTACH", f"Attached volume {volume.name} to VM {vm.name}", volume,
                       caller)
            return
        with cloud.db.transaction() as session:
            move(session, _volume(session, volume_uuid), Ev.ATTACH)
    _plug(cloud, volume_uuid, plug=True, caller=caller)


def _plug(cloud, volume_uuid: str, *, plug: bool, caller=None) -> None:
    """The hypervisor half of attach/detach for an Attaching volume of a running VM; the
    volume ends Ready, attached after a plug and detached after an unplug, or as it was
    before when the driver fails."""
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        vm = volume.vm
        host = vm.host
        driver = cloud.plugins.hypervisor(host.hypervisor)
        spec, vol, ref, vm_name = vm_spec(session, vm), _spec(session, volume), host_ref(host), vm.name
    try:
        try:
            (driver.attach_volume if plug else driver.detach_volume)(ref, spec, vol)
        except NotImplementedError:
            raise _unsupported("plugging volumes into a running VM", driver) from None
    except Exception:
        with cloud.db.transaction() as session:
            volume = _volume(session, volume_uuid)
            move(session, volume, Ev.FAILED, **({"vm_id": None, "device_id": None} if plug else {}))
        raise
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        move(session, volume, Ev.SUCCEEDED, **({} if plug else {"vm_id": None, "device_id": None}))
        kind, word = ("VOLUME.ATTACH", "Attached") if plug else ("VOLUME.DETACH", "Detached")
        _event(cloud, session, kind, f"{word} volume {volume.name} {'to' if plug else 'from'} VM {vm_name}",
               volume, caller)


def check_detach(cloud, volume: Volume) -> None:
    """431 unless ``volume`` is a data volume attached to a Running or Stopped VM and not busy."""
    if volume.vm_id is None:
        raise InvalidParameterError(f"Volume {volume.name} is not attached to any VM")
    if volume.volume_type != "DATADISK":
        raise InvalidParameterError(f"Volume {volume.name} is the VM's root volume; it cannot be detached")
    if volume.state not in (VS.ALLOCATED, VS.READY):
        raise InvalidParameterError(f"Volume {volume.name} is {volume.state}; try again when it is Ready")
    if volume.vm.state not in VM_STATES_FOR_ATTACH:
        raise InvalidParameterError(f"VM {volume.vm.name} is {volume.vm.state}; volumes are detached from Running "
                                    "or Stopped VMs")


def detach(cloud, volume_uuid: str, caller=None) -> None:
    """Detach a data volume from its VM (unplugged through the hypervisor driver when the
    VM runs). On failure it stays attached and the error goes up."""
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        check_detach(cloud, volume)
        vm = volume.vm
        check_hotplug(cloud, vm)
        if vm.state == "Running" and volume.state == VS.READY:
            move(session, volume, Ev.ATTACH)
        else:
            move(session, volume, Ev.SUCCEEDED, vm_id=None, device_id=None)
            _event(cloud, session, "VOLUME.DETACH", f"Detached volume {volume.name} from VM {vm.name}", volume,
                   caller)
            return
    _plug(cloud, volume_uuid, plug=False, caller=caller)


# -- resize, migrate --------------------------------------------------------------


def check_resize(volume: Volume, new_size: int) -> None:
    """431 for a shrink, for a volume not Allocated or Ready; 432 for a volume of a running VM."""
    if new_size < volume.size:
        raise InvalidParameterError(
            f"Volume {volume.name} is {volume.size} bytes; shrinking it to {new_size} bytes is not allowed "
            "(data would be lost)")
    if volume.state not in (VS.ALLOCATED, VS.READY):
        raise InvalidParameterError(f"Volume {volume.name} is {volume.state}; it must be Allocated or Ready "
                                    "to be resized")
    if volume.vm is not None and volume.vm.state not in ("Stopped", "Destroyed") and volume.state == VS.READY:
        raise UnsupportedError(f"Volume {volume.name} is attached to VM {volume.vm.name}, which is "
                               f"{volume.vm.state}; stop the VM (or detach the volume) to resize it")


def resize(cloud, volume_uuid: str, new_size: int, offering_id: int | None = None, caller=None) -> None:
    """Grow a volume to ``new_size`` bytes (and record its new disk offering): the growth is
    reserved first against the owner's primary storage limit (532) and the pool's capacity
    (533), then the driver grows the file. On failure the size and both are as before."""
    changes = {"disk_offering_id": offering_id} if offering_id is not None else {}
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        check_resize(volume, new_size)
        growth = new_size - volume.size
        limits.reserve(session, session.get(Account, volume.account_id), limits.ResourceType.PRIMARY_STORAGE,
                       growth)  # 532 past the owner's limit
        if volume.state == VS.ALLOCATED or growth == 0:
            move(session, volume, Ev.SUCCEEDED, size=new_size, **changes)
            _event(cloud, session, "VOLUME.RESIZE", f"Resized volume {volume.name} to {new_size} bytes", volume,
                   caller)
            return
        pool = volume.pool
        threshold = cloud.config.get(session, "pool.storage.allocated.capacity.disablethreshold")
        if not capacity.reserve(session, CapacityType.STORAGE_ALLOCATED, growth,
                                pool.capacity_bytes * pool.overprovisioning * threshold, pool_id=pool.id):
            raise InsufficientCapacityError(f"Pool {pool.name} has no room to grow volume {volume.name} by "
                                            f"{growth} bytes")
        move(session, volume, Ev.RESIZE)
        spec, ref, driver = _spec(session, volume), pool_ref(pool), _storage(cloud, pool)
    try:
        try:
            driver.resize_volume(ref, spec, new_size)
        except NotImplementedError:
            raise _unsupported("resizing volumes", driver) from None
    except Exception:
        with cloud.db.transaction() as session:
            volume = _volume(session, volume_uuid)
            capacity.release(session, CapacityType.STORAGE_ALLOCATED, growth, pool_id=volume.pool_id)
            limits.release(session, volume.account_id, limits.ResourceType.PRIMARY_STORAGE, growth)
            move(session, volume, Ev.FAILED)
        raise
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        move(session, volume, Ev.SUCCEEDED, size=new_size, **changes)
        _event(cloud, session, "VOLUME.RESIZE", f"Resized volume {volume.name} to {new_size} bytes", volume, caller)


def check_migrate(session: Session, volume: Volume, pool: StoragePool) -> None:
    """431 unless ``volume`` is Ready, on another pool of the same zone and storage plugin, not
    attached to a VM that runs (432: no live storage migration), and ``pool`` is Up,
    reachable from the VM's cluster and carries the volume's storage tags."""
    if volume.state != VS.READY or volume.pool_id is None:
        raise InvalidParameterError(f"Volume {volume.name} is {volume.state}; only a Ready volume can be migrated")
    if volume.pool_id == pool.id:
        raise InvalidParameterError(f"Volume {volume.name} is already on pool {pool.name}")
    if pool.zone_id != volume.zone_id:
        raise InvalidParameterError(f"Pool {pool.name} is not in volume {volume.name}'s zone")
    if pool.status != "Up":
        raise InvalidParameterError(f"Pool {pool.name} is {pool.status}; it takes no new volumes")
    if pool.provider != volume.pool.provider:
        raise UnsupportedError(f"Volume {volume.name} is on {volume.pool.provider} storage; copying it to "
                               f"{pool.provider} storage is not supported")
    tags = storage_tags(session, volume)
    if not set(tags) <= set(pool.tag_list):
        raise InvalidParameterError(f"Pool {pool.name} lacks the storage tags {','.join(tags)} of volume "
                                    f"{volume.name}'s disk offering")
    vm = volume.vm
    if vm is not None:
        if vm.state not in ("Stopped", "Destroyed"):
            raise UnsupportedError(f"Volume {volume.name} is attached to VM {vm.name}, which is {vm.state}; live "
                                   "storage migration is not supported: stop the VM first")
        if volume.volume_type == "DATADISK" and not reachable(pool, vm_cluster_id(session, vm)):
            raise InvalidParameterError(f"Pool {pool.name} is not reachable from VM {vm.name}'s cluster")


def migrate(cloud, volume_uuid: str, pool_uuid: str, caller=None) -> None:
    """Copy a volume to another pool (space reserved there first, 533 without room) and
    switch it over; the old copy is then removed and its space given back. On failure the
    volume is Ready on its old pool and nothing of the copy stays."""
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        target = session.scalar(select(StoragePool).where(StoragePool.uuid == pool_uuid,
                                                          StoragePool.removed.is_(None)))
        if target is None:
            raise InvalidParameterError(f"Storage pool {pool_uuid} does not exist")
        check_migrate(session, volume, target)
        threshold = cloud.config.get(session, "pool.storage.allocated.capacity.disablethreshold")
        if not capacity.reserve(session, CapacityType.STORAGE_ALLOCATED, volume.size,
                                target.capacity_bytes * target.overprovisioning * threshold, pool_id=target.id):
            raise InsufficientCapacityError(f"Pool {target.name} has no room for volume {volume.name}")
        move(session, volume, Ev.MIGRATE)
        source, spec, driver = volume.pool, _spec(session, volume), _storage(cloud, volume.pool)
        source_ref, target_ref, source_id, target_id = pool_ref(source), pool_ref(target), source.id, target.id
    try:
        try:
            path = driver.copy_volume(source_ref, spec, target_ref)
        except NotImplementedError:
            raise _unsupported("copying volumes between pools", driver) from None
    except Exception:
        with cloud.db.transaction() as session:
            capacity.release(session, CapacityType.STORAGE_ALLOCATED, spec.size_bytes, pool_id=target_id)
            move(session, _volume(session, volume_uuid), Ev.FAILED)
        raise
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        move(session, volume, Ev.SUCCEEDED, pool_id=target_id, path=path)
        capacity.release(session, CapacityType.STORAGE_ALLOCATED, volume.size, pool_id=source_id)
        _event(cloud, session, "VOLUME.MIGRATE", f"Migrated volume {volume.name} from pool {source_ref.name} to "
               f"{target_ref.name}", volume, caller)
    try:
        driver.delete_volume(source_ref, spec)
    except Exception as exc:  # the volume lives on the new pool; the old copy is reported for removal by hand
        log.exception("removing the old copy of volume %s from pool %s failed", volume_uuid, source_ref.name)
        with cloud.db.transaction() as session:
            _event(cloud, session, "VOLUME.MIGRATE", f"Volume {spec.name} moved to pool {target_ref.name}, but its "
                   f"old copy {spec.path} on pool {source_ref.name} could not be removed: {exc}",
                   _volume(session, volume_uuid), caller, level="WARN")


# -- delete -----------------------------------------------------------------------


def check_delete(volume: Volume) -> None:
    """431 for a root volume or a busy one; 536 for a volume attached to a VM."""
    if volume.volume_type != "DATADISK":
        raise InvalidParameterError(f"Volume {volume.name} is a root volume; it goes with its VM (destroy the VM)")
    if volume.vm_id is not None:
        raise ResourceInUseError(f"Volume {volume.name} is attached to VM {volume.vm.name}; detach it first")
    if volume.state not in (VS.ALLOCATED, VS.READY, VS.DESTROY):
        raise InvalidParameterError(f"Volume {volume.name} is {volume.state}; try again when it is Ready")


def delete(cloud, session: Session, volume: Volume, caller=None) -> None:
    """deleteVolume, in the command's transaction: the volume is destroyed and its snapshot
    policies deleted (its snapshots stay, as CloudStack's); a volume without a file is gone
    at once, one with a file is Expunging and its file is removed once this commits (then
    Expunged, its pool space given back). If that removal fails the volume waits in Destroy
    and the periodic pass retries it."""
    check_delete(volume)
    for policy in session.scalars(select(SnapshotPolicy).where(SnapshotPolicy.volume_id == volume.id)).all():
        session.delete(policy)
    _event(cloud, session, "VOLUME.DELETE", f"Deleted volume {volume.name}", volume, caller)
    if volume.pool_id is None:
        _gone(session, volume)
        return
    if volume.state != VS.DESTROY:
        move(session, volume, Ev.DESTROY)
    move(session, volume, Ev.EXPUNGE)
    volume_uuid = volume.uuid

    def remove_file():
        try:
            expunge(cloud, volume_uuid)
        except Exception:  # left in Destroy: the periodic pass (``settle``) retries it
            log.exception("removing the file of deleted volume %s failed; it will be retried", volume_uuid)

    after_commit(session, remove_file)


def expunge(cloud, volume_uuid: str) -> None:
    """Remove an Expunging (or Destroy) volume's file and give its space back: Expunged and
    removed. On failure it is Destroy again and the error goes up."""
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        if volume.state == VS.EXPUNGED:
            return
        if volume.state == VS.DESTROY:
            move(session, volume, Ev.EXPUNGE)
        pool, spec = volume.pool, _spec(session, volume)
    try:
        if pool is not None:
            _storage(cloud, pool).delete_volume(pool_ref(pool), spec)
    except Exception:
        with cloud.db.transaction() as session:
            move(session, _volume(session, volume_uuid), Ev.FAILED)
        raise
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        if volume.state == VS.EXPUNGED:
            return  # a concurrent retry (the periodic pass) finished it
        if volume.pool_id is not None:
            capacity.release(session, CapacityType.STORAGE_ALLOCATED, volume.size, pool_id=volume.pool_id)
        move(session, volume, Ev.SUCCEEDED, removed=utcnow(), pool_id=None)
        _uncount(session, volume)


def delete_volumes_of(cloud, account_id: int) -> None:
    """deleteAccount, once its VMs are expunged (their data disks survive them, detached): every
    data volume of the account deleted and its file removed now (``delete`` then ``expunge``;
    a file that cannot be removed stops the deletion with its error)."""
    with cloud.db.transaction() as session:
        uuids = list(session.scalars(select(Volume.uuid).where(
            Volume.account_id == account_id, Volume.removed.is_(None), Volume.volume_type == "DATADISK")
            .order_by(Volume.id)))
    for volume_uuid in uuids:
        with cloud.db.transaction() as session:
            volume = _volume(session, volume_uuid)
            if volume.state not in (VS.DESTROY, VS.EXPUNGING):  # else deleted already, its file not yet removed
                delete(cloud, session, volume)
        expunge(cloud, volume_uuid)


identity.register_cleaner("volumes", delete_volumes_of, before="templates")


# -- after a crash ----------------------------------------------------------------


def busy_uuids(session: Session) -> set[str]:
    """Uuids (of volumes, VMs, snapshots) a pending job works on: its instance and the
    ``volume``/``vm`` it names."""
    busy: set[str] = set()
    for instance, params in session.execute(select(AsyncJob.instance_uuid, AsyncJob.params).where(
            AsyncJob.status == JobStatus.PENDING)):
        busy.add(instance)
        busy.update(str(params.get(key)) for key in ("volume", "vm", "snapshot") if params and params.get(key))
    return busy


def settle(cloud) -> dict[str, str]:
    """Return volumes no live job works on from transitional states to stable ones, and retry
    removing the files of deleted ones (root volumes: only the states their VM's recovery does
    not cover). Returns {volume uuid: new state}.

    Creating: the partial file is removed and the volume is Allocated again (gone, for one
    that was being made from a snapshot, which is never attached while Creating). Attaching,
    Resizing, Migrating, Snapshotting, RevertSnapshotting: Ready as recorded (a hypervisor
    plug or a resize that did finish shows after the VM's next restart; a copy left on a
    migration's destination pool is not removed). Expunging and Destroy: expunged again.
    """
    with cloud.db.transaction() as session:
        # volumes first, then jobs: a job row is committed before its volume moves
        stuck = [(v.uuid, v.state, v.version, v.vm.uuid if v.vm else None) for v in session.scalars(
            select(Volume).where(Volume.removed.is_(None), Volume.state.in_(sorted(TRANSITIONAL | {VS.DESTROY}))))
            # a root volume is created and removed with its VM, which VM recovery settles
            if v.volume_type == "DATADISK" or v.state not in (VS.CREATING, VS.EXPUNGING, VS.DESTROY)]
        busy = busy_uuids(session)
    settled = {}
    for volume_uuid, state, version, vm_uuid in stuck:
        if volume_uuid in busy or (vm_uuid and vm_uuid in busy):
            continue
        try:
            settled[volume_uuid] = _settle_one(cloud, volume_uuid, state, version)
        except ConcurrentOperationError:
            continue  # moved by someone meanwhile: not stuck
        except StratoError as exc:
            log.warning("could not settle volume %s (%s) yet: %s", volume_uuid, state, exc.message)
    return settled


def _settle_one(cloud, volume_uuid: str, state: str, version: int) -> str:
    if state in (VS.EXPUNGING, VS.DESTROY):
        expunge(cloud, volume_uuid)
        return VS.EXPUNGED
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        if (volume.state, volume.version) != (state, version):
            raise ConcurrentOperationError(f"volume {volume_uuid} moved")
        if state != VS.CREATING:
            move(session, volume, Ev.FAILED)
            return volume.state
        pool, spec = volume.pool, _spec(session, volume)
    if pool is not None:
        spec.path = None  # whatever the crashed creation made for this uuid
        _storage(cloud, pool).delete_volume(pool_ref(pool), spec)
    with cloud.db.transaction() as session:
        volume = _volume(session, volume_uuid)
        capacity.release(session, CapacityType.STORAGE_ALLOCATED, volume.size, pool_id=volume.pool_id)
        move(session, volume, Ev.FAILED, pool_id=None, path=None)
        if volume.vm_id is None:
            _gone(session, volume)
        return volume.state


def collect_template_copies(cloud) -> dict[str, list[str]]:
    """Remove the copies pools keep of deleted templates once no volume on the pool is made
    from them (a pool's copy backs its volumes' overlays); returns {pool uuid: [template uuids]}.
    A pool whose plugin keeps no copies, or does not list them, is left alone."""
    from ..model import Template
    from .refs import template_ref

    with cloud.db.transaction() as session:
        pools = [(p.uuid, p.provider, pool_ref(p)) for p in session.scalars(
            select(StoragePool).where(StoragePool.removed.is_(None), StoragePool.status == "Up"))]
    removed: dict[str, list[str]] = {}
    for pool_uuid, provider, ref in pools:
        driver = cloud.plugins.primary_storage(provider)
        try:
            copies = driver.template_copies(ref)
        except NotImplementedError:
            continue
        with cloud.db.transaction() as session:
            pool_id = session.scalar(select(StoragePool.id).where(StoragePool.uuid == pool_uuid))
            stale = []
            for template in session.scalars(select(Template).where(Template.uuid.in_(copies),
                                                                   Template.removed.is_not(None))):
                in_use = session.scalar(select(Volume.id).where(
                    Volume.pool_id == pool_id, Volume.template_id == template.id, Volume.removed.is_(None)).limit(1))
                if in_use is None:
                    stale.append(template_ref(template))
        for template in stale:
            driver.delete_template_copy(ref, template)
            removed.setdefault(pool_uuid, []).append(template.uuid)
    return removed


def _volume(session: Session, volume_uuid: str) -> Volume:
    volume = session.scalar(select(Volume).where(Volume.uuid == volume_uuid))
    if volume is None:
        raise InvalidParameterError(f"Volume {volume_uuid} does not exist")
    return volume


__all__ = ["VS", "move", "reserve_pool", "allocate", "create_from_snapshot", "create_attached", "check_attach",
           "check_hotplug", "attach", "check_detach", "detach", "check_resize", "resize", "check_migrate", "migrate",
           "check_delete", "delete", "delete_volumes_of", "expunge", "settle", "collect_template_copies",
           "busy_uuids", "vm_cluster_id", "reachable", "root_volume"]
