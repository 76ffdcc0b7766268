"""Volume snapshots: a copy of the volume backed up to an image store of its zone, reverted
onto the volume, deleted; templates made from a snapshot or from a stopped VM's volume;
recurring snapshot policies (hourly, daily, weekly, monthly) with their retention.

Each step is one transaction: the snapshot moves by a guarded UPDATE of its state and
version, the volume by ``volumes.move`` (Snapshotting while it is backed up,
RevertSnapshotting while it is restored). Driver calls happen between transactions; a
failure returns both to a stable state before the error goes up: a failed snapshot is
Error and removed (the driver left no partial backup), the volume is Ready as it was.

Policies: ``run_due_policies`` (the periodic pass) takes a snapshot for every policy whose
``next_run`` has come, after moving ``next_run`` on by a conditional UPDATE (so among
several management servers one takes it), as an async job; once a policy's snapshot is
backed up, its snapshots beyond ``maxsnaps`` are deleted, oldest first.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from ..errors import (
    ConcurrentOperationError,
    InsufficientCapacityError,
    InvalidParameterError,
    ResourceInUseError,
    StratoError,
    UnsupportedError,
)
from ..events import record
from ..jobs import job_handler
from ..model import (
    Account,
    CapacityType,
    DownloadState,
    ImageStore,
    IntervalType,
    Snapshot,
    SnapshotPolicy,
    SnapshotState,
    Template,
    TemplateStoreRef,
    Volume,
    utcnow,
)
from . import capacity, identity, limits, usage
from . import volumes as volume_ops
from .refs import pool_ref, template_ref
from .volumes import VS, Ev

log = logging.getLogger(__name__)

#: most snapshots a policy keeps, per interval (CloudStack's snapshot.max.hourly/daily/weekly/monthly)
MAX_SNAPS = {IntervalType.HOURLY: 8, IntervalType.DAILY: 8, IntervalType.WEEKLY: 8, IntervalType.MONTHLY: 8}
#: VM states in which the volume is open on a host: its backup is then crash-consistent
_ON_HOST = ("Starting", "Running", "Stopping", "Migrating")


# -- snapshot state ----------------------------------------------------------------


def _move(session: Session, snapshot: Snapshot, to: str, *, expect: tuple[str, ...], **changes) -> None:
    """One guarded UPDATE of the snapshot's state (from one of ``expect``) and version."""
    if snapshot.state not in expect:
        raise InvalidParameterError(f"Snapshot {snapshot.name} is {snapshot.state}")
    done = session.execute(
        update(Snapshot).where(Snapshot.id == snapshot.id, Snapshot.state == snapshot.state,
                               Snapshot.version == snapshot.version)
        .values(state=to, version=Snapshot.version + 1, **changes).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise ConcurrentOperationError(f"Snapshot {snapshot.uuid} was changed by another operation; try again")
    session.refresh(snapshot)


def _snapshot(session: Session, snapshot_uuid: str) -> Snapshot:
    snapshot = session.scalar(select(Snapshot).where(Snapshot.uuid == snapshot_uuid))
    if snapshot is None:
        raise InvalidParameterError(f"Snapshot {snapshot_uuid} does not exist")
    return snapshot


def _failed(cloud, snapshot_uuid: str, reason: str) -> None:
    """A snapshot that could not be taken: Error, and removed from the lists."""
    with cloud.db.transaction() as session:
        snapshot = _snapshot(session, snapshot_uuid)
        if snapshot.state in (SnapshotState.ALLOCATED, SnapshotState.BACKING_UP):
            reserved = snapshot.size  # what ``allocate`` reserved (the volume's size then)
            _move(session, snapshot, SnapshotState.ERROR, expect=(snapshot.state,), removed=utcnow())
            limits.release_many(session, snapshot.account_id, {limits.ResourceType.SNAPSHOT: 1,
                                                               limits.ResourceType.SECONDARY_STORAGE: reserved})
            record(session, "SNAPSHOT.CREATE", f"Snapshot {snapshot.name} failed: {reason}", resource=snapshot,
                   level="ERROR", plugins=cloud.plugins)


# -- image stores --------------------------------------------------------------------


def choose_store(session: Session, zone_id: int, provider: str | None = None) -> ImageStore:
    """The image store of the zone (or a region-wide one) to write to: one served by
    ``provider`` when there is one, else the first. 431 when the zone has none."""
    stores = list(session.scalars(select(ImageStore).where(
        ImageStore.removed.is_(None), ImageStore.role == "Image", ImageStore.read_only.is_(False),
        (ImageStore.zone_id == zone_id) | ImageStore.zone_id.is_(None)).order_by(ImageStore.id)))
    if not stores:
        raise InvalidParameterError("the zone has no writable image store; add one with addImageStore first")
    return next((s for s in stores if s.provider == provider), stores[0])


def _unsupported(what: str, driver) -> UnsupportedError:
    return UnsupportedError(f"{what} is not supported by the {getattr(driver, 'name', driver)} storage plugin")


# -- take ------------------------------------------------------------------------------


def check_volume(cloud, session: Session, volume: Volume) -> None:
    """431 unless the volume can be snapshotted now (Ready, on a pool, in a zone with an
    image store); 432 when its storage plugin takes no snapshots."""
    if volume.removed is not None or volume.state != VS.READY or volume.pool is None:
        raise InvalidParameterError(f"Volume {volume.name} is {volume.state}; only a Ready volume (one that has "
                                    "been created on a pool) can be snapshotted")
    driver = cloud.plugins.primary_storage(volume.pool.provider)
    if not driver.capabilities.get("snapshots", False):
        raise UnsupportedError(f"the {volume.pool.provider} storage plugin takes no snapshots")
    choose_store(session, volume.zone_id, volume.pool.provider)


def allocate(cloud, session: Session, volume: Volume, *, name: str | None = None,
             policy: SnapshotPolicy | None = None) -> Snapshot:
    """A new Allocated snapshot of ``volume`` (checked with ``check_volume``), in the caller's
    transaction; ``take`` does the work. As CloudStack, it counts against the owner's snapshot
    limit and, with the volume's size until the backup's is known, its secondary storage limit
    (532 past either)."""
    check_volume(cloud, session, volume)
    limits.reserve_many(session, session.get(Account, volume.account_id), {
        limits.ResourceType.SNAPSHOT: 1, limits.ResourceType.SECONDARY_STORAGE: volume.size})  # 532
    stamp = utcnow().strftime("%Y%m%d%H%M%S")
    vm = volume.vm
    snapshot = Snapshot(
        name=name or f"{vm.name + '_' if vm else ''}{volume.name}_{stamp}", volume_id=volume.id,
        account_id=volume.account_id, domain_id=volume.domain_id, zone_id=volume.zone_id,
        policy_id=policy.id if policy else None, snapshot_type=policy.interval_type if policy else "MANUAL",
        volume_type=volume.volume_type, hypervisor=vm.hypervisor if vm else None, size=volume.size,
        state=SnapshotState.ALLOCATED)
    session.add(snapshot)
    session.flush()
    return snapshot


def take(cloud, snapshot_uuid: str, caller=None) -> None:
    """Back the snapshot's volume up to an image store of its zone (one of the pool's own
    storage plugin when there is one). The volume is Snapshotting meanwhile; a volume a
    running VM has open is copied as it is (crash-consistent). On failure the snapshot is
    Error and removed, the volume Ready, and the error goes up."""
    try:
        with cloud.db.transaction() as session:
            snapshot = _snapshot(session, snapshot_uuid)
            volume = snapshot.volume
            check_volume(cloud, session, volume)
            store = choose_store(session, volume.zone_id, volume.pool.provider)
            running = volume.vm is not None and volume.vm.state in _ON_HOST
            volume_ops.move(session, volume, Ev.SNAPSHOT)
            _move(session, snapshot, SnapshotState.BACKING_UP, expect=(SnapshotState.ALLOCATED,), store_id=store.id)
            pool, spec = volume.pool, volume_ops._spec(session, volume)
            driver, pool_r, store_r = cloud.plugins.primary_storage(pool.provider), pool_ref(pool), pool_ref(store)
            volume_uuid, account = volume.uuid, volume.account_id
    except StratoError as exc:
        _failed(cloud, snapshot_uuid, exc.message)
        raise
    try:
        try:
            backup = driver.backup_volume(pool_r, spec, store_r, snapshot_uuid, account=account, running=running)
        except NotImplementedError:
            raise _unsupported("backing up volume snapshots", driver) from None
    except Exception as exc:
        with cloud.db.transaction() as session:
            volume_ops.move(session, volume_ops._volume(session, volume_uuid), Ev.FAILED)
        _failed(cloud, snapshot_uuid, exc.message if isinstance(exc, StratoError) else f"{type(exc).__name__}: {exc}")
        raise
    with cloud.db.transaction() as session:
        snapshot = _snapshot(session, snapshot_uuid)
        reserved = snapshot.size
        _move(session, snapshot, SnapshotState.BACKED_UP, expect=(SnapshotState.BACKING_UP,),
              backup_path=backup.path, physical_size=backup.physical_size_bytes,
              size=backup.virtual_size_bytes or snapshot.size)
        volume_ops.move(session, volume_ops._volume(session, volume_uuid), Ev.SUCCEEDED)
        # the backup's own size counts from now on, instead of the volume's (what is on the
        # store counts whatever the limit, as a finished template download)
        limits.reserve_many(session, session.get(Account, snapshot.account_id),
                            {limits.ResourceType.SECONDARY_STORAGE: snapshot.physical_size - reserved}, check=False)
        record(session, "SNAPSHOT.CREATE", f"Took snapshot {snapshot.name} of volume {spec.name}", caller=caller,
               resource=snapshot, plugins=cloud.plugins)
        policy_id = snapshot.policy_id
    if policy_id is not None:
        retain(cloud, policy_id)


# -- revert, delete ---------------------------------------------------------------------


def check_revert(session: Session, snapshot: Snapshot) -> None:
    """431 unless the snapshot is BackedUp and its volume exists, is Ready and is not open
    on a host (its VM stopped, or none)."""
    if snapshot.state != SnapshotState.BACKED_UP:
        raise InvalidParameterError(f"Snapshot {snapshot.name} is {snapshot.state}; only a BackedUp snapshot can "
                                    "be reverted to")
    volume = snapshot.volume
    if volume.removed is not None or volume.pool is None:
        raise InvalidParameterError(f"Snapshot {snapshot.name}'s volume {volume.name} no longer exists on a pool; "
                                    "make a new volume from it instead (createVolume snapshotid=...)")
    if volume.state != VS.READY:
        raise InvalidParameterError(f"Volume {volume.name} is {volume.state}; try again when it is Ready")
    if volume.vm is not None and volume.vm.state != "Stopped":
        raise InvalidParameterError(f"Volume {volume.name} is attached to VM {volume.vm.name}, which is "
                                    f"{volume.vm.state}; stop it before reverting the volume")


def revert(cloud, snapshot_uuid: str, caller=None) -> None:
    """Replace the volume's content by the snapshot's backup (the volume takes the snapshot's
    size; space for growth is reserved first, 533 without room). On failure the volume is
    Ready and unchanged, and the error goes up."""
    with cloud.db.transaction() as session:
        snapshot = _snapshot(session, snapshot_uuid)
        check_revert(session, snapshot)
        volume, pool = snapshot.volume, snapshot.volume.pool
        growth = snapshot.size - volume.size
        if growth > 0:
            limits.reserve(session, session.get(Account, volume.account_id), limits.ResourceType.PRIMARY_STORAGE,
                           growth)  # 532 past the owner's limit
            threshold = cloud.config.get(session, "pool.storage.allocated.capacity.disablethreshold")
            if not capacity.reserve(session, CapacityType.STORAGE_ALLOCATED, growth,
                                    pool.capacity_bytes * pool.overprovisioning * threshold, pool_id=pool.id):
                raise InsufficientCapacityError(f"Pool {pool.name} has no room to revert volume {volume.name}")
        volume_ops.move(session, volume, Ev.REVERT)
        spec, driver = volume_ops._spec(session, volume), cloud.plugins.primary_storage(pool.provider)
        pool_r, store_r, backup, pool_id = pool_ref(pool), pool_ref(snapshot.store), snapshot.backup_path, pool.id
        volume_uuid, size, account_id = volume.uuid, snapshot.size, volume.account_id
    try:
        try:
            path = driver.restore_snapshot(pool_r, spec, store_r, backup)
        except NotImplementedError:
            raise _unsupported("reverting volume snapshots", driver) from None
    except Exception:
        with cloud.db.transaction() as session:
            if growth > 0:
                capacity.release(session, CapacityType.STORAGE_ALLOCATED, growth, pool_id=pool_id)
                limits.release(session, account_id, limits.ResourceType.PRIMARY_STORAGE, growth)
            volume_ops.move(session, volume_ops._volume(session, volume_uuid), Ev.FAILED)
        raise
    with cloud.db.transaction() as session:
        if growth < 0:
            capacity.release(session, CapacityType.STORAGE_ALLOCATED, -growth, pool_id=pool_id)
            limits.release(session, account_id, limits.ResourceType.PRIMARY_STORAGE, -growth)
        volume = volume_ops._volume(session, volume_uuid)
        volume_ops.move(session, volume, Ev.SUCCEEDED, path=path, size=size)
        record(session, "SNAPSHOT.REVERT", f"Reverted volume {volume.name} to snapshot {snapshot_uuid}",
               caller=caller, resource=_snapshot(session, snapshot_uuid), plugins=cloud.plugins)


def check_delete(snapshot: Snapshot) -> None:
    """536 while the snapshot is being backed up; 431 when it is already being deleted."""
    if snapshot.state in (SnapshotState.ALLOCATED, SnapshotState.BACKING_UP):
        raise ResourceInUseError(f"Snapshot {snapshot.name} is being backed up; delete it once it is BackedUp")
    if snapshot.state not in (SnapshotState.BACKED_UP, SnapshotState.ERROR):
        raise InvalidParameterError(f"Snapshot {snapshot.name} is {snapshot.state}")


def delete(cloud, snapshot_uuid: str, caller=None) -> None:
    """Remove the snapshot's backup from its image store, then the snapshot (Destroyed,
    removed). On failure it is as before (BackedUp) and the error goes up."""
    with cloud.db.transaction() as session:
        snapshot = _snapshot(session, snapshot_uuid)
        check_delete(snapshot)
        before = snapshot.state
        _move(session, snapshot, SnapshotState.DESTROYING, expect=(before,))
        store = snapshot.store
        work = (cloud.plugins.image_store(store.provider), pool_ref(store), snapshot.backup_path) \
            if store is not None and snapshot.backup_path else None
    try:
        if work is not None:
            driver, store_r, path = work
            try:
                driver.delete_snapshot_backup(store_r, path)
            except NotImplementedError:
                raise _unsupported("deleting snapshot backups", driver) from None
    except Exception:
        with cloud.db.transaction() as session:
            _move(session, _snapshot(session, snapshot_uuid), before, expect=(SnapshotState.DESTROYING,))
        raise
    with cloud.db.transaction() as session:
        snapshot = _snapshot(session, snapshot_uuid)
        if snapshot.removed is None:  # an Error snapshot was given back when it failed
            limits.release_many(session, snapshot.account_id, {
                limits.ResourceType.SNAPSHOT: 1,
                limits.ResourceType.SECONDARY_STORAGE: snapshot.physical_size if before == SnapshotState.BACKED_UP
                else 0})
        _move(session, snapshot, SnapshotState.DESTROYED, expect=(SnapshotState.DESTROYING,),
              removed=snapshot.removed or utcnow())
        record(session, "SNAPSHOT.DELETE", f"Deleted snapshot {snapshot.name}", caller=caller, resource=snapshot,
               plugins=cloud.plugins)


# -- templates from snapshots and volumes ---------------------------------------------------


def add_template_ref(session: Session, template: Template, store: ImageStore) -> TemplateStoreRef:
    """The store copy a template made from a snapshot or volume will have (in progress)."""
    ref = TemplateStoreRef(template_id=template.id, store_id=store.id,
                           download_state=DownloadState.DOWNLOAD_IN_PROGRESS, download_percent=0)
    session.add(ref)
    session.flush()
    return ref


def check_template_volume(session: Session, volume: Volume) -> None:
    """431 unless a template can be made of the volume now: Ready, on a pool, and its VM
    (if any) Stopped."""
    if volume.removed is not None or volume.state != VS.READY or volume.pool is None:
        raise InvalidParameterError(f"Volume {volume.name} is {volume.state}; a template is made of a Ready volume")
    if volume.vm is not None and volume.vm.state != "Stopped":
        raise InvalidParameterError(f"VM {volume.vm.name} is {volume.vm.state}; a template is made of a stopped "
                                    "VM's volume")


def make_template(cloud, template_uuid: str, *, snapshot_uuid: str | None = None,
                  volume_uuid: str | None = None, caller=None) -> None:
    """Write the template (whose one store copy ``add_template_ref`` made) from a snapshot's
    backup, or from a volume (Snapshotting meanwhile, so it does not change under the copy).
    On failure nothing of it stays on the store, the template is removed, and the error goes up."""
    try:
        with cloud.db.transaction() as session:
            template = session.scalar(select(Template).where(Template.uuid == template_uuid))
            ref = template.stores[0]
            store, tref = ref.store, template_ref(template)
            if snapshot_uuid:
                snapshot = _snapshot(session, snapshot_uuid)
                if snapshot.state != SnapshotState.BACKED_UP:
                    raise InvalidParameterError(f"Snapshot {snapshot.name} is {snapshot.state}, not BackedUp")
                driver = cloud.plugins.image_store(store.provider)
                work = lambda: driver.template_from_snapshot(pool_ref(store), snapshot.backup_path, tref)  # noqa: E731
            else:
                volume = volume_ops._volume(session, volume_uuid)
                check_template_volume(session, volume)
                volume_ops.move(session, volume, Ev.SNAPSHOT)
                pool, spec = volume.pool, volume_ops._spec(session, volume)
                driver = cloud.plugins.primary_storage(pool.provider)
                work = lambda: driver.template_from_volume(pool_ref(pool), spec, pool_ref(store), tref)  # noqa: E731
            ref_id = ref.id
    except StratoError:
        _drop_template(cloud, template_uuid)
        raise
    try:
        try:
            result = work()
        except NotImplementedError:
            raise _unsupported("making templates", driver) from None
    except Exception:
        if volume_uuid:
            with cloud.db.transaction() as session:
                volume_ops.move(session, volume_ops._volume(session, volume_uuid), Ev.FAILED)
        _drop_template(cloud, template_uuid)
        raise
    with cloud.db.transaction() as session:
        if volume_uuid:
            volume_ops.move(session, volume_ops._volume(session, volume_uuid), Ev.SUCCEEDED)
        ref = session.get(TemplateStoreRef, ref_id)
        ref.download_state, ref.download_percent = DownloadState.DOWNLOADED, 100
        ref.install_path, ref.size = result.install_path, result.size_bytes or 0
        template = session.get(Template, ref.template_id)
        template.size, template.format = result.size_bytes or template.size, result.format or template.format
        account_template_copy(session, template, ref)
        record(session, "TEMPLATE.CREATE", f"Created template {template.name} from "
               + (f"snapshot {snapshot_uuid}" if snapshot_uuid else f"volume {volume_uuid}"), caller=caller,
               resource=template, plugins=cloud.plugins)


def _drop_template(cloud, template_uuid: str) -> None:
    """A template whose making failed: removed, no longer counted against its owner."""
    with cloud.db.transaction() as session:
        template = session.scalar(select(Template).where(Template.uuid == template_uuid))
        for ref in list(template.stores):
            session.delete(ref)
        template.removed, template.state = utcnow(), "Inactive"
        limits.release(session, template.account_id, limits.ResourceType.TEMPLATE, 1)


def account_template_copy(session: Session, template: Template, ref: TemplateStoreRef) -> None:
    """A store copy of a template that is complete counts against its owner's secondary
    storage and starts template usage, as a finished download does (``templates``)."""
    owner = session.get(Account, template.account_id)
    limits.reserve_many(session, owner, {limits.ResourceType.SECONDARY_STORAGE: ref.size}, check=False)
    zone = ref.store.zone
    usage.record(session, "TEMPLATE.CREATE", account_id=template.account_id, domain_id=template.domain_id,
                 resource_type="Template", resource_uuid=template.uuid, resource_name=template.name,
                 zone_uuid=zone.uuid if zone else None, size=ref.size)


# -- policies ---------------------------------------------------------------------------------


def parse_schedule(interval: str, schedule: str) -> tuple[int, ...]:
    """CloudStack's schedule for ``interval``: MM (hourly), MM:HH (daily), MM:HH:DD (weekly:
    DD 1-7, Sunday first; monthly: DD 1-28). 431 naming what is wrong."""
    shape = {IntervalType.HOURLY: ("minute",), IntervalType.DAILY: ("minute", "hour"),
             IntervalType.WEEKLY: ("minute", "hour", "day of the week"),
             IntervalType.MONTHLY: ("minute", "hour", "day of the month")}[interval]
    parts = schedule.strip().split(":")
    if len(parts) != len(shape) or not all(p.isdigit() for p in parts):
        raise InvalidParameterError(f"schedule {schedule!r} must be {':'.join(('MM', 'HH', 'DD')[:len(shape)])} "
                                    f"for an {interval} policy")
    values = tuple(int(p) for p in parts)
    limits = {"minute": (0, 59), "hour": (0, 23), "day of the week": (1, 7), "day of the month": (1, 28)}
    for name, value in zip(shape, values):
        low, high = limits[name]
        if not low <= value <= high:
            raise InvalidParameterError(f"schedule {schedule!r}: the {name} must be from {low} to {high}")
    return values


def parse_timezone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidParameterError(f"timezone {name!r} is not a time zone name such as UTC or Europe/Berlin") \
            from None


def next_run(interval: str, schedule: str, timezone: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after ``after`` (naive UTC) the schedule names, in its time
    zone; returned as naive UTC."""
    values = parse_schedule(interval, schedule)
    zone = parse_timezone(timezone)
    now = after.replace(tzinfo=dt.timezone.utc).astimezone(zone)
    minute = values[0]

    def at(day: dt.date, hour: int) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone)

    if interval == IntervalType.HOURLY:
        candidate = now.replace(minute=minute, second=0, microsecond=0)
        if candidate <= now:
            candidate = (candidate.astimezone(dt.timezone.utc) + dt.timedelta(hours=1)).astimezone(zone)
    elif interval == IntervalType.DAILY:
        candidate = at(now.date(), values[1])
        if candidate <= now:
            candidate = at(now.date() + dt.timedelta(days=1), values[1])
    elif interval == IntervalType.WEEKLY:
        weekday = (now.weekday() + 1) % 7 + 1  # CloudStack's day numbers: Sunday 1 .. Saturday 7
        candidate = at(now.date() + dt.timedelta(days=(values[2] - weekday) % 7), values[1])
        if candidate <= now:
            candidate = at(candidate.date() + dt.timedelta(days=7), values[1])
    else:
        candidate = at(now.date().replace(day=values[2]), values[1])
        if candidate <= now:
            year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
            candidate = at(dt.date(year, month, values[2]), values[1])
    return candidate.astimezone(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def set_policy(cloud, session: Session, volume: Volume, *, interval: str, schedule: str, timezone: str,
               max_snaps: int, display: bool = True) -> SnapshotPolicy:
    """createSnapshotPolicy: the volume's policy for ``interval``, made or (when it has one
    already, as CloudStack) updated, in the command's transaction. 431 for a bad interval,
    schedule, time zone or maxsnaps, or a volume that cannot be snapshotted."""
    interval = interval.strip().upper()
    if interval not in IntervalType.ORDER:
        raise InvalidParameterError(f"intervaltype must be one of {', '.join(IntervalType.ORDER)}")
    if not 1 <= max_snaps <= MAX_SNAPS[interval]:
        raise InvalidParameterError(f"maxsnaps must be from 1 to {MAX_SNAPS[interval]} for an {interval} policy")
    check_volume(cloud, session, volume)
    when = next_run(interval, schedule, timezone, utcnow())
    policy = session.scalar(select(SnapshotPolicy).where(SnapshotPolicy.volume_id == volume.id,
                                                         SnapshotPolicy.interval_type == interval))
    if policy is None:
        policy = SnapshotPolicy(volume_id=volume.id, account_id=volume.account_id, domain_id=volume.domain_id,
                                interval_type=interval)
        session.add(policy)
    policy.schedule, policy.timezone, policy.max_snaps = schedule.strip(), timezone.strip(), max_snaps
    policy.display, policy.next_run = display, when
    session.flush()
    return policy


def delete_policy(session: Session, policy: SnapshotPolicy) -> None:
    """Delete a policy; the snapshots it took stay (as manual ones of no policy)."""
    session.execute(update(Snapshot).where(Snapshot.policy_id == policy.id).values(policy_id=None)
                    .execution_options(synchronize_session=False))
    session.delete(policy)


def run_due_policies(cloud, now: dt.datetime | None = None) -> list[str]:
    """Queue a snapshot for each policy whose time has come; returns the snapshots' uuids.
    A policy whose volume cannot be snapshotted now is skipped until its next run (with
    a WARN event saying why); one whose volume is gone is deleted."""
    now = now or utcnow()
    with cloud.db.transaction() as session:
        due = [(p.id, p.next_run) for p in session.scalars(
            select(SnapshotPolicy).where(SnapshotPolicy.next_run <= now).order_by(SnapshotPolicy.next_run))]
    queued = []
    for policy_id, when in due:
        with cloud.db.transaction() as session:
            policy = session.get(SnapshotPolicy, policy_id)
            if policy is None:
                continue
            if policy.volume.removed is not None:  # a root volume gone with its VM: so is its policy
                delete_policy(session, policy)
                continue
            following = next_run(policy.interval_type, policy.schedule, policy.timezone, now)
            claimed = session.execute(update(SnapshotPolicy).where(
                SnapshotPolicy.id == policy_id, SnapshotPolicy.next_run == when).values(next_run=following)
                .execution_options(synchronize_session=False)).rowcount
        if not claimed:
            continue  # another management server took this run
        try:
            with cloud.db.transaction() as session:  # its own: a refusal (a limit) rolls back whole
                policy = session.get(SnapshotPolicy, policy_id)
                volume = policy.volume
                snapshot = allocate(cloud, session, volume, policy=policy)
                cloud.jobs.submit(session, command="createSnapshot", handler="snapshot.policy",
                                  params={"snapshot": snapshot.uuid, "volume": volume.uuid}, caller=None,
                                  instance_type="Snapshot", instance_uuid=snapshot.uuid)
                queued.append(snapshot.uuid)
        except StratoError as exc:
            with cloud.db.transaction() as session:
                policy = session.get(SnapshotPolicy, policy_id)
                record(session, "SNAPSHOT.CREATE", f"Skipped the {policy.interval_type} snapshot of volume "
                       f"{policy.volume.name}: {exc.message}", resource=policy.volume, level="WARN",
                       plugins=cloud.plugins)
    return queued


@job_handler("snapshot.policy")
def _policy_job(job) -> dict:
    take(job.cloud, job.params["snapshot"])
    with job.transaction() as session:
        snapshot = _snapshot(session, job.params["snapshot"])
        return {"snapshot": {"id": snapshot.uuid, "name": snapshot.name, "state": snapshot.state}}


def retain(cloud, policy_id: int) -> list[str]:
    """Delete the policy's BackedUp snapshots beyond its ``maxsnaps``, oldest first; returns
    their uuids. A deletion that fails is logged and reported as a WARN event, and retried
    after the policy's next snapshot."""
    with cloud.db.transaction() as session:
        policy = session.get(SnapshotPolicy, policy_id)
        if policy is None:
            return []
        kept = list(session.scalars(select(Snapshot.uuid).where(
            Snapshot.policy_id == policy_id, Snapshot.removed.is_(None), Snapshot.state == SnapshotState.BACKED_UP)
            .order_by(Snapshot.created.desc(), Snapshot.id.desc())))
        excess = kept[policy.max_snaps:]
    for snapshot_uuid in excess:
        try:
            delete(cloud, snapshot_uuid)
        except StratoError as exc:
            log.warning("retention could not delete snapshot %s: %s", snapshot_uuid, exc.message)
            with cloud.db.transaction() as session:
                record(session, "SNAPSHOT.DELETE", f"Retention could not delete snapshot {snapshot_uuid}: "
                       f"{exc.message}", resource=_snapshot(session, snapshot_uuid), level="WARN",
                       plugins=cloud.plugins)
    return excess


# -- after a crash ----------------------------------------------------------------------------


def settle(cloud) -> dict[str, str]:
    """Snapshots no live job works on: Allocated or BackingUp ones failed (Error, removed; a
    partial backup a crash left on the store is not looked for), Destroying ones deleted
    again. Returns {snapshot uuid: new state}."""
    with cloud.db.transaction() as session:
        stuck = [(s.uuid, s.state) for s in session.scalars(select(Snapshot).where(
            Snapshot.removed.is_(None), Snapshot.state.in_(
                [SnapshotState.ALLOCATED, SnapshotState.BACKING_UP, SnapshotState.DESTROYING])))]
        busy = volume_ops.busy_uuids(session)
    settled = {}
    for snapshot_uuid, state in stuck:
        if snapshot_uuid in busy:
            continue
        try:
            if state == SnapshotState.DESTROYING:
                with cloud.db.transaction() as session:
                    _move(session, _snapshot(session, snapshot_uuid), SnapshotState.BACKED_UP,
                          expect=(SnapshotState.DESTROYING,))
                delete(cloud, snapshot_uuid)
                settled[snapshot_uuid] = SnapshotState.DESTROYED
            else:
                _failed(cloud, snapshot_uuid, "the management server or worker taking it stopped")
                settled[snapshot_uuid] = SnapshotState.ERROR
        except StratoError as exc:
            log.warning("could not settle snapshot %s (%s) yet: %s", snapshot_uuid, state, exc.message)
    return settled


def _count_snapshots(session: Session, account_id: int) -> int:
    return session.scalar(select(func.count(Snapshot.id)).where(Snapshot.account_id == account_id,
                                                                Snapshot.removed.is_(None)))


def _snapshot_bytes(session: Session, account_id: int) -> int:
    """What the live snapshots hold on image stores: a backup's size, or the volume's while
    it is taken (as ``allocate`` reserves)."""
    held = case((Snapshot.state.in_((SnapshotState.ALLOCATED, SnapshotState.BACKING_UP)), Snapshot.size),
                else_=Snapshot.physical_size)
    return session.scalar(select(func.coalesce(func.sum(held), 0)).where(
        Snapshot.account_id == account_id, Snapshot.removed.is_(None)))


limits.register_counter(limits.ResourceType.SNAPSHOT, _count_snapshots)
limits.register_counter(limits.ResourceType.SECONDARY_STORAGE, _snapshot_bytes)


# -- account deletion -------------------------------------------------------------------------


def delete_policies_of(cloud, account_id: int) -> None:
    """deleteAccount, before its VMs go: the account's snapshot policies, so no scheduled
    snapshot starts while the rest is removed."""
    with cloud.db.transaction() as session:
        for policy in session.scalars(select(SnapshotPolicy).where(SnapshotPolicy.account_id == account_id)).all():
            record(session, "SNAPSHOTPOLICY.DELETE", f"Deleted the {policy.interval_type} snapshot policy of "
                   f"volume {policy.volume.name}", resource=policy, plugins=cloud.plugins)
            delete_policy(session, policy)


def delete_snapshots_of(cloud, account_id: int) -> None:
    """deleteAccount: every live snapshot of the account, its backup removed from the image
    store (``delete``: limits and usage given back). One still being backed up stops the
    deletion (536; deleting the account again carries on)."""
    with cloud.db.transaction() as session:
        uuids = list(session.scalars(select(Snapshot.uuid).where(
            Snapshot.account_id == account_id, Snapshot.removed.is_(None)).order_by(Snapshot.id)))
    for snapshot_uuid in uuids:
        delete(cloud, snapshot_uuid)


identity.register_cleaner("snapshot policies", delete_policies_of, before="vms")
identity.register_cleaner("snapshots", delete_snapshots_of, before="volumes")


#: the periodic pass's storage steps, in order (each one logged and retried on its own)
STEPS = (("snapshot policies", run_due_policies), ("settle volumes", volume_ops.settle),
         ("settle snapshots", settle), ("pools' copies of deleted templates", volume_ops.collect_template_copies))


def storage_pass(cloud) -> None:
    """Every storage step once, in order (tests; the periodic pass runs ``STEPS`` itself)."""
    for _, step in STEPS:
        step(cloud)


__all__ = ["STEPS", "storage_pass", "MAX_SNAPS", "choose_store", "check_volume", "allocate", "take", "check_revert",
           "revert",
           "check_delete", "delete", "add_template_ref", "check_template_volume", "make_template",
           "parse_schedule", "parse_timezone", "next_run", "set_policy", "delete_policy", "run_due_policies",
           "retain", "settle", "delete_policies_of", "delete_snapshots_of"]
