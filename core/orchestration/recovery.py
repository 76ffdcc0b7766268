"""Settling what a dead process left behind, and keeping the database in step with the hosts.

``recover`` runs at start-up: dead jobs are failed, unclaimed ones re-queued
(``JobQueue.recover``), every VM left in a transitional state with no live
job is settled from what its host reports, and template downloads no job carries
on end in an error; the periodic pass does the same while the server runs.
``sync_power_states`` runs periodically: a VM that powered itself off becomes Stopped; a VM running
where the database has it stopped becomes Running; a VM the host runs but
Strato does not know is reported as an event, never destroyed.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from ..drivers import PowerState
from ..errors import StratoError
from ..events import record
from ..model import (
    AsyncJob,
    CapacityType,
    DownloadState,
    Host,
    HostStatus,
    JobStatus,
    Template,
    TemplateStoreRef,
    VirtualMachine,
    utcnow,
)
from . import capacity, vm as vm_ops
from .vm_states import TRANSITIONAL, Event, State, transition

log = logging.getLogger(__name__)


def recover(cloud) -> dict:
    """Returns what was settled: {"jobs": [...failed job uuids], "vms": {vm uuid: new state},
    "templates": [...uuids of templates whose download was cut short], "networks": [...uuids
    of networks whose router change was cut short]}."""
    from .networking import settle_interrupted

    failed = cloud.jobs.recover()
    return {"jobs": failed, "vms": settle_transitional_vms(cloud), "templates": settle_template_downloads(cloud),
            "networks": settle_interrupted(cloud)}


def _busy(session) -> set[str]:
    """The resources a pending job is working on (their uuids)."""
    return set(session.scalars(select(AsyncJob.instance_uuid).where(
        AsyncJob.status == JobStatus.PENDING, AsyncJob.instance_uuid.is_not(None))))


def settle_template_downloads(cloud) -> list[str]:
    """A download no pending job carries on (its job died) ends in DOWNLOAD_ERROR saying
    so, rather than showing "in progress" for ever. Returns the templates' uuids."""
    unfinished = (DownloadState.NOT_DOWNLOADED, DownloadState.DOWNLOAD_IN_PROGRESS)
    settled: set[str] = set()
    with cloud.db.transaction() as session:
        busy = _busy(session)
        rows = session.execute(select(TemplateStoreRef, Template.uuid).join(
            Template, Template.id == TemplateStoreRef.template_id).where(
            TemplateStoreRef.download_state.in_(unfinished), Template.removed.is_(None))).all()
        for ref, template_uuid in rows:
            if template_uuid in busy:
                continue
            ref.download_state = DownloadState.DOWNLOAD_ERROR
            ref.error = ("The download was interrupted: the management server or worker doing it stopped; "
                         "delete the template and register it again")
            settled.add(template_uuid)
    return sorted(settled)


def settle_transitional_vms(cloud) -> dict[str, str]:
    with cloud.db.transaction() as session:
        busy = _busy(session)
        stuck = [(vm.uuid, vm.state) for vm in session.scalars(select(VirtualMachine).where(
            VirtualMachine.state.in_([s.value for s in TRANSITIONAL]), VirtualMachine.removed.is_(None)))
            if vm.uuid not in busy]
    settled = {}
    for vm_uuid, state in stuck:
        try:
            settled[vm_uuid] = _settle(cloud, vm_uuid, state)
        except StratoError as exc:  # host unreachable: left for the next periodic pass
            log.warning("could not settle VM %s (%s) yet: %s", vm_uuid, state, exc.message)
    return settled


def _power_state(cloud, vm: VirtualMachine) -> PowerState:
    host = vm.host
    if host is None:
        return PowerState.MISSING
    driver = cloud.plugins.hypervisor(host.hypervisor)
    from .refs import host_ref

    return driver.power_states(host_ref(host)).get(vm.instance_name, PowerState.MISSING)


def _settle(cloud, vm_uuid: str, state: str) -> str:
    if state == State.MIGRATING.value:
        return _settle_migration(cloud, vm_uuid)
    with cloud.db.transaction() as session:
        vm = vm_ops._vm(session, vm_uuid)
        power = _power_state(cloud, vm) if state != State.EXPUNGING.value else PowerState.MISSING
    if state == State.EXPUNGING.value:
        vm_ops.expunge_vm(cloud, vm_uuid)
        return "Expunged"
    if power == PowerState.ON:
        with cloud.db.transaction() as session:
            vm = vm_ops._vm(session, vm_uuid)
            transition(session, vm, Event.FOLLOW_AGENT_POWER_ON, cloud.plugins, last_host_id=vm.host_id)
            vm.power_state = PowerState.ON.value
            return vm.state
    if state == State.STARTING.value:
        vm_ops._undo_start(cloud, vm_uuid, first_deploy=False)
    else:
        vm_ops._stopped(cloud, vm_uuid, Event.FOLLOW_AGENT_POWER_OFF, description="Found powered off:")
    return State.STOPPED.value


def _settle_migration(cloud, vm_uuid: str) -> str:
    """A migration whose worker died (``migrate_vm`` records the destination's id in the
    VM's ``migration_destination`` detail with the reservation there): the VM is Running on
    the destination when that host runs it and the source does not, else on the source;
    the other host's reservation is given back. A source that does not answer is taken to
    run it still (it did when the migration began) unless the destination does; when the
    source has it off or missing and the destination cannot be asked, nothing is decided
    (a ``StratoError``: the next pass tries again). Off on both: Stopped, nothing held."""
    from .refs import host_ref

    with cloud.db.transaction() as session:
        vm = vm_ops._vm(session, vm_uuid)
        name, source_name = vm.instance_name, vm.host.name
        destination = session.get(Host, (vm.details or {}).get("migration_destination") or 0)
        destination_id, destination_name = (destination.id, destination.name) if destination else (None, None)
        try:
            source_power = _power_state(cloud, vm)
        except StratoError as exc:
            log.warning("the source host of migrating VM %s does not answer (%s)", name, exc.message)
            source_power = None
        landed = False
        if source_power != PowerState.ON and destination is not None:
            report = cloud.plugins.hypervisor(destination.hypervisor).power_states(host_ref(destination))
            landed = report.get(name) == PowerState.ON
    with cloud.db.transaction() as session:
        vm = vm_ops._vm(session, vm_uuid)
        source_id = vm.host_id
        keep, drop = (destination_id, source_id) if landed else (source_id, destination_id)
        if drop is not None:
            capacity.release(session, CapacityType.CPU, vm.reserved_cpu, host_id=drop)
            capacity.release(session, CapacityType.MEMORY, vm.reserved_memory, host_id=drop)
        vm.details = {k: v for k, v in (vm.details or {}).items() if k != "migration_destination"}
        if landed or source_power in (PowerState.ON, None):
            event = Event.AGENT_REPORT_MIGRATED if landed else Event.OPERATION_FAILED
            transition(session, vm, event, cloud.plugins, host_id=keep, last_host_id=source_id)
            vm.power_state = PowerState.ON.value
            where = destination_name if landed else source_name
            # the owner sees the event; the host is for the log (CloudStack shows users no host)
            log.info("VM %s was left migrating; it runs on host %s", vm.name, where)
            record(session, "VM.MIGRATE", f"VM {vm.name} was left migrating by a server that stopped; it runs "
                   "again", resource=vm, plugins=cloud.plugins)
            return vm.state
    vm_ops._stopped(cloud, vm_uuid, Event.FOLLOW_AGENT_POWER_OFF, description="Found powered off:")
    return State.STOPPED.value


def sync_power_states(cloud) -> None:
    """Compare every Up host's report with the database and follow the host."""
    with cloud.db.transaction() as session:
        hosts = session.scalars(select(Host).where(Host.removed.is_(None), Host.status == HostStatus.UP)).all()
    for host in hosts:
        try:
            _sync_host(cloud, host)
        except StratoError as exc:
            log.warning("power-state sync of host %s failed: %s", host.name, exc.message)


def _sync_host(cloud, host: Host) -> None:
    from .refs import host_ref

    report = cloud.plugins.hypervisor(host.hypervisor).power_states(host_ref(host))
    with cloud.db.transaction() as session:
        busy = set(session.scalars(select(AsyncJob.instance_uuid).where(
            AsyncJob.status == JobStatus.PENDING, AsyncJob.instance_uuid.is_not(None))))
        ours = session.scalars(select(VirtualMachine).where(
            VirtualMachine.instance_name.in_(list(report)) | (VirtualMachine.host_id == host.id),
            VirtualMachine.removed.is_(None))).all()
        known = {vm.instance_name for vm in ours}
        went_off = [vm.uuid for vm in ours if vm.host_id == host.id and vm.state == State.RUNNING.value
                    and report.get(vm.instance_name, PowerState.MISSING) in (PowerState.OFF, PowerState.MISSING)
                    and vm.uuid not in busy]
        came_on = [vm for vm in ours if vm.state == State.STOPPED.value and vm.uuid not in busy
                   and report.get(vm.instance_name) == PowerState.ON]
        for vm in came_on:
            offering = vm.service_offering
            cpu, memory = offering.cpu_number * offering.cpu_speed, offering.memory * 1024 * 1024
            # The VM already runs there: account for it whatever the limit, so capacity tells the truth.
            capacity.reserve(session, CapacityType.CPU, cpu, 2**62, host_id=host.id)
            capacity.reserve(session, CapacityType.MEMORY, memory, 2**62, host_id=host.id)
            transition(session, vm, Event.FOLLOW_AGENT_POWER_ON, cloud.plugins, host_id=host.id,
                       last_host_id=host.id, reserved_cpu=cpu, reserved_memory=memory)
            vm.power_state = PowerState.ON.value
            log.info("VM %s was found running on host %s", vm.name, host.name)
            record(session, "VM.START", f"VM {vm.name} was found running", resource=vm,
                   plugins=cloud.plugins)
        for name in sorted(set(report) - known):
            _report_unknown(session, cloud, host, name)
    for vm_uuid in went_off:
        vm_ops._stopped(cloud, vm_uuid, Event.FOLLOW_AGENT_POWER_OFF, description="Found powered off:")


def _report_unknown(session, cloud, host: Host, name: str) -> None:
    """One event a day per unknown VM: enough to notice, not enough to flood."""
    from ..model import Event as EventRow

    since = utcnow() - dt.timedelta(days=1)
    description = f"Host {host.name} runs VM {name}, which Strato does not manage; it was left alone"
    if session.scalar(select(EventRow.id).where(EventRow.description == description, EventRow.created >= since)):
        return
    record(session, "VM.UNMANAGED", description, level="WARN", plugins=cloud.plugins)
