"""The VM lifecycle: deploy, start, stop, reboot, destroy, expunge, recover.

Each step that changes state is one transaction (a guarded transition plus the
capacity it takes or gives back); driver calls happen between transactions, and
every failure path returns the VM, its capacity and its volumes to a stable state
before the error goes up. A crash between steps is settled by ``recovery``.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from .. import globalconfig
from ..errors import (
    ConcurrentOperationError,
    InvalidParameterError,
    ResourceInUseError,
    ResourceUnavailableError,
    StratoError,
)
from ..model import (
    Account,
    AsyncJob,
    CapacityType,
    DownloadState,
    Host,
    ImageStore,
    JobStatus,
    Network,
    ServiceOffering,
    Template,
    TemplateStoreRef,
    VirtualMachine,
    Volume,
    VolumeState,
    Zone,
    utcnow,
)
from . import capacity, limits, planner, vm_snapshots, volumes
from . import networking
from .network import allocate_nic, release_nics
from .refs import host_ref, pool_ref, template_ref, vm_spec, volume_spec
from .vm_states import ON_HOST, TRANSITIONAL, Event, State, transition

log = logging.getLogger(__name__)
GiB = 1024**3


# -- deploy (inside the command's transaction) -------------------------------


def create(session: Session, *, owner: Account, user_id: int | None, zone: Zone, offering: ServiceOffering,
           template: Template, name: str | None, display_name: str | None, networks: list[Network],
           user_data: str | None = None, group: str | None = None, root_size: int | None = None,
           details: dict | None = None) -> VirtualMachine:
    """Add a Stopped VM with its root volume (Allocated) and NICs. Nothing outside the
    database is touched; ``start`` does that."""
    if not template_ready_in_zone(session, template, zone):
        raise InvalidParameterError(f"template {template.name} is not ready in zone {zone.name}")
    if name and session.scalar(select(VirtualMachine.id).where(
            VirtualMachine.name == name, VirtualMachine.account_id == owner.id, VirtualMachine.removed.is_(None))):
        raise InvalidParameterError(f"a VM named {name} already exists in account {owner.name}")
    size = root_size or offering.root_disk_size or template.size or 2 * GiB
    limits.reserve_many(session, owner, limits.vm_amounts(offering, size))  # 532 past a limit
    vm = VirtualMachine(name=name or "pending", display_name=display_name or name or "pending",
                        account_id=owner.id, domain_id=owner.domain_id, user_id=user_id, zone_id=zone.id,
                        service_offering_id=offering.id, template_id=template.id,
                        hypervisor=template.hypervisor if template.hypervisor.lower() != "any" else None,
                        user_data=user_data, group_name=group, details=details or {}, state=State.STOPPED.value)
    session.add(vm)
    session.flush()
    # CloudStack's form; fixed for the VM's life (the hypervisor knows the VM by it)
    vm.instance_name = f"i-{owner.id}-{vm.id}-{globalconfig.core_value(session, 'instance.name')}"
    if not name:
        vm.name = vm.uuid  # CloudStack names an unnamed VM after its uuid
        vm.display_name = display_name or vm.uuid
    session.add(Volume(name=f"ROOT-{vm.id}", vm_id=vm.id, account_id=owner.id, domain_id=owner.domain_id,
                       zone_id=zone.id, volume_type="ROOT", device_id=0, size=size, template_id=template.id,
                       format=template.format if template.format != "ISO" else "QCOW2"))
    for index, network in enumerate(networks):
        allocate_nic(session, network, vm.id, device_id=index, is_default=index == 0)
    session.flush()
    session.refresh(vm)
    return vm


def template_ready_in_zone(session: Session, template: Template, zone: Zone) -> bool:
    return session.scalar(
        select(TemplateStoreRef.id).join(ImageStore, ImageStore.id == TemplateStoreRef.store_id)
        .where(TemplateStoreRef.template_id == template.id,
               TemplateStoreRef.download_state == DownloadState.DOWNLOADED,
               ImageStore.removed.is_(None),
               (ImageStore.zone_id == zone.id) | ImageStore.zone_id.is_(None)).limit(1)) is not None


# -- start --------------------------------------------------------------------


def start(cloud, vm_uuid: str, *, first_deploy: bool = False, required_host_uuid: str | None = None) -> None:
    """Plan, reserve, create the root volume if needed, and power the VM on.

    When the host fails to power the VM on, the start moves to another suitable host, as
    CloudStack's deployment retries with the failed host in its avoid set: each host at most
    once, and never when the caller named the host. On failure: capacity released, nothing
    left on any host tried, VM back to Stopped (Error for a first deploy, as CloudStack), a
    root volume this call created removed; the (last host's) error is re-raised.
    """
    _wait_until_settled(cloud, vm_uuid)
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        if vm.state == State.RUNNING.value:
            return
        _require_settled(vm, "start")
        require_no_snapshot_task(session, vm, "start")
        root = _root_volume(vm)
        if root.pool is not None and root.pool.status != "Up":
            raise ResourceUnavailableError(
                f"VM {vm.name} cannot start: its root volume is on pool {root.pool.name}, which is {root.pool.status}")
        required = None
        if required_host_uuid:
            required = session.scalar(select(Host).where(Host.uuid == required_host_uuid, Host.removed.is_(None)))
            if required is None:
                raise InvalidParameterError(f"host {required_host_uuid} does not exist")
        request = deployment_request(vm, required_host_id=required.id if required else None)
        try:
            deployment = planner.plan(session, request, _thresholds(cloud, session), cloud.plugins)
        except StratoError as exc:
            # plan() reserved nothing; commit the Error state of a failed first deploy, then report
            plan_error = exc
            if first_deploy:
                transition(session, vm, Event.OPERATION_FAILED_TO_ERROR, cloud.plugins)
                _event(cloud, session, vm, "VM.CREATE", f"Deploying VM {vm.name} failed: {exc.message}",
                       level="ERROR")
        else:
            plan_error = None
            transition(session, vm, Event.START_REQUESTED, cloud.plugins, host_id=deployment.host.id,
                       pod_id=deployment.host.pod_id, reserved_cpu=request.cpu_mhz,
                       reserved_memory=request.memory_bytes, hypervisor=deployment.host.hypervisor)
            if deployment.pool is not None:
                root.pool_id, root.state = deployment.pool.id, VolumeState.CREATING
            creates_root = deployment.pool is not None
    if plan_error is not None:
        raise plan_error

    tried: set[int] = set()
    while True:
        try:
            _create_root_volume(cloud, vm_uuid)
            volumes.create_attached(cloud, vm_uuid)  # data volumes attached before the VM had storage
            _power_on(cloud, vm_uuid)
            return
        except Exception as exc:
            error = exc.error if isinstance(exc, _HostFailed) else exc
            if isinstance(exc, _HostFailed) and not required_host_uuid and _move_to_another_host(
                    cloud, vm_uuid, tried, error):
                continue
            _undo_start(cloud, vm_uuid, first_deploy, created_root=creates_root)
            if isinstance(error, StratoError):
                raise error from None
            raise ResourceUnavailableError(f"starting VM {vm_uuid} failed: {error}") from error


def deployment_request(vm: VirtualMachine, *, required_host_id: int | None = None,
                       avoid_hosts: set[int] | None = None) -> planner.DeploymentRequest:
    """What the planner needs to place ``vm`` (a root volume on a pool stays there)."""
    offering, root = vm.service_offering, _root_volume(vm)
    return planner.DeploymentRequest(
        zone_id=vm.zone_id, cpu_count=offering.cpu_number, cpu_speed=offering.cpu_speed,
        memory_mb=offering.memory, root_size_bytes=root.size, hypervisor=vm.hypervisor,
        host_tag=offering.host_tag, storage_tags=_tags(offering.storage_tags),
        preferred_host_id=vm.last_host_id, required_host_id=required_host_id, avoid_hosts=set(avoid_hosts or ()),
        needs_pool=root.pool_id is None, existing_pool_id=root.pool_id)


class _HostFailed(Exception):
    """The host failed to power the VM on (``error``): another host may do better."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _move_to_another_host(cloud, vm_uuid: str, tried: set[int], error: Exception) -> bool:
    """Clear the Starting VM off the host that failed it and reserve another one that has
    not failed it yet, in one transaction (the VM stays Starting). False, changing nothing,
    when no other host fits."""
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        failed, spec = vm.host, vm_spec(session, vm)
    _quietly(lambda: cloud.plugins.hypervisor(failed.hypervisor).destroy_vm(host_ref(failed), spec))
    tried.add(failed.id)
    reason = error.message if isinstance(error, StratoError) else str(error)
    try:
        with cloud.db.transaction() as session:
            vm = _vm(session, vm_uuid)
            request = deployment_request(vm, avoid_hosts=tried)
            request.preferred_host_id = None
            _release_host_capacity(session, vm)
            deployment = planner.plan(session, request, _thresholds(cloud, session), cloud.plugins)
            moved = session.execute(
                update(VirtualMachine).where(VirtualMachine.id == vm.id, VirtualMachine.version == vm.version,
                                             VirtualMachine.state == State.STARTING.value)
                .values(host_id=deployment.host.id, pod_id=deployment.host.pod_id, reserved_cpu=request.cpu_mhz,
                        reserved_memory=request.memory_bytes, hypervisor=deployment.host.hypervisor,
                        version=VirtualMachine.version + 1)
                .execution_options(synchronize_session=False)).rowcount
            if moved != 1:
                raise ConcurrentOperationError(f"VM {vm_uuid} was changed by another operation")
            next_host = deployment.host.name
    except StratoError as exc:  # rolled back: the VM still holds the failed host, for _undo_start to clear
        log.warning("VM %s failed to start on host %s (%s); no other host to try: %s", vm_uuid, failed.name,
                    reason, exc.message)
        return False
    log.warning("VM %s failed to start on host %s (%s); trying host %s", vm_uuid, failed.name, reason, next_host)
    return True


def _create_root_volume(cloud, vm_uuid: str) -> None:
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        root = _root_volume(vm)
        if root.state != VolumeState.CREATING:
            return
        pool = root.pool
        driver = _storage(cloud, pool)
        spec, ref = volume_spec(root), pool_ref(pool)
        tmpl = _template_on_store(session, vm.template, vm.zone_id)
    path = driver.create_volume(ref, spec, tmpl)
    with cloud.db.transaction() as session:
        root = session.scalar(select(Volume).where(Volume.uuid == spec.uuid))
        root.path, root.state = path, VolumeState.READY


def _power_on(cloud, vm_uuid: str) -> None:
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        host = vm.host
        driver = cloud.plugins.hypervisor(host.hypervisor)
        spec, ref = vm_spec(session, vm), host_ref(host)
    spec.nics = networking.prepare_vm_nics(cloud, vm_uuid, spec)
    try:
        details = driver.start_vm(ref, spec)
    except Exception as exc:
        raise _HostFailed(exc) from exc
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        vm.details = {**(vm.details or {}), **(details or {})}
        vm.power_state = "PowerOn"
        transition(session, vm, Event.OPERATION_SUCCEEDED, cloud.plugins, last_host_id=vm.host_id)
        for nic in vm.nics:
            nic.state = "Reserved"
        # the owner sees the event; which host runs the VM is for the log (CloudStack shows users no host)
        log.info("started VM %s on host %s", vm.name, vm.host.name)
        _event(cloud, session, vm, "VM.START", f"Started VM {vm.name}")


def _undo_start(cloud, vm_uuid: str, first_deploy: bool, created_root: bool = False) -> None:
    """Return a VM whose start failed to Stopped (or Error), holding nothing; ``created_root``:
    this start made the root volume (a VM's first start), so it goes too."""
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        host = vm.host
        spec = vm_spec(session, vm)
        root = _root_volume(vm)
        created_here = root.state == VolumeState.CREATING or (
            (first_deploy or created_root) and root.state == VolumeState.READY)
        pool = root.pool if created_here else None
    if host is not None:
        _quietly(lambda: cloud.plugins.hypervisor(host.hypervisor).destroy_vm(host_ref(host), spec))
    if pool is not None:
        _quietly(lambda: _storage(cloud, pool).delete_volume(pool_ref(pool), volume_spec(root)))
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        root = _root_volume(vm)
        if pool is not None:
            capacity.release(session, CapacityType.STORAGE_ALLOCATED, root.size, pool_id=root.pool_id)
            root.pool_id, root.path, root.state = None, None, VolumeState.ALLOCATED
        _release_host_capacity(session, vm)
        event = Event.OPERATION_FAILED_TO_ERROR if first_deploy else Event.OPERATION_FAILED
        transition(session, vm, event, cloud.plugins, host_id=None, reserved_cpu=0, reserved_memory=0)
        vm.power_state = "PowerOff"


# -- stop, reboot ---------------------------------------------------------------


def stop(cloud, vm_uuid: str, *, forced: bool = False) -> None:
    """Power the VM off and give its host capacity back. On a driver failure the VM
    is Running again and the error is re-raised."""
    _wait_until_settled(cloud, vm_uuid)
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        if vm.state == State.STOPPED.value:
            return
        _require_settled(vm, "stop")
        require_no_snapshot_task(session, vm, "stop")
        transition(session, vm, Event.STOP_REQUESTED, cloud.plugins)
        host, spec = vm.host, vm_spec(session, vm)
    try:
        if host is not None:
            cloud.plugins.hypervisor(host.hypervisor).stop_vm(host_ref(host), spec, force=forced)
    except Exception:
        with cloud.db.transaction() as session:
            transition(session, _vm(session, vm_uuid), Event.OPERATION_FAILED, cloud.plugins)
        raise
    _stopped(cloud, vm_uuid, Event.OPERATION_SUCCEEDED, description="Stopped VM")


def _stopped(cloud, vm_uuid: str, event: Event, description: str) -> None:
    """The VM is off: release its host capacity and its NICs' reservations."""
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        spec = vm_spec(session, vm)
        _release_host_capacity(session, vm)
        last = vm.host_id or vm.last_host_id
        transition(session, vm, event, cloud.plugins, host_id=None, last_host_id=last, reserved_cpu=0,
                   reserved_memory=0)
        vm.power_state = "PowerOff"
        for nic in vm.nics:
            nic.state = "Allocated"
        _event(cloud, session, vm, "VM.STOP", f"{description} {vm.name}")
    networking.release_vm_nics(cloud, vm_uuid, spec)


def reboot(cloud, vm_uuid: str) -> None:
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        if vm.state != State.RUNNING.value:
            raise InvalidParameterError(f"VM {vm.name} is {vm.state}; only a Running VM can be rebooted")
        require_no_snapshot_task(session, vm, "reboot")
        host, spec = vm.host, vm_spec(session, vm)
    cloud.plugins.hypervisor(host.hypervisor).reboot_vm(host_ref(host), spec)
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        _event(cloud, session, vm, "VM.REBOOT", f"Rebooted VM {vm.name}")


# -- destroy, expunge, recover ----------------------------------------------------


def destroy(cloud, vm_uuid: str, *, expunge: bool = False) -> None:
    """Stop the VM if it runs, mark it Destroyed, and expunge it now when asked (which
    also finishes an expunge that was cut short)."""
    with cloud.db.transaction() as session:
        finishing = expunge and _vm(session, vm_uuid).state == State.EXPUNGING.value
    if not finishing:
        _wait_until_settled(cloud, vm_uuid)
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        state = vm.state
        if not finishing:
            _require_settled(vm, "destroy")
            require_no_snapshot_task(session, vm, "destroy")
    if state == State.RUNNING.value:
        stop(cloud, vm_uuid, forced=True)
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        if vm.state == State.STOPPED.value:
            transition(session, vm, Event.DESTROY_REQUESTED, cloud.plugins)
            _event(cloud, session, vm, "VM.DESTROY", f"Destroyed VM {vm.name}")
    if expunge:
        expunge_vm(cloud, vm_uuid)


def expunge_vm(cloud, vm_uuid: str) -> None:
    """Remove every trace of a Destroyed (or Error) VM: its hypervisor object, its
    volumes' data, its NICs, its capacity. Safe to repeat after a crash."""
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        if vm.removed is not None:
            return  # expunged already, by the operation this one raced
        if vm.state != State.EXPUNGING.value:
            transition(session, vm, Event.EXPUNGE_OPERATION, cloud.plugins)
        host = session.get(Host, vm.host_id or vm.last_host_id) if (vm.host_id or vm.last_host_id) else None
        spec = vm_spec(session, vm)
        volumes = [(volume_spec(v), v.pool) for v in vm.volumes if v.removed is None and v.volume_type == "ROOT"]
    if host is not None and host.removed is None:
        cloud.plugins.hypervisor(host.hypervisor).destroy_vm(host_ref(host), spec)
    for spec_volume, pool in volumes:
        if pool is not None:
            cloud.plugins.primary_storage(pool.provider).delete_volume(pool_ref(pool), spec_volume)
    with cloud.db.transaction() as session:
        vm = _vm(session, vm_uuid)
        now = utcnow()
        # Claim the removal first: of two expunges of one VM (a retry, the periodic pass, a
        # second command) only the one that sets ``removed`` gives the capacity back.
        if not session.execute(update(VirtualMachine).where(
                VirtualMachine.id == vm.id, VirtualMachine.removed.is_(None)).values(removed=now)
                .execution_options(synchronize_session=False)).rowcount:
            return
        for volume in vm.volumes:
            if volume.removed is not None:
                continue
            if volume.volume_type == "ROOT":
                if volume.pool_id is not None:
                    capacity.release(session, CapacityType.STORAGE_ALLOCATED, volume.size, pool_id=volume.pool_id)
                limits.release_many(session, vm.account_id, {limits.ResourceType.VOLUME: 1,
                                                             limits.ResourceType.PRIMARY_STORAGE: volume.size})
                volume.state, volume.removed = VolumeState.EXPUNGED, now
            else:  # data disks survive their VM, detached
                volume.vm_id, volume.device_id = None, None
        _release_host_capacity(session, vm)
        release_nics(session, vm.id, cloud)
        vm_snapshots.forget_all(session, vm)
        if vm.removed is None:
            offering = vm.service_offering
            limits.release_many(session, vm.account_id, {limits.ResourceType.USER_VM: 1,
                                                         limits.ResourceType.CPU: offering.cpu_number,
                                                         limits.ResourceType.MEMORY: offering.memory})
        vm.removed, vm.host_id = now, None
        _event(cloud, session, vm, "VM.EXPUNGE", f"Expunged VM {vm.name}")


def recover(session: Session, vm: VirtualMachine, plugins=None) -> None:
    """Destroyed -> Stopped (recoverVirtualMachine); in the command's transaction."""
    if vm.state != State.DESTROYED.value:
        raise InvalidParameterError(f"VM {vm.name} is {vm.state}; only a Destroyed VM can be recovered")
    transition(session, vm, Event.RECOVERY_REQUESTED, plugins)


def hosts_for_migration(cloud, session: Session, vm: VirtualMachine) -> list[tuple[Host, bool]]:
    """(host, suitable) for every other host the Running VM could migrate to without moving its
    storage (same hypervisor; the root pool's cluster, or the zone for a zone-wide pool), in the
    planner's order, suitable ones first: whether it fits now. Reserves nothing. 431 when the VM
    is not Running or its hypervisor cannot live-migrate (as CloudStack's listHostsForMigrationOfVM)."""
    if vm.state != State.RUNNING.value or vm.host is None:
        raise InvalidParameterError(f"VM {vm.name} is {vm.state}, not Running: it cannot be migrated")
    source = vm.host
    if not cloud.plugins.hypervisor(source.hypervisor).capabilities.get("live_migration"):
        raise InvalidParameterError(f"Unsupported hypervisor type for VM migration: {source.hypervisor} "
                                    "cannot live-migrate")
    pool = _root_volume(vm).pool
    query = select(Host).where(Host.zone_id == vm.zone_id, Host.removed.is_(None), Host.host_type == "Routing",
                               Host.hypervisor == source.hypervisor, Host.id != source.id).order_by(Host.id)
    if pool is not None and pool.scope == "CLUSTER":
        query = query.where(Host.cluster_id == pool.cluster_id)
    request = deployment_request(vm, avoid_hosts={source.id})
    request.hypervisor = source.hypervisor
    suitable = planner.suitable_hosts(session, request, _thresholds(cloud, session), cloud.plugins)
    order = {host.id: index for index, host in enumerate(suitable)}
    hosts = sorted(session.scalars(query), key=lambda h: (h.id not in order, order.get(h.id, 0), h.id))
    return [(host, host.id in order) for host in hosts]


def change_offering(session: Session, vm: VirtualMachine, offering: ServiceOffering) -> None:
    if vm.state != State.STOPPED.value:
        raise InvalidParameterError(f"VM {vm.name} is {vm.state}; stop it before changing its service offering")
    limits.change_offering(session, vm.account, vm.service_offering, offering)  # 532 past a limit
    vm.service_offering_id = offering.id


# -- helpers ---------------------------------------------------------------------


def _vm(session: Session, vm_uuid: str) -> VirtualMachine:
    vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
    if vm is None:
        raise InvalidParameterError(f"VM {vm_uuid} does not exist")
    return vm


#: how long an operation waits for another one moving the same VM to end
SETTLE_WAIT_SECONDS = 600.0


def _wait_until_settled(cloud, vm_uuid: str) -> None:
    """Wait while another operation moves the VM (as CloudStack queues the work on one VM);
    ``_require_settled`` then checks again inside the transaction that acts. A VM left
    moving by a crash is settled by recovery, so the wait ends there too."""
    deadline = time.monotonic() + SETTLE_WAIT_SECONDS
    while True:
        with cloud.db.transaction() as session:
            vm = _vm(session, vm_uuid)
            if vm.state not in _MOVING or vm.removed is not None:  # an expunged VM stays Expunging
                return
        if time.monotonic() >= deadline:
            return
        time.sleep(0.2)


def _require_settled(vm: VirtualMachine, action: str) -> None:
    """431 while another operation moves the VM (Starting, Stopping, Migrating, Expunging):
    acting on it now would take it from under that operation, which would then leave its
    hypervisor object and its capacity behind."""
    if vm.removed is not None:
        raise InvalidParameterError(f"VM {vm.name} has been expunged: there is nothing to {action}")
    if vm.state in _MOVING:
        raise InvalidParameterError(
            f"VM {vm.name} is {vm.state}: another operation is in progress on it; {action} it when that has ended")


_MOVING = frozenset(state.value for state in TRANSITIONAL)


def require_no_snapshot_task(session: Session, vm: VirtualMachine, action: str) -> None:
    """536 while a VM snapshot job of the VM is pending: CloudStack does no other work on a
    VM then (a memory snapshot pauses the guest; a revert replaces its disks and state)."""
    busy = session.scalar(select(exists().where(
        AsyncJob.instance_uuid == vm.uuid, AsyncJob.status == JobStatus.PENDING,
        AsyncJob.handler.in_(vm_snapshots.HANDLERS))))
    if busy:
        raise ResourceInUseError(f"VM {vm.name} has an active VM snapshot task: cannot {action} it now; "
                                 "try again when the task has ended")


def _root_volume(vm: VirtualMachine) -> Volume:
    return next(v for v in vm.volumes if v.volume_type == "ROOT" and v.removed is None)


def _release_host_capacity(session: Session, vm: VirtualMachine) -> None:
    if vm.host_id and (vm.reserved_cpu or vm.reserved_memory):
        planner.release(session, vm.host_id, vm.reserved_cpu, vm.reserved_memory)
    vm.reserved_cpu, vm.reserved_memory = 0, 0


def _template_on_store(session: Session, template: Template, zone_id: int):
    ref = session.scalar(
        select(TemplateStoreRef).join(ImageStore, ImageStore.id == TemplateStoreRef.store_id)
        .where(TemplateStoreRef.template_id == template.id,
               TemplateStoreRef.download_state == DownloadState.DOWNLOADED,
               (ImageStore.zone_id == zone_id) | ImageStore.zone_id.is_(None), ImageStore.removed.is_(None))
        .limit(1))
    if ref is None:
        raise InvalidParameterError(f"template {template.name} is not ready in this zone")
    tmpl = template_ref(template, ref.install_path)
    tmpl.store_url, tmpl.store_details = ref.store.url, dict(ref.store.details or {})
    return tmpl


def _thresholds(cloud, session: Session) -> planner.Thresholds:
    get = cloud.config.get
    return planner.Thresholds(cluster_cpu=get(session, "cluster.cpu.allocated.capacity.disablethreshold"),
                              cluster_memory=get(session, "cluster.memory.allocated.capacity.disablethreshold"),
                              pool=get(session, "pool.storage.allocated.capacity.disablethreshold"))


def _tags(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _event(cloud, session: Session, vm: VirtualMachine, event_type: str, description: str,
           level: str = "INFO") -> None:
    from ..events import record

    record(session, event_type, description, resource=vm, level=level, plugins=cloud.plugins)


def _storage(cloud, pool):
    """The pool's storage driver; 534 when its plugin is not enabled in this process."""
    try:
        return cloud.plugins.primary_storage(pool.provider)
    except StratoError as exc:
        raise ResourceUnavailableError(f"storage pool {pool.name} is unavailable: {exc.message}") from None


def _quietly(fn, *args) -> None:
    """Clean-up on a failure path: a second error must not hide the first, but is logged."""
    try:
        fn(*args)
    except Exception:
        log.exception("clean-up step %s failed", getattr(fn, "__name__", fn))


__all__ = ["create", "start", "stop", "reboot", "destroy", "expunge_vm", "recover", "change_offering",
           "ON_HOST"]
