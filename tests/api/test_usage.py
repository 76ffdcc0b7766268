"""Usage accounting: usage events from real resource changes, and the records the usage job
makes of them, to the second (time is driven by writing events with explicit timestamps)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core.model import Account, UsageEvent
from core.orchestration import usage
from core.orchestration.usage import UsageType
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, offering_id

DAY = dt.datetime(2024, 3, 1)
GiB = 1024**3


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kw)
    return info.value


def at(hours: float = 0, **kw) -> dt.datetime:
    return DAY + dt.timedelta(hours=hours, **kw)


def new_account(admin, app, username, **kw) -> tuple[ApiClient, dict]:
    account = admin("createAccount", username=username, password="pw", email=f"{username}@example.com",
                    firstname=username, lastname="T", accounttype=kw.pop("accounttype", 0), **kw)["account"]
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    return ApiClient(app, keys["apikey"], keys["secretkey"]), account


def write(cloud, account_name: str, events: list[tuple[str, dt.datetime, dict]], **common) -> None:
    with cloud.db.transaction() as session:
        account = session.scalars(sa.select(Account).where(Account.name == account_name)).one()
        for kind, when, extra in events:
            usage.record(session, kind, account_id=account.id, domain_id=account.domain_id, at=when,
                         **{**common, **extra})


def records(admin, **kw) -> list[dict]:
    return admin("listUsageRecords", **{"startdate": "2024-03-01", "enddate": "2024-03-02", **kw}).get(
        "usagerecord", [])


VM = dict(resource_type="VirtualMachine", resource_uuid="5d3e5a52-1111-4a44-8000-000000000001", resource_name="web1",
          zone_uuid="zone-1", offering_uuid="small", template_uuid="tiny",
          details={"cpunumber": 1, "cpuspeed": 500, "memory": 512, "hypervisor": "Simulator"})


def test_a_vm_that_ran_two_hours_is_charged_two_hours_to_the_second(admin, app, cloud):
    new_account(admin, app, "ada")
    write(cloud, "ada", [("VM.CREATE", at(9, minutes=59, seconds=30), {}), ("VM.START", at(10), {}),
                         ("VM.STOP", at(12), {}), ("VM.DESTROY", at(12, minutes=30, seconds=15), {})], **VM)
    assert admin("generateUsageRecords", startdate="2024-03-01", enddate="2024-03-01") == {"success": True}
    running, = records(admin, account="ada", domainid=admin("listDomains", name="ROOT")["domain"][0]["id"],
                       type=UsageType.RUNNING_VM)
    assert (running["rawusage"], running["usage"], running["usagetype"]) == ("2", "2 Hrs", 1)
    assert (running["virtualmachineid"], running["name"], running["offeringid"], running["templateid"]) == (
        VM["resource_uuid"], "web1", "small", "tiny")
    assert (running["startdate"], running["enddate"]) == ("2024-03-01T00:00:00+0000", "2024-03-02T00:00:00+0000")
    assert (running["cpunumber"], running["memory"], running["type"], running["account"]) == (1, 512, "Simulator",
                                                                                             "ada")
    allocated, = records(admin, type=UsageType.ALLOCATED_VM)
    # 09:59:30 -> 12:30:15 is 2 h 30 min 45 s = 9045 s
    assert allocated["rawusage"] == "2.5125" and round(float(allocated["rawusage"]) * 3600) == 9045
    assert "web1 allocated time" in allocated["description"]


def test_a_period_boundary_splits_the_hours(admin, app, cloud):
    new_account(admin, app, "bea")
    write(cloud, "bea", [("VM.CREATE", at(22), {}), ("VM.START", at(23), {}), ("VM.STOP", at(25, seconds=1), {})],
          **VM)
    admin("generateUsageRecords", startdate="2024-03-01", enddate="2024-03-02")
    running = {r["startdate"][:10]: round(float(r["rawusage"]) * 3600) for r in records(admin, type=1)}
    assert running == {"2024-03-01": 3600, "2024-03-02": 3601}
    allocated = {r["startdate"][:10]: round(float(r["rawusage"]) * 3600) for r in records(admin, type=2)}
    assert allocated == {"2024-03-01": 2 * 3600, "2024-03-02": 86400}, "still allocated: the whole second day"
    before = records(admin)
    admin("generateUsageRecords", startdate="2024-03-01", enddate="2024-03-02")
    assert records(admin) == before, "generating again replaces, never duplicates"


def test_volumes_templates_snapshots_ips_and_network_bytes(admin, app, cloud):
    new_account(admin, app, "cy")
    volume = dict(resource_type="Volume", resource_uuid="vol-1", resource_name="DATA-1", zone_uuid="zone-1",
                  offering_uuid="disk-small")
    write(cloud, "cy", [("VOLUME.CREATE", at(1), {"size": 10 * GiB}), ("VOLUME.RESIZE", at(2), {"size": 20 * GiB}),
                        ("VOLUME.DELETE", at(4), {})], **volume)
    write(cloud, "cy", [("TEMPLATE.CREATE", at(0), {"zone_uuid": "zone-1", "size": 3 * GiB}),
                        ("TEMPLATE.CREATE", at(6), {"zone_uuid": "zone-2", "size": 3 * GiB}),
                        ("TEMPLATE.DELETE", at(12), {})], resource_type="Template", resource_uuid="tmpl-1")
    write(cloud, "cy", [("SNAPSHOT.CREATE", at(20), {"size": GiB}), ("SNAPSHOT.DELETE", at(20, minutes=30), {})],
          resource_type="Snapshot", resource_uuid="snap-1", zone_uuid="zone-1")
    write(cloud, "cy", [("NET.IPASSIGN", at(8), {"details": {"address": "203.0.113.7"}}),
                        ("NET.IPRELEASE", at(9, minutes=15), {})], resource_type="IpAddress", resource_uuid="ip-1",
          zone_uuid="zone-1")
    write(cloud, "cy", [("NETWORK.USAGE", at(3), {"bytes_sent": 1000, "bytes_received": 250}),
                        ("NETWORK.USAGE", at(5), {"bytes_sent": 24, "bytes_received": 0})],
          resource_type="VirtualMachine", resource_uuid="vm-9", resource_name="net1", zone_uuid="zone-1")
    admin("generateUsageRecords", startdate="2024-03-01", enddate="2024-03-01")
    got = sorted((r["usagetype"], r.get("size"), r["rawusage"]) for r in records(admin, enddate="2024-03-01"))
    assert got == sorted([
        (UsageType.VOLUME, 10 * GiB, "1"), (UsageType.VOLUME, 20 * GiB, "2"),
        (UsageType.TEMPLATE, 3 * GiB, "12"), (UsageType.TEMPLATE, 3 * GiB, "6"),
        (UsageType.SNAPSHOT, GiB, "0.5"), (UsageType.IP_ADDRESS, None, "1.25"),
        (UsageType.NETWORK_BYTES_SENT, None, "1024"), (UsageType.NETWORK_BYTES_RECEIVED, None, "250")])
    ip, = records(admin, type=UsageType.IP_ADDRESS, usageid="ip-1")
    assert ip["description"] == "IPAddress: 203.0.113.7"
    assert error(admin, "listUsageRecords", startdate="2024-03-01", enddate="2024-03-01", usageid="ip-1").status == 431


def test_real_changes_write_usage_events(admin, app, cloud):
    zone = simulated_zone(cloud)
    user, _ = new_account(admin, app, "dot")
    vm = user.wait(user("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                        templateid=zone["template"], name="u1"))["virtualmachine"]
    user.wait(user("stopVirtualMachine", id=vm["id"]))
    user("changeServiceForVirtualMachine", id=vm["id"], serviceofferingid=offering_id(cloud, "Medium Instance"))
    user.wait(user("startVirtualMachine", id=vm["id"]))
    admin.wait(admin("destroyVirtualMachine", id=vm["id"], expunge=True))
    with cloud.db.transaction() as session:
        rows = session.scalars(sa.select(UsageEvent).order_by(UsageEvent.id)).all()
        seen = [(row.event_type, row.resource_type) for row in rows]
        offerings = [row.offering_uuid for row in rows if row.event_type in ("VM.CREATE", "VM.UPGRADE", "VM.START")]
    assert seen == [("VM.CREATE", "VirtualMachine"), ("VOLUME.CREATE", "Volume"), ("VM.START", "VirtualMachine"),
                    ("VM.STOP", "VirtualMachine"), ("VM.UPGRADE", "VirtualMachine"), ("VM.START", "VirtualMachine"),
                    ("VM.STOP", "VirtualMachine"), ("VM.DESTROY", "VirtualMachine"), ("VOLUME.DELETE", "Volume")]
    assert offerings == [offering_id(cloud)] * 2 + [offering_id(cloud, "Medium Instance")] * 2
    tomorrow = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    # today's period has not ended: nothing is generated for it yet
    admin("generateUsageRecords", startdate="2024-03-01", enddate=tomorrow)
    assert admin("listUsageRecords", startdate="2024-03-01", enddate=tomorrow) == {}


def test_network_counters_become_network_usage(admin, app, cloud, monkeypatch):
    from core.drivers import VmStats

    zone = simulated_zone(cloud)
    user, _ = new_account(admin, app, "eli")
    vm = user.wait(user("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                        templateid=zone["template"]))["virtualmachine"]
    readings = iter([(500, 100), (800, 160), (50, 10), (70, 10)])  # the third: the VM restarted
    simulator = cloud.plugins.hypervisors["simulator"]
    monkeypatch.setattr(simulator, "vm_stats", lambda host, spec: VmStats(
        network_write_bytes=(values := next(readings))[0], network_read_bytes=values[1]))
    assert [usage.collect_network_usage(cloud) for _ in range(3)] == [1, 1, 1]
    with cloud.db.transaction() as session:
        grown = [(row.bytes_sent, row.bytes_received) for row in session.scalars(
            sa.select(UsageEvent).where(UsageEvent.event_type == "NETWORK.USAGE").order_by(UsageEvent.id))]
        assert {row.resource_uuid for row in session.scalars(
            sa.select(UsageEvent).where(UsageEvent.event_type == "NETWORK.USAGE"))} == {vm["id"]}
    assert grown == [(500, 100), (300, 60), (50, 10)]
    assert usage.collect_network_usage(cloud, due_only=True) == 0, "read less than vm.network.stats.interval ago"
    admin("updateConfiguration", name="vm.network.stats.interval", value="0")
    assert usage.collect_network_usage(cloud, due_only=True) == 0, "0: the periodic pass never reads"
    assert usage.collect_network_usage(cloud) == 1


def test_the_periodic_job_makes_each_period_once(admin, app, cloud):
    new_account(admin, app, "fay")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    start = now - dt.timedelta(days=2)
    write(cloud, "fay", [("VM.CREATE", start, {})], **VM)
    written = usage.generate_due(cloud)
    assert written >= 2, "one allocated record per whole day so far"
    assert usage.generate_due(cloud) == 0, "nothing new until the next period ends"
    later = now + dt.timedelta(days=1)
    assert usage.generate_due(cloud, now=later) == 1


def test_who_may_see_usage(admin, app, cloud):
    sales = admin("createDomain", name="sales")["domain"]
    boss, _ = new_account(admin, app, "boss", accounttype=2, domainid=sales["id"])
    new_account(admin, app, "seller", domainid=sales["id"])
    user, _ = new_account(admin, app, "outside")
    write(cloud, "seller", [("VM.CREATE", at(1), {})], **VM)
    write(cloud, "outside", [("VM.CREATE", at(1), {})], **{**VM, "resource_uuid": "other-vm"})
    admin("generateUsageRecords", startdate="2024-03-01", enddate="2024-03-01")
    assert {r["account"] for r in records(admin, enddate="2024-03-01")} == {"seller", "outside"}
    assert {r["account"] for r in records(boss, enddate="2024-03-01")} == {"seller"}
    outside_id = user("listAccounts")["account"][0]["id"]
    assert error(boss, "listUsageRecords", startdate="2024-03-01", enddate="2024-03-01",
                 accountid=outside_id).status == 531
    assert error(user, "listUsageRecords", startdate="2024-03-01", enddate="2024-03-01").status == 432
    assert error(boss, "generateUsageRecords", startdate="2024-03-01", enddate="2024-03-01").status == 432
    types = {t["id"]: t["name"] for t in admin("listUsageTypes")["usagetype"]}
    assert (types[1], types[2], types[6], types[9]) == ("RUNNING_VM", "ALLOCATED_VM", "VOLUME", "SNAPSHOT")


def test_events_are_archived_and_deleted_by_their_owners(admin, app):
    user, _ = new_account(admin, app, "gus")
    events = user("listEvents")["event"]
    assert {e["type"] for e in events} == {"USER.CREATE", "REGISTER.USER.KEY"}, "the user's own events"
    admin_event = admin("listEvents")["event"][0]["id"]
    assert error(user, "archiveEvents", ids=admin_event).status == 531, "not its event"
    assert error(user, "deleteEvents", ids=f"{events[0]['id']},{admin_event}").status == 531, "all or nothing"
    assert error(user, "archiveEvents").status == 431, "something must be chosen"
    assert user("archiveEvents", ids=events[0]["id"]) == {"success": True}
    assert [e["id"] for e in user("listEvents")["event"]] == [events[1]["id"]]
    assert [e["id"] for e in user("listEvents", archived=True)["event"]] == [events[0]["id"]]
    assert user("deleteEvents", type=events[1]["type"], startdate="2000-01-01") == {"success": True}
    assert user("listEvents") == {}
    assert user("deleteEvents", enddate="2999-01-01") == {"success": True}
    assert user("listEvents", archived=True) == {}
    assert admin("listEvents", id=admin_event)["count"] == 1, "others' events stay"


def test_snapshots_and_vm_snapshots_are_charged_from_their_real_changes(admin, app, cloud):
    from core.model import Snapshot

    zone = simulated_zone(cloud)
    user, _ = new_account(admin, app, "hal")
    vm = user.wait(user("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                        templateid=zone["template"], name="h1"))["virtualmachine"]
    root = user("listVolumes", virtualmachineid=vm["id"])["volume"][0]
    snapshot = user.wait(user("createSnapshot", volumeid=root["id"]))["snapshot"]
    vm_snapshot = user.wait(user("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True))["vmsnapshot"]
    user.wait(user("deleteSnapshot", id=snapshot["id"]))
    user.wait(user("deleteVMSnapshot", vmsnapshotid=vm_snapshot["id"]))
    kept = user.wait(user("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True))["vmsnapshot"]
    admin.wait(admin("destroyVirtualMachine", id=vm["id"], expunge=True))  # its VM snapshots go with it
    with cloud.db.transaction() as session:
        physical = session.scalar(sa.select(Snapshot.physical_size).where(Snapshot.uuid == snapshot["id"]))
        rows = session.scalars(sa.select(UsageEvent).where(UsageEvent.resource_type.in_(("Snapshot", "VMSnapshot")))
                               .order_by(UsageEvent.id)).all()
        seen = [(row.event_type, row.resource_uuid, row.size) for row in rows]
        assert {row.zone_uuid for row in rows} == {zone["zone"]}
        assert {row.details.get("vm_uuid") for row in rows if row.resource_type == "VMSnapshot"} == {vm["id"]}
        for hour, row in enumerate(rows):  # the real events, spread over the test day an hour apart
            row.created = at(hour + 1)
    assert seen == [("SNAPSHOT.CREATE", snapshot["id"], physical), ("VMSNAPSHOT.CREATE", vm_snapshot["id"], 2 * GiB),
                    ("SNAPSHOT.DELETE", snapshot["id"], physical), ("VMSNAPSHOT.DELETE", vm_snapshot["id"], 2 * GiB),
                    ("VMSNAPSHOT.CREATE", kept["id"], 2 * GiB), ("VMSNAPSHOT.DELETE", kept["id"], 0)], \
        "the last closes as its VM is expunged, its disks gone"
    admin("generateUsageRecords", startdate="2024-03-01", enddate="2024-03-01")
    charged = {(r["usagetype"], r["usageid"]): r for r in records(admin, enddate="2024-03-01")}
    assert set(charged) == {(UsageType.SNAPSHOT, snapshot["id"]), (UsageType.VM_SNAPSHOT, vm_snapshot["id"]),
                            (UsageType.VM_SNAPSHOT, kept["id"])}
    assert {uuid: r["rawusage"] for (_, uuid), r in charged.items()} == {snapshot["id"]: "2", vm_snapshot["id"]: "2",
                                                                        kept["id"]: "1"}
    assert charged[(UsageType.SNAPSHOT, snapshot["id"])]["size"] == physical
    vm_record = charged[(25, vm_snapshot["id"])]
    assert (vm_record["size"], vm_record["virtualmachineid"], vm_record["type"]) == (2 * GiB, vm["id"], "VMSnapshot")
    assert vm_record["description"] == f"VMSnapshot Id: {vm_snapshot['id']} Usage: VM Id: {vm['id']} Size: {2 * GiB}"
    types = {t["id"]: t["name"] for t in admin("listUsageTypes")["usagetype"]}
    assert types[25] == "VM_SNAPSHOT"
