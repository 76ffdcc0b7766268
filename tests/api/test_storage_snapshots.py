"""Volume snapshots through the API on simulated storage: take (backed up to the image store),
list, revert, delete; volumes and templates made from snapshots and from stopped VMs'
volumes; recurring policies with their schedule and retention, run by the periodic pass."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core.orchestration import snapshots as snapshot_ops
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, capacity_used, make_account, offering_id

STORAGE = 3
GiB = 1024**3


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud)


@pytest.fixture
def alice(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "alice"))


@pytest.fixture
def running(cloud, zone, alice):
    """Alice's running VM and its root volume."""
    vm = alice.wait(alice("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                          templateid=zone["template"], name="web"))["virtualmachine"]
    root = alice("listVolumes", virtualmachineid=vm["id"], type="ROOT")["volume"][0]
    return vm, root


def fails(status, call, *args, **kw) -> dict:
    with pytest.raises(ApiError) as err:
        call(*args, **kw)
    assert err.value.status == status, err.value.body
    return err.value.body


def store_files(cloud):
    return cloud.plugins.storage["simulator"].store_files()


def snap(client, volume_id, **kw):
    return client.wait(client("createSnapshot", volumeid=volume_id, **kw))["snapshot"]


def test_snapshot_list_revert_delete(cloud, zone, alice, running):
    vm, root = running
    taken = snap(alice, root["id"], name="before-upgrade")
    assert taken["state"] == "BackedUp" and taken["name"] == "before-upgrade"
    assert taken["volumeid"] == root["id"] and taken["volumetype"] == "ROOT" and taken["snapshottype"] == "MANUAL"
    assert taken["physicalsize"] == 2 * GiB and taken["revertable"] is True
    backups = [path for (_, path) in store_files(cloud) if taken["id"] in path]
    assert len(backups) == 1, "the backup is on the image store"
    assert alice("listVolumes", id=root["id"])["volume"][0]["state"] == "Ready"
    listed = alice("listSnapshots", volumeid=root["id"])
    assert listed["count"] == 1 and listed["snapshot"][0]["id"] == taken["id"]

    body = fails(431, alice, "revertSnapshot", id=taken["id"])
    assert "stop it" in body["errortext"]
    alice.wait(alice("stopVirtualMachine", id=vm["id"]))
    reverted = alice.wait(alice("revertSnapshot", id=taken["id"]))["snapshot"]
    assert reverted["id"] == taken["id"]
    assert alice("listVolumes", id=root["id"])["volume"][0]["state"] == "Ready"
    assert alice.wait(alice("startVirtualMachine", id=vm["id"]))["virtualmachine"]["state"] == "Running"

    assert alice.wait(alice("deleteSnapshot", id=taken["id"])) == {"success": True}
    assert alice("listSnapshots") == {}
    assert not [path for (_, path) in store_files(cloud) if taken["id"] in path], "the backup is gone"
    events = {e["type"] for e in alice("listEvents")["event"]}
    assert {"SNAPSHOT.CREATE", "SNAPSHOT.REVERT", "SNAPSHOT.DELETE"} <= events


def test_only_ready_volumes_of_ones_own_are_snapshotted(cloud, zone, alice, running, app):
    volume = alice.wait(alice("createVolume", diskofferingid=_offering(alice), zoneid=zone["zone"]))["volume"]
    assert "Ready" in fails(431, alice, "createSnapshot", volumeid=volume["id"])["errortext"]
    bob = ApiClient.for_user(app, cloud, make_account(cloud, "bob"))
    fails(531, bob, "createSnapshot", volumeid=running[1]["id"])
    taken = snap(alice, running[1]["id"])
    fails(531, bob, "deleteSnapshot", id=taken["id"])
    fails(531, bob, "createVolume", snapshotid=taken["id"])
    assert bob("listSnapshots") == {} and bob("listSnapshots", id=taken["id"]) == {}


def _offering(client, name="Small"):
    return next(o["id"] for o in client("listDiskOfferings")["diskoffering"] if o["name"] == name)


def test_a_failing_backup_leaves_no_snapshot_and_the_volume_ready(cloud, alice, running, monkeypatch):
    storage = cloud.plugins.storage["simulator"]

    def broken(*args, **kw):
        raise OSError("simulated store failure")

    monkeypatch.setattr(storage, "backup_volume", broken)
    fails(530, alice.wait, alice("createSnapshot", volumeid=running[1]["id"]))
    assert alice("listSnapshots") == {}
    assert alice("listVolumes", id=running[1]["id"])["volume"][0]["state"] == "Ready"
    errors = [e for e in alice("listEvents", type="SNAPSHOT.CREATE")["event"] if e["level"] == "ERROR"]
    assert errors and "simulated store failure" in errors[0]["description"]
    monkeypatch.undo()
    assert snap(alice, running[1]["id"])["state"] == "BackedUp"


def test_volume_from_a_snapshot_is_created_at_once_and_attaches(cloud, zone, alice, running):
    vm, root = running
    taken = snap(alice, root["id"])
    before = capacity_used(cloud)[(STORAGE, zone["pool"])]
    job = alice("createVolume", snapshotid=taken["id"], name="restored", virtualmachineid=vm["id"])
    volume = alice.wait(job)["volume"]
    assert volume["state"] == "Ready" and volume["size"] == 2 * GiB and volume["snapshotid"] == taken["id"]
    assert volume["virtualmachineid"] == vm["id"] and volume["type"] == "DATADISK"
    assert capacity_used(cloud)[(STORAGE, zone["pool"])] == before + 2 * GiB
    fails(431, alice, "createVolume", snapshotid=taken["id"], zoneid="00000000-0000-0000-0000-000000000000")


def test_a_volume_from_a_snapshot_that_fails_is_gone(cloud, zone, alice, running, monkeypatch):
    taken = snap(alice, running[1]["id"])
    before = capacity_used(cloud)[(STORAGE, zone["pool"])]

    def broken(*args, **kw):
        raise OSError("simulated copy failure")

    monkeypatch.setattr(cloud.plugins.storage["simulator"], "restore_snapshot", broken)
    job = alice("createVolume", snapshotid=taken["id"])
    fails(530, alice.wait, job)
    assert alice("listVolumes", id=job["id"]) == {}
    assert capacity_used(cloud)[(STORAGE, zone["pool"])] == before


def test_templates_from_a_snapshot_and_from_a_stopped_vm(cloud, zone, alice, running, admin):
    vm, root = running
    os_type = alice("listOsTypes")["ostype"][0]["id"]
    fails(431, alice, "createTemplate", name="t", ostypeid=os_type, volumeid=root["id"])  # its VM runs
    taken = snap(alice, root["id"])
    made = alice.wait(alice("createTemplate", name="from-snap", ostypeid=os_type, snapshotid=taken["id"]))["template"]
    assert made["isready"] is True and made["status"] == "Download Complete" and made["zoneid"] == zone["zone"]
    assert made["account"] == "alice" and made["size"] == 2 * GiB
    alice.wait(alice("stopVirtualMachine", id=vm["id"]))
    second = alice.wait(alice("createTemplate", name="from-vm", ostypeid=os_type, volumeid=root["id"]))["template"]
    assert second["isready"] is True
    assert alice("listVolumes", id=root["id"])["volume"][0]["state"] == "Ready"
    mine = {t["name"] for t in alice("listTemplates", templatefilter="self")["template"]}
    assert {"from-snap", "from-vm"} <= mine
    deployed = alice.wait(alice("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                                templateid=second["id"]))["virtualmachine"]
    assert deployed["state"] == "Running" and deployed["templateid"] == second["id"]
    files = [path for (_, path) in store_files(cloud) if made["id"] in path or second["id"] in path]
    assert len(files) == 2
    admin.wait(admin("destroyVirtualMachine", id=deployed["id"], expunge=True))
    for template in (made, second):
        alice.wait(alice("deleteTemplate", id=template["id"]))
    assert not [path for (_, path) in store_files(cloud) if made["id"] in path or second["id"] in path]


def test_template_creation_that_fails_leaves_no_template(cloud, alice, running, monkeypatch):
    taken = snap(alice, running[1]["id"])

    def broken(*args, **kw):
        raise OSError("simulated store failure")

    monkeypatch.setattr(cloud.plugins.storage["simulator"], "template_from_snapshot", broken)
    os_type = alice("listOsTypes")["ostype"][0]["id"]
    job = alice("createTemplate", name="doomed", ostypeid=os_type, snapshotid=taken["id"])
    fails(530, alice.wait, job)
    assert "doomed" not in {t["name"] for t in alice("listTemplates", templatefilter="self").get("template", [])}


def test_policies_take_snapshots_on_schedule_and_keep_maxsnaps(cloud, alice, running):
    root = running[1]
    for bad, word in (({"intervaltype": "YEARLY"}, "intervaltype"), ({"schedule": "61"}, "minute"),
                      ({"schedule": "5:3"}, "MM"), ({"timezone": "Mars/Olympus"}, "timezone"),
                      ({"maxsnaps": 9}, "maxsnaps")):
        params = {"volumeid": root["id"], "intervaltype": "HOURLY", "schedule": "15", "timezone": "UTC",
                  "maxsnaps": 2, **bad}
        assert word in fails(431, alice, "createSnapshotPolicy", **params)["errortext"]
    policy = alice("createSnapshotPolicy", volumeid=root["id"], intervaltype="hourly", schedule="15",
                   timezone="UTC", maxsnaps=3)["snapshotpolicy"]
    assert policy["intervaltype"] == 0 and policy["maxsnaps"] == 3 and policy["volumeid"] == root["id"]
    again = alice("createSnapshotPolicy", volumeid=root["id"], intervaltype="HOURLY", schedule="30",
                  timezone="Europe/Berlin", maxsnaps=2)["snapshotpolicy"]
    assert again["id"] == policy["id"] and again["schedule"] == "30", "one policy per volume and interval"
    assert alice("listSnapshotPolicies", volumeid=root["id"])["count"] == 1

    now = dt.datetime.utcnow().replace(microsecond=0)
    for hours in range(1, 5):
        queued = snapshot_ops.run_due_policies(cloud, now=now + dt.timedelta(hours=hours, minutes=31))
        assert len(queued) == 1
        assert snapshot_ops.run_due_policies(cloud, now=now + dt.timedelta(hours=hours, minutes=31)) == [], \
            "one run per scheduled time"
        cloud.jobs.join()
    kept = alice("listSnapshots", volumeid=root["id"])["snapshot"]
    assert len(kept) == 2 and {s["snapshottype"] for s in kept} == {"HOURLY"}, "maxsnaps=2 kept, oldest deleted"
    assert alice("listSnapshots", snapshottype="RECURRING")["count"] == 2
    assert alice("listSnapshots", snapshottype="MANUAL") == {}
    assert len([p for (_, p) in store_files(cloud) if "snapshots/" in p]) == 2

    assert alice("deleteSnapshotPolicies", id=policy["id"]) == {"success": True}
    assert alice("listSnapshotPolicies", volumeid=root["id"]) == {}
    assert alice("listSnapshots")["count"] == 2, "a policy's snapshots outlive it"


def test_a_policy_of_a_busy_volume_is_skipped_with_a_warning(cloud, alice, running):
    from core.model import Volume

    root = running[1]
    alice("createSnapshotPolicy", volumeid=root["id"], intervaltype="DAILY", schedule="00:03", timezone="UTC",
          maxsnaps=1)
    with cloud.db.transaction() as session:
        session.execute(sa.update(Volume).where(Volume.uuid == root["id"]).values(state="Resizing"))
    assert snapshot_ops.run_due_policies(cloud, now=dt.datetime.utcnow() + dt.timedelta(days=2)) == []
    warnings = [e for e in alice("listEvents", type="SNAPSHOT.CREATE")["event"] if e["level"] == "WARN"]
    assert warnings and "Resizing" in warnings[0]["description"]


@pytest.mark.parametrize("interval, schedule, zone_name, after, expected", [
    ("HOURLY", "15", "UTC", "2026-03-01 10:20:00", "2026-03-01 11:15:00"),
    ("HOURLY", "15", "UTC", "2026-03-01 10:10:00", "2026-03-01 10:15:00"),
    ("DAILY", "30:02", "Europe/Berlin", "2026-07-01 12:00:00", "2026-07-02 00:30:00"),  # CEST, UTC+2
    ("DAILY", "30:02", "Europe/Berlin", "2026-01-01 00:00:00", "2026-01-01 01:30:00"),  # CET, UTC+1
    ("WEEKLY", "00:06:1", "UTC", "2026-03-04 00:00:00", "2026-03-08 06:00:00"),  # a Wednesday -> Sunday
    ("WEEKLY", "00:06:4", "UTC", "2026-03-04 07:00:00", "2026-03-11 06:00:00"),  # past this Wednesday's
    ("MONTHLY", "45:23:28", "UTC", "2026-12-28 23:45:00", "2027-01-28 23:45:00"),
    ("MONTHLY", "00:00:1", "America/New_York", "2026-02-15 00:00:00", "2026-03-01 05:00:00"),
])
def test_next_run_follows_cloudstacks_schedule_format(interval, schedule, zone_name, after, expected):
    parse = dt.datetime.fromisoformat
    assert snapshot_ops.next_run(interval, schedule, zone_name, parse(after)) == parse(expected)


def test_snapshot_limit_is_532(cloud, alice, running, admin):
    domain = admin("listDomains")["domain"][0]["id"]
    admin("updateResourceLimit", resourcetype=3, max=1, account="alice", domainid=domain)
    snap(alice, running[1]["id"])
    fails(532, alice, "createSnapshot", volumeid=running[1]["id"])


def test_a_snapshot_left_backing_up_by_a_dead_worker_is_settled(cloud, alice, running):
    from core.model import Snapshot, Volume

    taken = snap(alice, running[1]["id"])
    with cloud.db.transaction() as session:
        session.execute(sa.update(Snapshot).where(Snapshot.uuid == taken["id"]).values(state="BackingUp"))
        session.execute(sa.update(Volume).where(Volume.uuid == running[1]["id"]).values(state="Snapshotting"))
    snapshot_ops.storage_pass(cloud)
    assert alice("listSnapshots") == {}, "failed and removed"
    assert alice("listVolumes", id=running[1]["id"])["volume"][0]["state"] == "Ready"


def test_a_policy_goes_with_its_volume(cloud, alice, running, admin):
    vm, root = running
    alice("createSnapshotPolicy", volumeid=root["id"], intervaltype="WEEKLY", schedule="00:03:2", timezone="UTC",
          maxsnaps=1)
    admin.wait(admin("destroyVirtualMachine", id=vm["id"], expunge=True))
    assert snapshot_ops.run_due_policies(cloud, now=dt.datetime.utcnow() + dt.timedelta(days=8)) == []
    assert admin("listSnapshotPolicies", listall=True) == {}


def test_snapshot_tags_are_shown_and_filter_the_list(cloud, alice, running, admin):
    tagged, plain = snap(alice, running[1]["id"], name="tagged"), snap(alice, running[1]["id"], name="plain")
    alice.wait(alice("createTags", resourceids=tagged["id"], resourcetype="Snapshot",
                     **{"tags[0].key": "tier", "tags[0].value": "gold"}))
    shown = {s["name"]: s["tags"] for s in alice("listSnapshots")["snapshot"]}
    assert shown["plain"] == [] and [(t["key"], t["value"], t["resourcetype"], t["resourceid"])
                                     for t in shown["tagged"]] == [("tier", "gold", "Snapshot", tagged["id"])]
    by_tag = alice("listSnapshots", **{"tags[0].key": "tier", "tags[0].value": "gold"})
    assert by_tag["count"] == 1 and by_tag["snapshot"][0]["id"] == tagged["id"]
    assert alice("listSnapshots", **{"tags[0].key": "tier"})["count"] == 1, "a key alone matches any value"
    assert alice("listSnapshots", **{"tags[0].key": "tier", "tags[0].value": "silver"}) == {}
    assert alice.wait(alice("createSnapshot", volumeid=running[1]["id"]))["snapshot"]["tags"] == []
    alice.wait(alice("deleteSnapshot", id=tagged["id"]))
    assert alice("listTags", resourcetype="Snapshot") == {}, "its tags went with it"
    assert plain["id"] in {s["id"] for s in alice("listSnapshots")["snapshot"]}


def test_create_template_with_projectid_charges_the_project(cloud, alice, running):
    project = alice.wait(alice("createProject", name="imaging"))["project"]
    os_type = alice("listOsTypes")["ostype"][0]["id"]
    taken = snap(alice, running[1]["id"])
    made = alice.wait(alice("createTemplate", name="team-image", ostypeid=os_type, snapshotid=taken["id"],
                            projectid=project["id"]))["template"]
    assert made["projectid"] == project["id"]
    assert alice("listProjects", id=project["id"])["project"][0]["templatetotal"] == 1
    assert "template" not in alice("listTemplates", templatefilter="self"), "charged to the caller's account"
    assert alice("listTemplates", templatefilter="self", projectid=project["id"])["template"][0]["id"] == made["id"]
