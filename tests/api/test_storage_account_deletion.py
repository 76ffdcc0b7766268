"""deleteAccount removes the account's storage through the normal routines (simulated hosts
and storage; the same on real files in tests/plugins/storage_nfs/test_account_deletion.py):
VM snapshots on the hypervisor, volume snapshots with their backups, snapshot policies and
data volumes with their files; counts back to zero; every usage interval closed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.model import Account, ResourceCount, Snapshot, SnapshotPolicy, UsageEvent, VmSnapshot, Volume
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, capacity_used, offering_id


def tenant(admin, app, name: str, domain_id: str) -> tuple[ApiClient, dict]:
    account = admin("createAccount", username=name, password="pw", email=f"{name}@example.com", firstname=name,
                    lastname="T", accounttype=0, domainid=domain_id)["account"]
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    return ApiClient(app, keys["apikey"], keys["secretkey"]), account


def small_disk(client) -> str:
    return next(o["id"] for o in client("listDiskOfferings")["diskoffering"] if o["name"] == "Small")


def fill_account(user, cloud, zone) -> dict:
    """A running VM with a VM snapshot and an attached data disk, a detached data disk with a
    file, one without, snapshots of the root and data disks (one tagged), a policy."""
    vm = user.wait(user("deployVirtualMachine", zoneid=zone, serviceofferingid=offering_id(cloud),
                        templateid=user.template, name="web"))["virtualmachine"]
    root = user("listVolumes", virtualmachineid=vm["id"], type="ROOT")["volume"][0]
    attached = user.wait(user("createVolume", name="attached", diskofferingid=small_disk(user), zoneid=zone,
                              virtualmachineid=vm["id"]))["volume"]
    loose = user.wait(user("createVolume", name="loose", diskofferingid=small_disk(user), zoneid=zone,
                           virtualmachineid=vm["id"]))["volume"]
    user.wait(user("detachVolume", id=loose["id"]))
    never_used = user.wait(user("createVolume", name="allocated", diskofferingid=small_disk(user),
                                zoneid=zone))["volume"]
    snapshots = [user.wait(user("createSnapshot", volumeid=v["id"]))["snapshot"] for v in (root, attached, loose)]
    user.wait(user("createTags", resourceids=snapshots[0]["id"], resourcetype="Snapshot",
                   **{"tags[0].key": "keep", "tags[0].value": "yes"}))
    policy = user("createSnapshotPolicy", volumeid=attached["id"], intervaltype="DAILY", schedule="00:03",
                  timezone="UTC", maxsnaps=2)["snapshotpolicy"]
    vm_snapshot = user.wait(user("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True))["vmsnapshot"]
    return {"vm": vm, "volumes": [root, attached, loose, never_used], "snapshots": snapshots, "policy": policy,
            "vm_snapshot": vm_snapshot}


def test_delete_account_removes_its_storage_counts_and_usage(admin, app, cloud):
    zone = simulated_zone(cloud)
    domain = admin("createDomain", name="storage-co")["domain"]
    user, account = tenant(admin, app, "sam", domain["id"])
    user.template = zone["template"]
    storage = cloud.plugins.storage["simulator"]
    files_before, volumes_before = set(storage.store_files()), set(storage.volumes())
    made = fill_account(user, cloud, zone["zone"])
    ours = [v["id"] for v in made["volumes"]] + [s["id"] for s in made["snapshots"]]
    assert any(made["snapshots"][0]["id"] in path for _, path in storage.store_files())
    counts = {r["resourcetypename"]: r["resourcecount"] for r in admin(
        "updateResourceCount", domainid=domain["id"], account="sam")["resourcecount"]}
    assert (counts["volume"], counts["snapshot"]) == (4, 3) and counts["secondary_storage"] > 0

    admin.wait(admin("deleteAccount", id=account["id"]))

    assert set(storage.store_files()) == files_before, "every snapshot backup is gone from the image store"
    assert set(storage.volumes()) == volumes_before, "every volume file is gone from the pool"
    assert all(used == 0 for used in capacity_used(cloud).values())
    with cloud.db.transaction() as session:
        account_id = session.scalar(sa.select(Account.id).where(Account.uuid == account["id"]))
        for model in (Volume, Snapshot, VmSnapshot):
            live = session.scalars(sa.select(model.uuid).where(model.account_id == account_id,
                                                               model.removed.is_(None))).all()
            assert live == [], f"{model.__name__} rows left: {live}"
        assert session.scalars(sa.select(Volume.state).where(Volume.account_id == account_id)).all() == \
            ["Expunged"] * 4
        assert set(session.scalars(sa.select(Snapshot.state).where(Snapshot.account_id == account_id))) == \
            {"Destroyed"}
        assert session.scalars(sa.select(SnapshotPolicy.id).where(SnapshotPolicy.account_id == account_id)).all() \
            == []
        counts = dict(session.execute(sa.select(ResourceCount.resource_type, ResourceCount.count).where(
            ResourceCount.account_id == account_id)).all())
        assert set(counts.values()) == {0}, counts
        domain_counts = session.execute(sa.select(ResourceCount.resource_type, ResourceCount.count).join(
            Account, Account.domain_id == ResourceCount.domain_id).where(Account.id == account_id)).all()
        assert {count for _, count in domain_counts} == {0}, domain_counts
        last = {}
        for event in session.scalars(sa.select(UsageEvent).where(UsageEvent.account_id == account_id)
                                     .order_by(UsageEvent.id)):
            last[event.resource_uuid] = event.event_type
    # the Allocated volume never had a file: created and deleted without usage in between is fine too
    assert {last[uuid] for uuid in ours if uuid in last} <= {"VOLUME.DELETE", "SNAPSHOT.DELETE"}
    assert all(last[v] == "VOLUME.DELETE" for v in ours[:3]) and all(last[s] == "SNAPSHOT.DELETE" for s in ours[4:])
    assert last[made["vm_snapshot"]["id"]] == "VMSNAPSHOT.DELETE"
    events = {e["type"] for e in admin("listEvents", listall=True)["event"]}
    assert {"VMSNAPSHOT.DELETE", "SNAPSHOT.DELETE", "SNAPSHOTPOLICY.DELETE", "VOLUME.DELETE"} <= events
    assert admin("listTags", listall=True) == {}


def test_a_snapshot_being_backed_up_stops_the_deletion_until_it_is_done(admin, app, cloud):
    zone = simulated_zone(cloud)
    domain = admin("createDomain", name="busy-co")["domain"]
    user, account = tenant(admin, app, "bea", domain["id"])
    vm = user.wait(user("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                        templateid=zone["template"]))["virtualmachine"]
    root = user("listVolumes", virtualmachineid=vm["id"])["volume"][0]
    taken = user.wait(user("createSnapshot", volumeid=root["id"]))["snapshot"]
    with cloud.db.transaction() as session:  # as while its job runs
        session.execute(sa.update(Snapshot).where(Snapshot.uuid == taken["id"]).values(state="BackingUp"))
    with pytest.raises(ApiError) as failed:
        admin.wait(admin("deleteAccount", id=account["id"]))
    assert failed.value.status == 536 and "being backed up" in failed.value.body["errortext"]
    assert admin("listAccounts", id=account["id"])["account"][0]["state"] == "disabled"
    with cloud.db.transaction() as session:
        session.execute(sa.update(Snapshot).where(Snapshot.uuid == taken["id"]).values(state="BackedUp"))
    admin.wait(admin("deleteAccount", id=account["id"]))
    assert admin("listAccounts", id=account["id"]) == {}
    assert not [path for _, path in cloud.plugins.storage["simulator"].store_files() if taken["id"] in path]
