"""Usage accounting: usage events as resources change, and the usage job that turns them
into records per account per period (CloudStack's usage server, in-process).

Events come from three places, none of them inside the VM code:

* ``UsageRecorder.strato_vm_state_changed``: VM.START / VM.STOP / VM.DESTROY, and
  VM.CREATE again when a destroyed VM is recovered;
* ``UsageRecorder.strato_event_recorded``: the audit events of ``USAGE_OF_EVENT``
  (VM.CREATE with its root volume, VM.UPGRADE, VM.EXPUNGE, VOLUME.*, SNAPSHOT.*):
  the row the event names is read for owner, zone, size and offering;
* direct calls of ``record`` where no audit event fits (templates: a download ending, a
  deletion; network byte counters read by ``collect_network_usage``; public addresses:
  NET.IPASSIGN / NET.IPRELEASE by ``networking.acquire_public_ip`` / ``release_public_ip`` in
  the transaction that takes or frees the address, for every path: associate, a network's
  source-NAT address, network and account deletion).

Both hooks run after the change has committed; the usage event is stamped with the audit
event's own time, or the hook's time for state changes. ``generate`` is idempotent: the
records of a period are replaced each time it runs for that period.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Iterable

import pluggy
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..globalconfig import ConfigKey
from ..model import (
    Account,
    Domain,
    Event,
    ServiceOffering,
    Template,
    UsageEvent,
    UsageJob,
    UsageNetworkCounter,
    UsageRecord,
    VirtualMachine,
    Zone,
    utcnow,
)
from ..model.base import Base

log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("strato")


class UsageType:
    """CloudStack's UsageTypes numbers, with its names and descriptions (``listUsageTypes``)."""

    RUNNING_VM = 1
    ALLOCATED_VM = 2
    IP_ADDRESS = 3
    NETWORK_BYTES_SENT = 4
    NETWORK_BYTES_RECEIVED = 5
    VOLUME = 6
    TEMPLATE = 7
    ISO = 8
    SNAPSHOT = 9
    VM_SNAPSHOT = 25

    ALL = (
        (1, "RUNNING_VM", "Running Vm Usage"), (2, "ALLOCATED_VM", "Allocated Vm Usage"),
        (3, "IP_ADDRESS", "IP Address Usage"), (4, "NETWORK_BYTES_SENT", "Network Usage (Bytes Sent)"),
        (5, "NETWORK_BYTES_RECEIVED", "Network Usage (Bytes Received)"), (6, "VOLUME", "Volume Usage"),
        (7, "TEMPLATE", "Template Usage"), (8, "ISO", "ISO Usage"), (9, "SNAPSHOT", "Snapshot Usage"),
        (10, "SECURITY_GROUP", "Security Group Usage"), (11, "LOAD_BALANCER_POLICY", "Load Balancer Usage"),
        (12, "PORT_FORWARDING_RULE", "Port Forwarding Usage"), (13, "NETWORK_OFFERING", "Network Offering Usage"),
        (14, "VPN_USERS", "VPN users usage"), (21, "VM_DISK_IO_READ", "VM Disk usage(I/O Read)"),
        (22, "VM_DISK_IO_WRITE", "VM Disk usage(I/O Write)"), (23, "VM_DISK_BYTES_READ", "VM Disk usage(Bytes Read)"),
        (24, "VM_DISK_BYTES_WRITE", "VM Disk usage(Bytes Write)"), (25, "VM_SNAPSHOT", "VM Snapshot storage usage"),
        (26, "VOLUME_SECONDARY", "Volume on secondary storage usage"),
        (27, "VM_SNAPSHOT_ON_PRIMARY", "VM Snapshot on primary storage usage"),
        (28, "BACKUP", "Backup storage usage"), (29, "BUCKET", "Bucket storage usage"),
    )


CONFIG_KEYS = [
    ConfigKey("usage.stats.job.aggregation.range", "Usage", "1440",
              "The period, in minutes, usage records are made for (1440: one record per resource per day, UTC)",
              "Integer"),
    ConfigKey("vm.network.stats.interval", "Usage", "300",
              "Seconds between readings of a running VM's NIC byte counters for network usage (0: never)", "Integer"),
]

#: audit event type -> the usage event it implies (read from the row the event names)
USAGE_OF_EVENT = {
    "VM.CREATE": "VM.CREATE", "VM.UPGRADE": "VM.UPGRADE",
    "VOLUME.CREATE": "VOLUME.CREATE", "VOLUME.DELETE": "VOLUME.DELETE", "VOLUME.RESIZE": "VOLUME.RESIZE",
    "SNAPSHOT.CREATE": "SNAPSHOT.CREATE", "SNAPSHOT.DELETE": "SNAPSHOT.DELETE",
    "VM.EXPUNGE": "VOLUME.DELETE",  # the root volume goes with its VM
}

#: usage events that open an interval, change what is held (close and reopen), or close it
OPENS = {"VM.CREATE": "allocated", "VM.START": "running", "VOLUME.CREATE": "volume", "TEMPLATE.CREATE": "template",
         "SNAPSHOT.CREATE": "snapshot", "NET.IPASSIGN": "ip", "VMSNAPSHOT.CREATE": "vmsnapshot"}
CHANGES = {"VM.UPGRADE": ("allocated", "running"), "VOLUME.RESIZE": ("volume",)}
CLOSES = {"VM.DESTROY": ("allocated", "running"), "VM.STOP": ("running",), "VOLUME.DELETE": ("volume",),
          "TEMPLATE.DELETE": ("template",), "SNAPSHOT.DELETE": ("snapshot",), "NET.IPRELEASE": ("ip",),
          "VMSNAPSHOT.DELETE": ("vmsnapshot",)}
INTERVAL_TYPES = {"allocated": UsageType.ALLOCATED_VM, "running": UsageType.RUNNING_VM, "volume": UsageType.VOLUME,
                  "template": UsageType.TEMPLATE, "snapshot": UsageType.SNAPSHOT, "ip": UsageType.IP_ADDRESS,
                  "vmsnapshot": UsageType.VM_SNAPSHOT}


# -- recording -----------------------------------------------------------------------


def record(session: Session, event_type: str, *, account_id: int, domain_id: int, resource_type: str,
           resource_uuid: str, resource_name: str | None = None, zone_uuid: str | None = None,
           offering_uuid: str | None = None, template_uuid: str | None = None, size: int | None = None,
           bytes_sent: int = 0, bytes_received: int = 0, details: dict | None = None,
           at: dt.datetime | None = None) -> UsageEvent:
    """Add a usage event to ``session``'s transaction, at ``at`` (naive UTC; default now)."""
    row = UsageEvent(event_type=event_type, created=at or utcnow(), account_id=account_id, domain_id=domain_id,
                     zone_uuid=zone_uuid, resource_type=resource_type, resource_uuid=resource_uuid,
                     resource_name=resource_name, offering_uuid=offering_uuid, template_uuid=template_uuid,
                     size=size, bytes_sent=bytes_sent, bytes_received=bytes_received, details=details or {})
    session.add(row)
    return row


def record_vm(session: Session, event_type: str, vm: VirtualMachine, *, at: dt.datetime | None = None) -> UsageEvent:
    """A usage event of ``vm`` with its current offering, template and zone."""
    offering = session.get(ServiceOffering, vm.service_offering_id)
    template = session.get(Template, vm.template_id)
    zone = session.get(Zone, vm.zone_id)
    return record(session, event_type, account_id=vm.account_id, domain_id=vm.domain_id,
                  resource_type="VirtualMachine", resource_uuid=vm.uuid, resource_name=vm.name,
                  zone_uuid=zone.uuid if zone else None, offering_uuid=offering.uuid,
                  template_uuid=template.uuid if template else None, at=at,
                  details={"cpunumber": offering.cpu_number, "cpuspeed": offering.cpu_speed,
                           "memory": offering.memory, "hypervisor": vm.hypervisor or (template.hypervisor if template
                                                                                       else None)})


def record_row(session: Session, event_type: str, row, *, at: dt.datetime | None = None) -> UsageEvent | None:
    """A usage event of any owned row (volume, snapshot, public IP, template): owner, zone,
    name, size and offering are read from the attributes it has. None when it has no owner."""
    if isinstance(row, VirtualMachine):
        return record_vm(session, event_type, row, at=at)
    account_id = getattr(row, "account_id", None)
    if account_id is None:
        return None
    domain_id = getattr(row, "domain_id", None) or session.get(Account, account_id).domain_id
    zone_id = getattr(row, "zone_id", None)
    zone = session.get(Zone, zone_id) if zone_id else None
    offering_uuid = template_uuid = None
    if getattr(row, "disk_offering_id", None):
        from ..model import DiskOffering

        offering = session.get(DiskOffering, row.disk_offering_id)
        offering_uuid = offering.uuid if offering else None
    if getattr(row, "template_id", None):
        template = session.get(Template, row.template_id)
        template_uuid = template.uuid if template else None
    name = getattr(row, "name", None) or getattr(row, "address", None)
    size = getattr(row, "physical_size", None) or getattr(row, "size", None)
    details = {"address": row.address} if hasattr(row, "address") else {}
    if hasattr(row, "is_source_nat"):
        details["issourcenat"] = bool(row.is_source_nat)
    return record(session, event_type, account_id=account_id, domain_id=domain_id,
                  resource_type=_usage_resource_type(row), resource_uuid=row.uuid, resource_name=name,
                  zone_uuid=zone.uuid if zone else None, offering_uuid=offering_uuid, template_uuid=template_uuid,
                  size=size, details=details, at=at)


def _usage_resource_type(row) -> str:
    name = type(row).__name__
    return {"PublicIpAddress": "IpAddress"}.get(name, name)


def _row_by_class_name(session: Session, class_name: str | None, uuid: str | None):
    if not class_name or not uuid:
        return None
    model = Base.registry._class_registry.get(class_name)
    if model is None or not hasattr(model, "uuid"):
        return None
    return session.scalar(select(model).where(model.uuid == uuid))


class UsageRecorder:
    """The built-in plugin that turns VM state changes and audit events into usage events."""

    def __init__(self, cloud):
        self.cloud = cloud

    @hookimpl
    def strato_configuration_keys(self):
        return CONFIG_KEYS

    @hookimpl
    def strato_vm_state_changed(self, vm_uuid, old_state, new_state, reason):
        kind = vm_usage_event(old_state, new_state)
        if kind is None:
            return
        with self.cloud.db.transaction() as session:
            vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
            if vm is not None and vm.vm_type == "User":
                record_vm(session, kind, vm)

    @hookimpl
    def strato_event_recorded(self, event):
        kind = USAGE_OF_EVENT.get(event.get("type"))
        if kind is None or event.get("state", "Completed") != "Completed" or event.get("level") == "ERROR":
            return
        with self.cloud.db.transaction() as session:
            audit = session.scalar(select(Event).where(Event.uuid == event["id"]))
            if audit is None:
                return
            row = _row_by_class_name(session, audit.resource_type, audit.resource_uuid)
            if row is None:
                return
            if isinstance(row, VirtualMachine):
                if row.vm_type != "User":
                    return
                root = next((v for v in row.volumes if v.volume_type == "ROOT"), None)
                if kind != "VOLUME.DELETE":
                    record_vm(session, kind, row, at=audit.created)
                if root is not None and kind in ("VM.CREATE", "VOLUME.DELETE"):
                    record_row(session, "VOLUME.CREATE" if kind == "VM.CREATE" else "VOLUME.DELETE", root,
                               at=audit.created)
            elif kind != "VOLUME.DELETE" or audit.event_type != "VM.EXPUNGE":
                record_row(session, kind, row, at=audit.created)


def vm_usage_event(old_state: str, new_state: str) -> str | None:
    """The usage event a VM state change means, or None."""
    if new_state == "Running" and old_state in ("Starting", "Stopped", "Unknown", "Shutdown"):
        return "VM.START"
    if new_state == "Stopped" and old_state in ("Running", "Stopping", "Migrating"):
        return "VM.STOP"
    if new_state in ("Destroyed", "Expunging") and old_state not in ("Destroyed", "Expunging"):
        return "VM.DESTROY"
    if new_state == "Stopped" and old_state == "Destroyed":
        return "VM.CREATE"  # recovered: allocated again
    return None


def install(cloud) -> None:
    """Register the built-in usage recorder and the identity modules' settings as plugins of
    ``cloud`` (before its global settings are read). Replaces a recorder of an earlier cloud."""
    from .. import access
    from . import identity, limits

    pm = cloud.plugins
    for name, plugin in (("core:usage", UsageRecorder(cloud)), ("core:tag-cleanup", identity.TagCleanup(cloud))):
        if pm.pm.get_plugin(name) is not None:
            pm.unregister(name)
        pm.register(plugin, name)
    for name, module in (("core:limits", limits), ("core:access", access)):
        if pm.pm.get_plugin(name) is None:
            pm.register(module, name)


# -- network byte counters ------------------------------------------------------------------


def collect_network_usage(cloud, *, due_only: bool = False) -> int:
    """Read the NIC byte counters of every running VM from its hypervisor and record what they
    grew by since the last reading as NETWORK.USAGE. A counter that went down (the VM was
    restarted) counts from zero. With ``due_only`` (the periodic pass) only VMs last read more
    than ``vm.network.stats.interval`` seconds ago are read. Returns the number of VMs read; a
    host that fails is logged and skipped, to be read next time."""
    from .refs import host_ref, vm_spec

    with cloud.db.transaction() as session:
        query = select(VirtualMachine).where(VirtualMachine.state == "Running", VirtualMachine.removed.is_(None),
                                             VirtualMachine.vm_type == "User", VirtualMachine.host_id.is_not(None))
        if due_only:
            interval = cloud.config.get(session, "vm.network.stats.interval")
            if interval <= 0:
                return 0
            fresh = select(UsageNetworkCounter.vm_uuid).where(
                UsageNetworkCounter.read_at > utcnow() - dt.timedelta(seconds=interval))
            query = query.where(VirtualMachine.uuid.not_in(fresh))
        running = [(vm.uuid, vm.host, vm_spec(session, vm)) for vm in session.scalars(query)]
    read = 0
    for vm_uuid, host, spec in running:
        try:
            stats = cloud.plugins.hypervisor(host.hypervisor).vm_stats(host_ref(host), spec)
        except NotImplementedError:
            continue
        except Exception:
            log.exception("reading the network counters of VM %s failed", vm_uuid)
            continue
        with cloud.db.transaction() as session:
            _network_reading(session, vm_uuid, stats.network_write_bytes, stats.network_read_bytes)
        read += 1
    return read


def _network_reading(session: Session, vm_uuid: str, sent: int, received: int, at: dt.datetime | None = None) -> None:
    now = at or utcnow()
    counter = session.get(UsageNetworkCounter, vm_uuid, with_for_update=True)
    if counter is None:
        counter = UsageNetworkCounter(vm_uuid=vm_uuid, bytes_sent=0, bytes_received=0, read_at=now)
        session.add(counter)
    grown_sent = sent - counter.bytes_sent if sent >= counter.bytes_sent else sent
    grown_received = received - counter.bytes_received if received >= counter.bytes_received else received
    counter.bytes_sent, counter.bytes_received, counter.read_at = sent, received, now
    if grown_sent or grown_received:
        vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
        zone = session.get(Zone, vm.zone_id)
        record(session, "NETWORK.USAGE", account_id=vm.account_id, domain_id=vm.domain_id,
               resource_type="VirtualMachine", resource_uuid=vm.uuid, resource_name=vm.name, zone_uuid=zone.uuid,
               bytes_sent=grown_sent, bytes_received=grown_received, at=now)


# -- the usage job ------------------------------------------------------------------------------


@dataclasses.dataclass
class _Held:
    """What one resource holds during an open interval."""

    since: dt.datetime
    event: UsageEvent


def periods(start: dt.datetime, end: dt.datetime, minutes: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """The whole periods of ``minutes`` (on a grid from 1970-01-01 UTC) that overlap [start, end)."""
    step = dt.timedelta(minutes=max(int(minutes), 1))
    epoch = dt.datetime(1970, 1, 1)
    first = epoch + step * ((start - epoch) // step)
    out = []
    while first < end:
        out.append((first, first + step))
        first += step
    return out


def generate(session: Session, start: dt.datetime, end: dt.datetime, *, minutes: int = 1440,
             domain: Domain | None = None, now: dt.datetime | None = None) -> int:
    """Make the usage records of every whole period in [start, end) that has ended by ``now``,
    for the accounts of ``domain`` and below (default: all). The period's earlier records of
    those accounts are replaced. Returns the number of records written."""
    now = now or utcnow()
    accounts = None
    if domain is not None:
        accounts = set(session.scalars(select(Account.id).join(Domain, Domain.id == Account.domain_id)
                                       .where(Domain.path.startswith(domain.path))))
    written = 0
    for period_start, period_end in periods(start, end, minutes):
        if period_end > now:
            break
        replaced = delete(UsageRecord).where(UsageRecord.start_date == period_start,
                                             UsageRecord.end_date == period_end)
        if accounts is not None:
            replaced = replaced.where(UsageRecord.account_id.in_(accounts))
        session.execute(replaced)
        records = _records_for(session, period_start, period_end, accounts)
        session.add_all(records)
        written += len(records)
    session.flush()
    return written


def generate_due(cloud, now: dt.datetime | None = None) -> int:
    """The periodic usage job: make the records of every period that has ended since the last
    run (from the first usage event on the first time). Returns the records written."""
    now = now or utcnow()
    with cloud.db.transaction() as session:
        minutes = cloud.config.get(session, "usage.stats.job.aggregation.range")
        last = session.scalar(select(UsageJob.end_date).order_by(UsageJob.end_date.desc()).limit(1))
        start = last or session.scalar(select(UsageEvent.created).order_by(UsageEvent.created).limit(1))
        if start is None:
            return 0
        due = [period for period in periods(start, now, minutes) if period[1] <= now]
        if not due:
            return 0
        written = generate(session, due[0][0], due[-1][1], minutes=minutes, now=now)
        session.add(UsageJob(start_date=due[0][0], end_date=due[-1][1], records=written, created=now))
        return written


def _records_for(session: Session, start: dt.datetime, end: dt.datetime, accounts: set[int] | None) -> list[UsageRecord]:
    query = select(UsageEvent).where(UsageEvent.created < end)
    if accounts is not None:
        query = query.where(UsageEvent.account_id.in_(accounts))
    events = list(session.scalars(query.order_by(UsageEvent.resource_type, UsageEvent.resource_uuid,
                                                 UsageEvent.created, UsageEvent.id)))
    totals: dict[tuple, list] = {}  # key -> [seconds, event describing it]
    network: dict[tuple, list] = {}
    for key_events in _by_resource(events):
        open_: dict[tuple[str, str | None], _Held] = {}
        for event in key_events:
            if event.event_type == "NETWORK.USAGE":
                if start <= event.created < end:
                    entry = network.setdefault((event.account_id, event.zone_uuid, event.resource_uuid), [0, 0, event])
                    entry[0] += event.bytes_sent
                    entry[1] += event.bytes_received
                continue
            for kind in CLOSES.get(event.event_type, ()) + CHANGES.get(event.event_type, ()):
                for slot in _slots(open_, kind, event):
                    _add_overlap(totals, kind, open_.pop(slot), event.created, start, end)
                    if kind in CHANGES.get(event.event_type, ()):
                        open_[slot] = _Held(event.created, event)
            kind = OPENS.get(event.event_type)
            if kind is not None and _slot(kind, event) not in open_:
                open_[_slot(kind, event)] = _Held(event.created, event)
        for (kind, _zone), held in open_.items():
            _add_overlap(totals, kind, held, end, start, end)
    records = [_record(session, kind, seconds, event, start, end)
               for (kind, *_), (seconds, event) in totals.items() if seconds > 0]
    for (account_id, zone_uuid, resource_uuid), (sent, received, event) in network.items():
        for usage_type, amount, what in ((UsageType.NETWORK_BYTES_SENT, sent, "sent"),
                                         (UsageType.NETWORK_BYTES_RECEIVED, received, "received")):
            if amount:
                records.append(UsageRecord(
                    account_id=account_id, domain_id=event.domain_id, zone_uuid=zone_uuid, usage_type=usage_type,
                    description=f"Bytes {what} by {event.resource_name or resource_uuid}",
                    usage_display=f"{amount} bytes {what}", raw_usage=float(amount), seconds=0,
                    resource_uuid=resource_uuid, resource_name=event.resource_name, vm_uuid=resource_uuid,
                    type=event.resource_type, start_date=start, end_date=end))
    return records


def _by_resource(events: list[UsageEvent]) -> Iterable[list[UsageEvent]]:
    """The events (ordered by resource) in one list per resource."""
    group: list[UsageEvent] = []
    for event in events:
        if group and (group[-1].resource_type, group[-1].resource_uuid) != (event.resource_type, event.resource_uuid):
            yield group
            group = []
        group.append(event)
    if group:
        yield group


def _slot(kind: str, event: UsageEvent) -> tuple[str, str | None]:
    """Templates are held once per zone they were downloaded into; everything else once."""
    return kind, event.zone_uuid if event.resource_type == "Template" else None


def _slots(open_: dict, kind: str, event: UsageEvent) -> list[tuple[str, str | None]]:
    """The open slots ``event`` closes or changes: its own, or every zone's when it names none."""
    if event.resource_type == "Template" and event.zone_uuid is None:
        return [slot for slot in open_ if slot[0] == kind]
    return [slot for slot in (_slot(kind, event),) if slot in open_]


def _add_overlap(totals: dict, kind: str, held: _Held, until: dt.datetime, start: dt.datetime, end: dt.datetime):
    begin, finish = max(held.since, start), min(until, end)
    if finish <= begin:
        return
    event = held.event
    key = (kind, event.resource_uuid, event.zone_uuid, event.offering_uuid, event.size, event.account_id)
    entry = totals.setdefault(key, [0, event])
    entry[0] += int((finish - begin).total_seconds())


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:.6f}".rstrip("0").rstrip(".")


def _record(session: Session, kind: str, seconds: int, event: UsageEvent, start: dt.datetime,
            end: dt.datetime) -> UsageRecord:
    usage_type = INTERVAL_TYPES[kind]
    details = event.details or {}
    name = event.resource_name or event.resource_uuid
    if kind in ("allocated", "running"):
        what = "running time" if kind == "running" else "allocated time"
        description = (f"{name} {what} (ServiceOffering: {event.offering_uuid}) (Template: {event.template_uuid})")
    elif kind == "volume":
        description = f"Volume Id: {event.resource_uuid} usage time (DiskOffering: {event.offering_uuid}) " \
                      f"(Template: {event.template_uuid})"
    elif kind == "ip":
        description = f"IPAddress: {details.get('address', name)}"
    elif kind == "vmsnapshot":
        description = f"VMSnapshot Id: {event.resource_uuid} Usage: VM Id: {details.get('vm_uuid')} " \
                      f"Size: {event.size or 0}"
    else:
        description = f"{kind.title()} Id: {event.resource_uuid} Size: {event.size or 0}"
    vm_uuid = event.resource_uuid if event.resource_type == "VirtualMachine" else details.get("vm_uuid")
    return UsageRecord(
        account_id=event.account_id, domain_id=event.domain_id, zone_uuid=event.zone_uuid, usage_type=usage_type,
        description=description, usage_display=f"{_hours(seconds)} Hrs", raw_usage=seconds / 3600, seconds=seconds,
        resource_uuid=event.resource_uuid, resource_name=event.resource_name, vm_uuid=vm_uuid,
        offering_uuid=event.offering_uuid, template_uuid=event.template_uuid,
        type=details.get("hypervisor") if event.resource_type == "VirtualMachine" else event.resource_type,
        size=event.size if kind not in ("allocated", "running") else None,
        cpu_number=details.get("cpunumber"), cpu_speed=details.get("cpuspeed"), memory=details.get("memory"),
        start_date=start, end_date=end)


#: the usage job's steps in the management server's periodic pass
STEPS = (("usage network counters", lambda cloud: collect_network_usage(cloud, due_only=True)),
         ("usage records", lambda cloud: generate_due(cloud)))

__all__ = ["STEPS", "UsageType", "record", "record_vm", "record_row", "generate", "generate_due", "periods", "collect_network_usage",
           "UsageRecorder", "install", "vm_usage_event"]
