"""The physical side through its drivers: adding and removing hosts, primary
storage pools and image stores; host and pool maintenance; host status.

Contracts every function here keeps:

* An *add* reaches the resource through its driver first; if the driver fails,
  nothing is written and the driver's error goes up unchanged. The rows are
  then written in the caller's session; if that write fails, or the caller's
  transaction later rolls back, the driver is told to forget the resource
  (``disconnect_host`` / ``disconnect_pool``), so nothing is left half-known.
* A *remove* writes its rows in the caller's session and tells the driver only
  after that transaction commits (a disconnect cannot be undone).
* Maintenance is two steps: ``begin_*`` inside the command's transaction marks the
  resource ``PrepareForMaintenance``; the async job's ``run_*`` then does the
  work, each step its own transaction, and ends in ``Maintenance`` — or in
  ``ErrorInMaintenance`` with the reason raised as the job's error. Events are
  recorded for ``caller`` (the job's), so its account sees them.

Host maintenance live-migrates the VMs of the host to other hosts of its cluster
(as CloudStack does) when the hypervisor driver can live-migrate; a VM that is
between states, or finds no host with room, stops the maintenance with
``ErrorInMaintenance`` and says which VM and why. Pool maintenance does not stop
VMs for you (CloudStack does): while a running VM has a volume on the pool it
ends in ``ErrorInMaintenance`` naming the VMs.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlparse

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..db import after_commit, on_rollback
from ..drivers import PoolRef, PrimaryStorageDriver
from ..errors import (
    InsufficientCapacityError,
    InvalidParameterError,
    ResourceInUseError,
    ResourceUnavailableError,
    StratoError,
    UnsupportedError,
)
from ..events import record
from ..model import (
    Capacity,
    CapacityType,
    Cluster,
    Host,
    HostStatus,
    ImageStore,
    Pod,
    ResourceState,
    StoragePool,
    Template,
    TemplateStoreRef,
    VirtualMachine,
    Volume,
    VolumeState,
    Zone,
    utcnow,
)
from . import capacity, networking
from .refs import host_ref, pool_ref, vm_spec
from .vm import require_no_snapshot_task
from .vm_states import ON_HOST, Event, State, transition

log = logging.getLogger(__name__)


class PoolStatus:
    """CloudStack's StoragePoolStatus values Strato uses."""

    UP = "Up"
    DISABLED = "Disabled"
    PREPARE_FOR_MAINTENANCE = "PrepareForMaintenance"
    MAINTENANCE = "Maintenance"
    ERROR_IN_MAINTENANCE = "ErrorInMaintenance"
    REMOVED = "Removed"


#: CloudStack's StoragePoolType by URL scheme
POOL_TYPES = {
    "nfs": "NetworkFilesystem", "file": "Filesystem", "sharedmountpoint": "SharedMountPoint", "rbd": "RBD",
    "iscsi": "IscsiLUN", "clvm": "CLVM", "presetup": "PreSetup", "gluster": "Gluster", "sim": "Simulator",
}

#: the provider name CloudStack clients send for "the default primary storage plugin"
DEFAULT_PRIMARY = "defaultprimary"


def _undo(what: str, fn, *args) -> None:
    """Compensate on a failure path: a second error must not hide the first, so it is logged."""
    try:
        fn(*args)
    except Exception:
        log.exception("%s (undoing a failed change) failed", what)


def _after_commit_logged(session: Session, what: str, fn, *args) -> None:
    """Tell a driver something once the change is durable. The change stands whatever
    the driver says, so its failure is logged, not raised into a committed command."""

    def call():
        try:
            fn(*args)
        except Exception:
            log.exception("%s failed after the change was committed", what)

    after_commit(session, call)


# -- hosts ----------------------------------------------------------------------


def add_host(cloud, session: Session, cluster: Cluster, url: str, *, username: str | None = None,
             password: str | None = None, host_tags: list[str] | None = None,
             allocation_state: str = ResourceState.ENABLED) -> Host:
    """Discover the host at ``url`` through the cluster's hypervisor driver and add it
    with its capacity rows.

    Raises 431 for a URL already added, the driver's 431/534 when it cannot take or
    reach the URL (nothing is written then), 432 when the cluster's hypervisor plugin
    is not enabled.
    """
    driver = cloud.plugins.hypervisor(cluster.hypervisor)
    if session.scalar(select(Host.id).where(Host.url == url, Host.removed.is_(None))):
        raise InvalidParameterError(f"A host with URL {url} has already been added")
    info = driver.connect_host(url, username, password)
    host = Host(name=info.name, host_type="Routing", zone_id=cluster.zone_id, pod_id=cluster.pod_id,
                cluster_id=cluster.id, hypervisor=driver.hypervisor_type, hypervisor_version=info.hypervisor_version,
                url=url, status=HostStatus.UP, resource_state=allocation_state, cpu_sockets=info.cpu_sockets,
                cpu_cores=info.cpu_cores, cpu_speed=info.cpu_speed_mhz, memory=info.memory_bytes,
                host_tags=",".join(host_tags) if host_tags else None,
                capabilities=",".join(info.capabilities) or None, last_pinged=int(time.time()),
                details=dict(info.details))
    try:
        session.add(host)
        session.flush()
        capacity.create_host_capacity(session, host)
        session.flush()
    except Exception:
        _undo(f"disconnecting host {url}", driver.disconnect_host, host_ref(host))
        raise
    ref = host_ref(host)
    on_rollback(session, lambda: driver.disconnect_host(ref))
    return host


def vms_on_host(session: Session, host: Host) -> list[VirtualMachine]:
    """The VMs holding capacity on ``host`` (Starting, Running, Stopping, Migrating)."""
    return list(session.scalars(select(VirtualMachine).where(
        VirtualMachine.host_id == host.id, VirtualMachine.removed.is_(None),
        VirtualMachine.state.in_([s.value for s in ON_HOST])).order_by(VirtualMachine.id)))


def remove_host(cloud, session: Session, host: Host, *, forced: bool = False) -> None:
    """Remove ``host`` and its capacity rows.

    Without ``forced``, a host with VMs on it is refused (536). With ``forced``, a
    host that still answers has its VMs powered off through the driver first (a
    failure refuses the removal; VMs already powered off by then are found off by
    the power-state sync); an unreachable host's VMs are recorded Stopped, so they
    can be started elsewhere. The driver forgets the host after the commit.
    """
    capacity.lock(session, host_id=host.id)  # a deploy reserving on the host now is seen below
    vms = vms_on_host(session, host)
    if vms and not forced:
        names = ", ".join(vm.instance_name or vm.name for vm in vms)
        raise ResourceInUseError(
            f"Host {host.name} has VMs on it ({names}); migrate or stop them, or use forced=true")
    try:
        driver = cloud.plugins.hypervisor(host.hypervisor)
    except UnsupportedError:
        driver = None  # its plugin is no longer enabled: nothing to stop or tell
    ref = host_ref(host)
    alive = bool(vms) and driver is not None and driver.ping_host(ref)
    for vm in vms:
        if alive:
            driver.stop_vm(ref, vm_spec(session, vm), force=True)
        capacity.release(session, CapacityType.CPU, vm.reserved_cpu, host_id=host.id)
        capacity.release(session, CapacityType.MEMORY, vm.reserved_memory, host_id=host.id)
        transition(session, vm, Event.FOLLOW_AGENT_POWER_OFF, cloud.plugins, host_id=None,
                   last_host_id=host.id, reserved_cpu=0, reserved_memory=0, power_state="PowerOff")
        for nic in vm.nics:
            nic.state = "Allocated"
    capacity.delete_capacity(session, host_id=host.id)
    host.removed, host.status = utcnow(), "Removed"
    if driver is not None:
        _after_commit_logged(session, f"disconnecting host {host.name}", driver.disconnect_host, ref)


def ping_hosts(cloud) -> dict[str, str]:
    """Ask every host's driver whether it answers and record the result.

    A host that answers is ``Up`` (and ``last_pinged`` is now); one that does not is
    ``Alert`` on the first miss and ``Down`` on the next; a host whose hypervisor
    plugin is no longer enabled is ``Alert``. Pings happen outside any transaction;
    the new statuses are then written in one short transaction. Returns
    {host uuid: new status} for the hosts whose status changed.
    """
    with cloud.db.transaction() as session:
        hosts = [(h.uuid, h.name, h.hypervisor, host_ref(h)) for h in session.scalars(
            select(Host).where(Host.removed.is_(None), Host.host_type == "Routing").order_by(Host.id))]
    answers: dict[str, bool | None] = {}
    for uuid, name, hypervisor, ref in hosts:
        try:
            driver = cloud.plugins.hypervisor(hypervisor)
        except UnsupportedError as exc:
            log.warning("host %s cannot be pinged: %s", name, exc.message)
            answers[uuid] = None
            continue
        answers[uuid] = driver.ping_host(ref)
    changed: dict[str, str] = {}
    now = int(time.time())
    with cloud.db.transaction() as session:
        for host in session.scalars(select(Host).where(Host.uuid.in_(list(answers)), Host.removed.is_(None))):
            answer = answers[host.uuid]
            if answer:
                status = HostStatus.UP
                host.last_pinged = now
            elif answer is None or host.status == HostStatus.UP:
                status = HostStatus.ALERT
            else:
                status = HostStatus.DOWN
            if status != host.status:
                log.info("host %s went from %s to %s", host.name, host.status, status)
                host.status = status
                changed[host.uuid] = status
    return changed


# -- host maintenance -------------------------------------------------------------

_MAINTENANCE_FROM = (ResourceState.ENABLED, ResourceState.DISABLED, ResourceState.ERROR_IN_MAINTENANCE)
_CANCEL_FROM = (ResourceState.PREPARE_FOR_MAINTENANCE, ResourceState.MAINTENANCE,
                ResourceState.ERROR_IN_MAINTENANCE)


def begin_host_maintenance(session: Session, host: Host) -> None:
    """Mark ``host`` PrepareForMaintenance (the planner stops choosing it). 431 when it
    is already in or entering maintenance."""
    if host.resource_state not in _MAINTENANCE_FROM:
        raise InvalidParameterError(
            f"Host {host.name} is {host.resource_state}; only an Enabled, Disabled or ErrorInMaintenance "
            f"host can be prepared for maintenance")
    host.resource_state = ResourceState.PREPARE_FOR_MAINTENANCE


def run_host_maintenance(cloud, host_uuid: str, caller=None) -> None:
    """The job: move every VM off the host, then mark it Maintenance.

    On failure the host is ErrorInMaintenance (unless maintenance was cancelled
    meanwhile), the VMs already moved stay where they went, and the error says
    which VM could not be moved and why. A cancel during the job stops it after
    the VM being moved.
    """
    try:
        while True:
            with cloud.db.transaction() as session:
                host = _host(session, host_uuid)
                if host.resource_state != ResourceState.PREPARE_FOR_MAINTENANCE:
                    return  # cancelled meanwhile
                vms = vms_on_host(session, host)
                if not vms:
                    host.resource_state = ResourceState.MAINTENANCE
                    record(session, "MAINT.PREPARE", f"Host {host.name} is in maintenance", resource=host,
                           caller=caller, plugins=cloud.plugins)
                    return
                vm_uuid = vms[0].uuid
            migrate_vm(cloud, vm_uuid, reason="its host is being prepared for maintenance")
    except StratoError as exc:
        with cloud.db.transaction() as session:
            failed = session.execute(update(Host).where(
                Host.uuid == host_uuid, Host.resource_state == ResourceState.PREPARE_FOR_MAINTENANCE)
                .values(resource_state=ResourceState.ERROR_IN_MAINTENANCE)).rowcount
            if failed:
                record(session, "MAINT.PREPARE", f"Maintenance of host {host_uuid} failed: {exc.message}",
                       level="ERROR", caller=caller, plugins=cloud.plugins)
        raise


def cancel_host_maintenance(cloud, host_uuid: str, caller=None) -> None:
    """Return a host in (or entering) maintenance to Enabled. 431 for a host that is not."""
    with cloud.db.transaction() as session:
        host = _host(session, host_uuid)
        if host.resource_state not in _CANCEL_FROM:
            raise InvalidParameterError(f"Host {host.name} is {host.resource_state}, not in maintenance")
        host.resource_state = ResourceState.ENABLED
        record(session, "MAINT.CANCEL", f"Maintenance of host {host.name} cancelled", resource=host, caller=caller,
               plugins=cloud.plugins)


def migrate_vm(cloud, vm_uuid: str, *, reason: str = "", host_uuid: str | None = None) -> str:
    """Live-migrate a Running VM to another host of its cluster that has room for it
    (``host_uuid``: to that host only, 533 when it cannot take the VM).

    The destination's capacity is reserved and the VM moved to Migrating in one
    transaction; the driver then moves it; a last transaction puts the VM Running
    on the destination, keeps the details the driver returned (the console address
    there) and gives the source's capacity back. If the driver fails,
    the reservation is released and the VM is Running on the source again.
    Raises 533 when no host can take the VM, 432 when the hypervisor cannot
    live-migrate, 431 when the VM is not Running or the named host is not Up and Enabled.
    Returns the destination host's uuid.
    """
    with cloud.db.transaction() as session:
        vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
        source = vm.host
        label = vm.instance_name or vm.name
        if vm.state != State.RUNNING.value or source is None:
            raise InvalidParameterError(f"VM {label} is {vm.state}; only a Running VM can be migrated")
        require_no_snapshot_task(session, vm, "migrate")
        driver = cloud.plugins.hypervisor(source.hypervisor)
        if not driver.capabilities.get("live_migration"):
            raise UnsupportedError(f"hypervisor {source.hypervisor} cannot live-migrate VM {label}; stop it first")
        destination = _reserve_destination(cloud, session, vm, source, host_uuid)
        # recorded with the VM, so recovery can give the reservation back if this process dies
        vm.details = {**(vm.details or {}), "migration_destination": destination.id}
        transition(session, vm, Event.MIGRATION_REQUESTED, cloud.plugins)
        spec, source_ref, destination_ref = vm_spec(session, vm), host_ref(source), host_ref(destination)
        source_id, source_name = source.id, source.name
        destination_id, destination_uuid, destination_name = destination.id, destination.uuid, destination.name
    try:
        # as at a start: each network's element places its own NICs, with the network's whole spec
        spec.nics = networking.prepare_vm_nics(cloud, vm_uuid, spec)
        details = driver.migrate_vm(source_ref, destination_ref, spec)
    except Exception as exc:
        if not isinstance(exc, StratoError):  # a driver bug: keep its trace for the operator
            log.exception("migrating VM %s failed", label)
        with cloud.db.transaction() as session:
            vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
            capacity.release(session, CapacityType.CPU, vm.reserved_cpu, host_id=destination_id)
            capacity.release(session, CapacityType.MEMORY, vm.reserved_memory, host_id=destination_id)
            vm.details = {k: v for k, v in (vm.details or {}).items() if k != "migration_destination"}
            transition(session, vm, Event.OPERATION_FAILED, cloud.plugins)
        message = exc.message if isinstance(exc, StratoError) else f"{type(exc).__name__}: {exc}"
        raise ResourceUnavailableError(
            f"Migrating VM {label} from {source_name} to {destination_name} failed: {message}") from exc
    with cloud.db.transaction() as session:
        vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
        capacity.release(session, CapacityType.CPU, vm.reserved_cpu, host_id=source_id)
        capacity.release(session, CapacityType.MEMORY, vm.reserved_memory, host_id=source_id)
        # the destination's console address replaces the source's, as a start stores it
        vm.details = {**{k: v for k, v in (vm.details or {}).items() if k != "migration_destination"},
                      **(details or {})}
        transition(session, vm, Event.OPERATION_SUCCEEDED, cloud.plugins, host_id=destination_id,
                   last_host_id=source_id)
        # the owner sees the event; the hosts are for the log (CloudStack shows users no host)
        log.info("migrated VM %s from host %s to %s", vm.name, source_name, destination_name)
        record(session, "VM.MIGRATE", f"Migrated VM {vm.name}" + (f": {reason}" if reason else ""), resource=vm,
               plugins=cloud.plugins)
    return destination_uuid


def _reserve_destination(cloud, session: Session, vm: VirtualMachine, source: Host,
                         host_uuid: str | None = None) -> Host:
    """Another host (``host_uuid``, or any) that can run the VM, chosen and reserved by the
    deployment planner (same hypervisor, reaching the VM's root pool, with room); 533 otherwise,
    431 when the named host is gone or not Up and Enabled."""
    from . import planner
    from .vm import _thresholds

    required = _host(session, host_uuid) if host_uuid else None  # 431 once removed: never any other host
    if required is not None and (required.status != HostStatus.UP or required.resource_state != ResourceState.ENABLED):
        # as CloudStack: a named destination must be connected and not disabled or in maintenance
        raise InvalidParameterError(f"Cannot migrate VM, destination host is not in correct state, has status: "
                                    f"{required.status}, state: {required.resource_state}")
    offering = vm.service_offering
    root = next(v for v in vm.volumes if v.volume_type == "ROOT" and v.removed is None)
    request = planner.DeploymentRequest(
        zone_id=vm.zone_id, cpu_count=offering.cpu_number, cpu_speed=offering.cpu_speed, memory_mb=offering.memory,
        root_size_bytes=root.size, hypervisor=source.hypervisor, host_tag=offering.host_tag,
        avoid_hosts={source.id}, needs_pool=False, existing_pool_id=root.pool_id,
        required_host_id=required.id if required is not None else None)
    try:
        return planner.plan(session, request, _thresholds(cloud, session), cloud.plugins).host
    except InsufficientCapacityError as exc:
        raise InsufficientCapacityError(
            f"No other host can take VM {vm.instance_name or vm.name}: {exc.message}") from None


def _host(session: Session, host_uuid: str) -> Host:
    host = session.scalar(select(Host).where(Host.uuid == host_uuid, Host.removed.is_(None)))
    if host is None:
        raise InvalidParameterError(f"Host {host_uuid} does not exist")
    return host


# -- primary storage --------------------------------------------------------------


def primary_provider(cloud, provider: str | None, url: str) -> str:
    """The enabled primary-storage plugin for ``provider`` (by name, case-insensitive) or,
    for no provider or CloudStack's ``DefaultPrimary``, for ``url``'s scheme. 431 otherwise."""
    if provider and provider.lower() != DEFAULT_PRIMARY:
        cloud.plugins.primary_storage(provider.lower())
        return provider.lower()
    return cloud.plugins.storage_for_url(url, PrimaryStorageDriver)


def add_storage_pool(cloud, session: Session, *, zone: Zone, name: str, url: str, scope: str,
                     provider: str, pod: Pod | None = None, cluster: Cluster | None = None,
                     hypervisor: str | None = None, tags: list[str] | None = None,
                     capacity_bytes: int | None = None, details: dict | None = None) -> StoragePool:
    """Reach the pool through its plugin and add it with its capacity row.

    ``capacity_bytes`` may declare less than the pool reports, never more (431).
    Raises 431 for a URL already added in the zone, and the driver's errors when it
    cannot take or reach the URL (nothing written then).
    """
    if session.scalar(select(StoragePool.id).where(
            StoragePool.url == url, StoragePool.zone_id == zone.id, StoragePool.removed.is_(None))):
        raise InvalidParameterError(f"A storage pool with URL {url} already exists in zone {zone.name}")
    driver = cloud.plugins.primary_storage(provider)
    info = driver.connect_pool(url, dict(details or {}))
    ref = PoolRef(uuid="", name=name, url=url, details={**(details or {}), **info.details})
    try:
        total = _declared_capacity(capacity_bytes, info.capacity_bytes)
        pool = StoragePool(
            name=name, zone_id=zone.id, pod_id=pod.id if pod else None, cluster_id=cluster.id if cluster else None,
            scope=scope, hypervisor=hypervisor, url=url, provider=provider,
            pool_type=POOL_TYPES.get(urlparse(url).scheme.lower(), "NetworkFilesystem"), status=PoolStatus.UP,
            capacity_bytes=total, used_bytes=info.used_bytes, tags=",".join(tags) if tags else None,
            overprovisioning=cloud.config.get(session, "storage.overprovisioning.factor"),
            details={**(details or {}), **info.details})
        session.add(pool)
        session.flush()
        capacity.create_pool_capacity(session, pool)
        session.flush()
    except Exception:
        _undo(f"disconnecting storage pool {url}", driver.disconnect_pool, ref)
        raise
    ref = pool_ref(pool)
    on_rollback(session, lambda: driver.disconnect_pool(ref))
    return pool


def _declared_capacity(declared: int | None, reported: int) -> int:
    if declared is None:
        return reported
    if declared <= 0 or declared > reported:
        raise InvalidParameterError(
            f"capacitybytes must be positive and at most the {reported} bytes the pool reports, not {declared}")
    return declared


def set_pool_capacity(cloud, session: Session, pool: StoragePool, capacity_bytes: int) -> None:
    """Declare the pool's capacity (at most what its driver reports now) and update its capacity row."""
    info = cloud.plugins.primary_storage(pool.provider).pool_stats(pool_ref(pool))
    pool.capacity_bytes = _declared_capacity(capacity_bytes, info.capacity_bytes)
    pool.used_bytes = info.used_bytes
    session.execute(update(Capacity).where(Capacity.pool_id == pool.id,
                                           Capacity.capacity_type == CapacityType.STORAGE_ALLOCATED)
                    .values(total=pool.capacity_bytes).execution_options(synchronize_session=False))


def volumes_on_pool(session: Session, pool: StoragePool, *, include_destroyed: bool = True) -> int:
    """How many volumes (not yet expunged) live on ``pool``."""
    gone = [VolumeState.EXPUNGED] + ([] if include_destroyed else [VolumeState.DESTROY, VolumeState.EXPUNGING])
    return session.scalar(select(func.count(Volume.id)).where(
        Volume.pool_id == pool.id, Volume.removed.is_(None), Volume.state.not_in(gone)))


def remove_storage_pool(cloud, session: Session, pool: StoragePool, *, forced: bool = False) -> None:
    """Remove ``pool`` and its capacity row. 536 while volumes live on it (with
    ``forced``, destroyed volumes waiting to be expunged do not count). The driver
    forgets the pool after the commit."""
    capacity.lock(session, pool_id=pool.id)  # a volume being placed on the pool now is counted below
    count = volumes_on_pool(session, pool, include_destroyed=not forced)
    if count:
        raise ResourceInUseError(
            f"Storage pool {pool.name} holds {count} volume(s); delete them first"
            + ("" if forced else " (forced=true ignores destroyed volumes)"))
    driver = cloud.plugins.primary_storage(pool.provider)
    capacity.delete_capacity(session, pool_id=pool.id)
    pool.removed, pool.status = utcnow(), PoolStatus.REMOVED
    _after_commit_logged(session, f"disconnecting storage pool {pool.name}", driver.disconnect_pool, pool_ref(pool))


_POOL_MAINTENANCE_FROM = (PoolStatus.UP, PoolStatus.DISABLED, PoolStatus.ERROR_IN_MAINTENANCE)
_POOL_CANCEL_FROM = (PoolStatus.PREPARE_FOR_MAINTENANCE, PoolStatus.MAINTENANCE, PoolStatus.ERROR_IN_MAINTENANCE)


def begin_pool_maintenance(session: Session, pool: StoragePool) -> None:
    """Mark ``pool`` PrepareForMaintenance (it takes no new volumes from now on)."""
    if pool.status not in _POOL_MAINTENANCE_FROM:
        raise InvalidParameterError(
            f"Storage pool {pool.name} is {pool.status}; only an Up, Disabled or ErrorInMaintenance pool "
            f"can be put in maintenance")
    pool.status = PoolStatus.PREPARE_FOR_MAINTENANCE


def run_pool_maintenance(cloud, pool_uuid: str, caller=None) -> None:
    """The job: Maintenance when no VM that is on a host has a volume on the pool;
    otherwise ErrorInMaintenance, raising 536 naming those VMs."""
    with cloud.db.transaction() as session:
        pool = _pool(session, pool_uuid)
        if pool.status != PoolStatus.PREPARE_FOR_MAINTENANCE:
            return  # cancelled meanwhile
        # IN, not JOIN + DISTINCT: PostgreSQL has no equality for the JSON columns DISTINCT compares
        busy = session.scalars(select(VirtualMachine).where(
            VirtualMachine.id.in_(select(Volume.vm_id).where(Volume.pool_id == pool.id, Volume.removed.is_(None))),
            VirtualMachine.removed.is_(None),
            VirtualMachine.state.in_([s.value for s in ON_HOST])).order_by(VirtualMachine.id)).all()
        if not busy:
            pool.status = PoolStatus.MAINTENANCE
            record(session, "MAINT.PREPARE.PS", f"Storage pool {pool.name} is in maintenance", resource=pool,
                   caller=caller, plugins=cloud.plugins)
            return
        pool.status = PoolStatus.ERROR_IN_MAINTENANCE
        names = ", ".join(vm.instance_name or vm.name for vm in busy)
        message = f"Storage pool {pool.name} cannot enter maintenance: VMs {names} run with volumes on it; stop them"
        record(session, "MAINT.PREPARE.PS", message, level="ERROR", resource=pool, caller=caller,
               plugins=cloud.plugins)
    # raised after the commit above, so ErrorInMaintenance is kept
    raise ResourceInUseError(message)


def cancel_pool_maintenance(cloud, pool_uuid: str, caller=None) -> None:
    """Return a pool in (or entering) maintenance to Up. 431 for a pool that is not."""
    with cloud.db.transaction() as session:
        pool = _pool(session, pool_uuid)
        if pool.status not in _POOL_CANCEL_FROM:
            raise InvalidParameterError(f"Storage pool {pool.name} is {pool.status}, not in maintenance")
        pool.status = PoolStatus.UP
        record(session, "MAINT.CANCEL.PS", f"Maintenance of storage pool {pool.name} cancelled", resource=pool,
               caller=caller, plugins=cloud.plugins)


def _pool(session: Session, pool_uuid: str) -> StoragePool:
    pool = session.scalar(select(StoragePool).where(StoragePool.uuid == pool_uuid, StoragePool.removed.is_(None)))
    if pool is None:
        raise InvalidParameterError(f"Storage pool {pool_uuid} does not exist")
    return pool


# -- image stores -----------------------------------------------------------------


def add_image_store(cloud, session: Session, *, name: str, url: str, provider: str, zone: Zone | None,
                    details: dict | None = None) -> ImageStore:
    """Reach the store through the plugin named ``provider`` (case-insensitive) and add it.

    431 for an unknown provider, a URL already added, or a URL the plugin does not
    take; the driver's 534 when it cannot reach the store. ``connect_store`` only
    reads, so a failed write leaves nothing to undo.
    """
    plugin = provider.lower()
    driver = cloud.plugins.image_store(plugin)
    if session.scalar(select(ImageStore.id).where(ImageStore.url == url, ImageStore.removed.is_(None))):
        raise InvalidParameterError(f"An image store with URL {url} has already been added")
    info = driver.connect_store(url, dict(details or {}))
    store = ImageStore(name=name, zone_id=zone.id if zone else None, url=url, provider=plugin,
                       protocol=urlparse(url).scheme.lower() or "file", capacity_bytes=info.capacity_bytes,
                       used_bytes=info.used_bytes, details={**(details or {}), **info.details})
    session.add(store)
    session.flush()
    return store


def remove_image_store(session: Session, store: ImageStore) -> None:
    """Remove ``store``; 536 while templates of Strato are kept on it."""
    count = session.scalar(select(func.count(TemplateStoreRef.id)).join(
        Template, Template.id == TemplateStoreRef.template_id).where(
        TemplateStoreRef.store_id == store.id, Template.removed.is_(None)))
    if count:
        raise ResourceInUseError(f"Image store {store.name} holds {count} template(s); delete them first")
    store.removed = utcnow()


__all__ = [
    "PoolStatus", "add_host", "remove_host", "vms_on_host", "ping_hosts",
    "begin_host_maintenance", "run_host_maintenance", "cancel_host_maintenance", "migrate_vm",
    "primary_provider", "add_storage_pool", "set_pool_capacity", "volumes_on_pool", "remove_storage_pool",
    "begin_pool_maintenance", "run_pool_maintenance", "cancel_pool_maintenance",
    "add_image_store", "remove_image_store",
]
