"""Data volumes through the API on simulated hosts and storage: create, attach (cold and hot),
detach, resize, migrate, delete; CloudStack's volume states, the pools' allocated capacity,
pools in maintenance, account checks, limits, failures that leave nothing behind, and the
settling of a volume a dead worker left mid-operation."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.orchestration import snapshots as snapshot_ops
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, capacity_used, make_account, offering_id

STORAGE = 3  # CapacityType.STORAGE_ALLOCATED
GiB = 1024**3


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud)


@pytest.fixture
def alice(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "alice"))


@pytest.fixture
def bob(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "bob"))


def disk_offering(client, name="Small"):
    return next(o["id"] for o in client("listDiskOfferings")["diskoffering"] if o["name"] == name)


def deploy(client, cloud, zone, **kw):
    return client.wait(client("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                              templateid=zone["template"], **kw))["virtualmachine"]


def pool_used(cloud, zone):
    return capacity_used(cloud)[(STORAGE, zone["pool"])]


def sim_volumes(cloud):
    return cloud.plugins.storage["simulator"].volumes()


def fails(status, call, *args, **kw) -> dict:
    with pytest.raises(ApiError) as err:
        call(*args, **kw)
    assert err.value.status == status, err.value.body
    return err.value.body


def test_a_volume_from_an_offering_is_allocated_until_a_vm_with_storage_needs_it(cloud, zone, alice):
    vm = deploy(alice, cloud, zone, name="web")
    root_only = pool_used(cloud, zone)
    job = alice("createVolume", name="data1", diskofferingid=disk_offering(alice), zoneid=zone["zone"])
    assert set(job) == {"jobid", "id"}
    volume = alice.wait(job)["volume"]
    assert volume["state"] == "Allocated" and volume["size"] == 5 * GiB and volume["type"] == "DATADISK"
    assert volume["diskofferingname"] == "Small" and "storageid" not in volume
    assert pool_used(cloud, zone) == root_only, "nothing is taken on a pool before the volume exists there"

    attached = alice.wait(alice("attachVolume", id=volume["id"], virtualmachineid=vm["id"]))["volume"]
    assert attached["state"] == "Ready" and attached["virtualmachineid"] == vm["id"] and attached["deviceid"] == 1
    assert pool_used(cloud, zone) == root_only + 5 * GiB
    paths = [p for p, (_, size) in sim_volumes(cloud).items() if volume["id"] in p]
    assert len(paths) == 1 and sim_volumes(cloud)[paths[0]][1] == 5 * GiB, "the file was made on the pool"
    listed = alice("listVolumes", virtualmachineid=vm["id"])
    assert listed["count"] == 2 and {v["type"] for v in listed["volume"]} == {"ROOT", "DATADISK"}

    detached = alice.wait(alice("detachVolume", id=volume["id"]))["volume"]
    assert detached["state"] == "Ready" and "virtualmachineid" not in detached
    assert alice("deleteVolume", id=volume["id"]) == {"success": True}
    assert alice("listVolumes", id=volume["id"]) == {}
    assert pool_used(cloud, zone) == root_only and not [p for p in sim_volumes(cloud) if volume["id"] in p]
    events = {e["type"] for e in alice("listEvents")["event"]}
    assert {"VOLUME.CREATE", "VOLUME.ATTACH", "VOLUME.DETACH", "VOLUME.DELETE"} <= events


def test_a_volume_attached_to_a_vm_that_never_ran_is_created_when_it_starts(cloud, zone, alice):
    vm = deploy(alice, cloud, zone, startvm=False)
    volume = alice.wait(alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"]))["volume"]
    assert volume["name"].startswith("DATA-")
    attached = alice.wait(alice("attachVolume", id=volume["id"], virtualmachineid=vm["id"]))["volume"]
    assert attached["state"] == "Allocated" and attached["virtualmachineid"] == vm["id"]
    assert alice.wait(alice("startVirtualMachine", id=vm["id"]))["virtualmachine"]["state"] == "Running"
    assert alice("listVolumes", id=volume["id"])["volume"][0]["state"] == "Ready"
    assert pool_used(cloud, zone) == 2 * GiB + 5 * GiB


def test_create_volume_with_a_vm_attaches_it_and_device_ids_skip_the_cdrom(cloud, zone, alice):
    vm = deploy(alice, cloud, zone)
    devices = []
    for _ in range(3):
        job = alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"],
                    virtualmachineid=vm["id"])
        devices.append(alice.wait(job)["volume"]["deviceid"])
    assert devices == [1, 2, 4], "device 3 is the CD-ROM's"
    volume = alice.wait(alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"]))["volume"]
    body = fails(431, alice, "attachVolume", id=volume["id"], virtualmachineid=vm["id"], deviceid=2)
    assert "device 2 is used" in body["errortext"]
    fails(431, alice, "attachVolume", id=volume["id"], virtualmachineid=vm["id"], deviceid=0)


def test_a_volume_cannot_go_to_another_accounts_vm(cloud, zone, alice, bob, admin):
    bobs_vm = deploy(bob, cloud, zone)
    volume = alice.wait(alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"]))["volume"]
    fails(531, alice, "attachVolume", id=volume["id"], virtualmachineid=bobs_vm["id"])
    body = fails(531, admin, "attachVolume", id=volume["id"], virtualmachineid=bobs_vm["id"])
    assert "different accounts" in body["errortext"]
    fails(531, bob, "deleteVolume", id=volume["id"])
    fails(531, bob, "createVolume", diskofferingid=disk_offering(bob), zoneid=zone["zone"],
          virtualmachineid=deploy(alice, cloud, zone)["id"])
    assert alice("listVolumes", id=volume["id"])["volume"][0]["state"] == "Allocated"


def test_delete_refuses_attached_and_root_volumes(cloud, zone, alice):
    vm = deploy(alice, cloud, zone)
    volume = alice.wait(alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"],
                              virtualmachineid=vm["id"]))["volume"]
    assert "attached" in fails(536, alice, "deleteVolume", id=volume["id"])["errortext"]
    root = next(v for v in alice("listVolumes", virtualmachineid=vm["id"])["volume"] if v["type"] == "ROOT")
    fails(431, alice, "deleteVolume", id=root["id"])
    fails(431, alice, "detachVolume", id=root["id"])
    assert alice("listVolumes", id=volume["id"])["volume"][0]["state"] == "Ready"


def test_resize_grows_refuses_shrinking_and_counts_the_pool(cloud, zone, alice):
    vm = deploy(alice, cloud, zone)
    volume = alice.wait(alice("createVolume", diskofferingid=disk_offering(alice, "Custom"), size=10,
                              zoneid=zone["zone"], virtualmachineid=vm["id"]))["volume"]
    assert volume["size"] == 10 * GiB
    body = fails(431, alice, "resizeVolume", id=volume["id"], size=5)
    assert "size" in body["errortext"] and "shrink" in body["errortext"]
    fails(431, alice, "resizeVolume", id=volume["id"], size=5, shrinkok=True)
    assert "stop the VM" in fails(432, alice, "resizeVolume", id=volume["id"], size=20)["errortext"]
    alice.wait(alice("stopVirtualMachine", id=vm["id"]))
    before = pool_used(cloud, zone)
    grown = alice.wait(alice("resizeVolume", id=volume["id"], size=20))["volume"]
    assert grown["size"] == 20 * GiB and grown["state"] == "Ready"
    assert pool_used(cloud, zone) == before + 10 * GiB
    assert [size for p, (_, size) in sim_volumes(cloud).items() if volume["id"] in p] == [20 * GiB]
    fails(431, alice, "createVolume", diskofferingid=disk_offering(alice, "Custom"), zoneid=zone["zone"])


def test_a_pool_in_maintenance_takes_no_new_volumes(cloud, zone, alice, admin):
    vm = deploy(alice, cloud, zone)
    alice.wait(alice("stopVirtualMachine", id=vm["id"]))
    volume = alice.wait(alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"]))["volume"]
    admin.wait(admin("enableStorageMaintenance", id=zone["pool"]))
    job = alice("attachVolume", id=volume["id"], virtualmachineid=vm["id"])
    body = fails(533, alice.wait, job)
    assert "maintenance" in body["errortext"]
    after = alice("listVolumes", id=volume["id"])["volume"][0]
    assert after["state"] == "Allocated" and "virtualmachineid" not in after, "the failed attach is undone"
    admin.wait(admin("cancelStorageMaintenance", id=zone["pool"]))
    assert alice.wait(alice("attachVolume", id=volume["id"], virtualmachineid=vm["id"]))["volume"]["state"] == "Ready"


def test_hot_attach_failure_leaves_the_volume_ready_and_detached(cloud, zone, alice, admin):
    vm = deploy(alice, cloud, zone)
    volume = alice.wait(alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"]))["volume"]
    host = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    admin("configureSimulator", hostid=host, name="start", value="simulated hot-plug failure")
    body = fails(534, alice.wait, alice("attachVolume", id=volume["id"], virtualmachineid=vm["id"]))
    assert "simulated hot-plug failure" in body["errortext"]
    after = alice("listVolumes", id=volume["id"])["volume"][0]
    assert after["state"] == "Ready" and "virtualmachineid" not in after, "created on the way, then detached"
    assert alice.wait(alice("attachVolume", id=volume["id"], virtualmachineid=vm["id"]))["volume"]["deviceid"] == 1


def test_a_failing_create_leaves_no_file_and_gives_the_space_back(cloud, zone, alice, monkeypatch):
    vm = deploy(alice, cloud, zone)
    before = pool_used(cloud, zone)
    storage = cloud.plugins.storage["simulator"]

    def broken(pool, volume, template):
        raise OSError("simulated disk failure")

    monkeypatch.setattr(storage, "create_volume", broken)
    volume = alice.wait(alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"]))["volume"]
    fails(530, alice.wait, alice("attachVolume", id=volume["id"], virtualmachineid=vm["id"]))
    after = alice("listVolumes", id=volume["id"])["volume"][0]
    assert after["state"] == "Allocated" and "virtualmachineid" not in after
    assert pool_used(cloud, zone) == before and not [p for p in sim_volumes(cloud) if volume["id"] in p]


def test_migrate_moves_the_file_and_the_space(cloud, zone, alice, admin):
    admin("createStoragePool", name="p1", url="sim://p1?capacity=100", zoneid=zone["zone"], scope="ZONE",
          hypervisor="Simulator")
    p1 = admin("listStoragePools", name="p1")["storagepool"][0]["id"]
    vm = deploy(alice, cloud, zone)
    volume = alice.wait(alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"],
                              virtualmachineid=vm["id"]))["volume"]
    fails(432, admin, "migrateVolume", volumeid=volume["id"], storageid=p1)  # its VM runs
    fails(432, alice, "migrateVolume", volumeid=volume["id"], storageid=p1)  # an admin command
    alice.wait(alice("detachVolume", id=volume["id"]))
    before = pool_used(cloud, zone)
    moved = admin.wait(admin("migrateVolume", volumeid=volume["id"], storageid=p1))["volume"]
    assert moved["storageid"] == p1 and moved["state"] == "Ready"
    assert pool_used(cloud, zone) == before - 5 * GiB and capacity_used(cloud)[(STORAGE, p1)] == 5 * GiB
    files = {p: url for p, (url, _) in sim_volumes(cloud).items() if volume["id"] in p}
    assert list(files.values()) == ["sim://p1?capacity=100"], "one copy, on the new pool"
    fails(431, admin, "migrateVolume", volumeid=volume["id"], storageid=p1)
    assert alice.wait(alice("attachVolume", id=volume["id"], virtualmachineid=vm["id"]))["volume"]["state"] == "Ready"


def test_volume_limits_are_532(cloud, zone, alice, admin):
    domain = admin("listDomains")["domain"][0]["id"]
    admin("updateResourceLimit", resourcetype=2, max=1, account="alice", domainid=domain)
    alice.wait(alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"]))
    fails(532, alice, "createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"])


def test_bad_input_is_431_naming_the_parameter(cloud, zone, alice):
    assert "diskofferingid" in fails(431, alice, "createVolume", zoneid=zone["zone"])["errortext"]
    assert "zoneid" in fails(431, alice, "createVolume", diskofferingid=disk_offering(alice))["errortext"]
    volume = alice.wait(alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"]))["volume"]
    assert "virtualmachineid" in fails(431, alice, "attachVolume", id=volume["id"],
                                       virtualmachineid="00000000-0000-0000-0000-000000000000")["errortext"]
    assert "invalid value. Invalid parameter id" in fails(431, alice, "attachVolume", id=zone["pool"],
                                                          virtualmachineid=volume["id"])["errortext"]
    assert "size" in fails(431, alice, "resizeVolume", id="00000000-0000-0000-0000-000000000000",
                           size="big")["errortext"]


def test_a_volume_left_mid_operation_by_a_dead_worker_is_settled(cloud, zone, alice):
    from core.model import Volume

    vm = deploy(alice, cloud, zone)
    volume = alice.wait(alice("createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"],
                              virtualmachineid=vm["id"]))["volume"]
    with cloud.db.transaction() as session:
        session.execute(sa.update(Volume).where(Volume.uuid == volume["id"]).values(state="Attaching"))
    snapshot_ops.storage_pass(cloud)
    assert alice("listVolumes", id=volume["id"])["volume"][0]["state"] == "Ready"
    # a creation cut short: the partial file goes, the volume is Allocated again, the space comes back
    with cloud.db.transaction() as session:
        session.execute(sa.update(Volume).where(Volume.uuid == volume["id"]).values(state="Creating"))
    snapshot_ops.storage_pass(cloud)
    after = alice("listVolumes", id=volume["id"])["volume"][0]
    assert after["state"] == "Allocated" and pool_used(cloud, zone) == 2 * GiB
    assert not [p for p in sim_volumes(cloud) if volume["id"] in p]


def test_a_volume_with_projectid_belongs_to_the_project_and_counts_against_it(cloud, zone, alice, admin):
    """createVolume projectid=<p>: the project owns the volume and is charged for it, not the caller;
    the project's limits apply (532), and account with projectid is 431."""
    project = alice.wait(alice("createProject", name="vault"))["project"]
    volume = alice.wait(alice("createVolume", name="shared", diskofferingid=disk_offering(alice),
                              zoneid=zone["zone"], projectid=project["id"]))["volume"]
    assert (volume["projectid"], volume.get("account")) == (project["id"], None)
    assert [v["id"] for v in alice("listVolumes", projectid=project["id"])["volume"]] == [volume["id"]]
    assert alice("listProjects", id=project["id"])["project"][0]["volumetotal"] == 1
    assert alice("listAccounts")["account"][0]["volumetotal"] == 0
    admin("updateResourceLimit", resourcetype=2, max=1, projectid=project["id"])
    fails(532, alice, "createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"], projectid=project["id"])
    assert "projectid" in fails(431, alice, "createVolume", diskofferingid=disk_offering(alice), zoneid=zone["zone"],
                                projectid=project["id"], account="alice",
                                domainid=admin("listDomains")["domain"][0]["id"])["errortext"]
