"""VM snapshots through the API on simulated hosts (the simulator keeps them as bookkeeping):
createVMSnapshot, listVMSnapshot, revertToVMSnapshot, deleteVMSnapshot; CloudStack's rules
on the VM's state, failures that leave nothing half-done, limits and isolation."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, make_account, offering_id


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud)


@pytest.fixture
def sim(cloud):
    return cloud.plugins.hypervisors["simulator"]


@pytest.fixture
def tenant(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "alice"))


@pytest.fixture
def vm(tenant, cloud, zone):
    job = tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                 templateid=zone["template"], name="snappy")
    return tenant.wait(job)["virtualmachine"]


def snapshot_names(sim, vm_name_on_host: str) -> list[str]:
    with sim.state.cursor() as cur:
        return [r[0] for r in cur.execute("SELECT name FROM sim_vm_snapshot WHERE vm_name = ? ORDER BY rowid",
                                          (vm_name_on_host,))]


def instance_name(admin, vm_id: str) -> str:
    return admin("listVirtualMachines", id=vm_id)["virtualmachine"][0]["instancename"]


def take(client, vm_id: str, **kw) -> dict:
    job = client("createVMSnapshot", virtualmachineid=vm_id, **kw)
    snapshot = client.wait(job)["vmsnapshot"]
    assert snapshot["id"] == job["id"]
    return snapshot


def test_a_running_vms_snapshot_holds_its_memory(tenant, admin, vm, sim):
    with pytest.raises(ApiError) as err:
        tenant("createVMSnapshot", virtualmachineid=vm["id"])
    assert err.value.status == 431 and "snapshotmemory" in err.value.body["errortext"]

    job = tenant("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True, description="first one")
    assert set(job) == {"jobid", "id"}
    snap = tenant.wait(job)["vmsnapshot"]
    instance = instance_name(admin, vm["id"])
    assert snap["id"] == job["id"] and snap["state"] == "Ready" and snap["type"] == "DiskAndMemory"
    assert snap["name"].startswith(f"{instance}_VS_") and snap["displayname"] == snap["name"]
    assert snap["current"] is True and "parent" not in snap
    assert snap["virtualmachineid"] == vm["id"] and snap["virtualmachinename"] == "snappy"
    assert snap["account"] == "alice" and snap["hypervisor"] == "Simulator" and snap["description"] == "first one"
    assert snapshot_names(sim, instance) == [snap["name"]]

    listed = tenant("listVMSnapshot", virtualmachineid=vm["id"])
    assert listed["count"] == 1 and listed["vmSnapshot"][0]["id"] == snap["id"]


def test_parents_current_revert_and_delete(tenant, admin, vm, sim):
    first = take(tenant, vm["id"], snapshotmemory=True, name="one")
    second = take(tenant, vm["id"], snapshotmemory=True, name="two")
    assert second["parent"] == first["id"] and second["parentName"] == "one" and second["current"]
    assert not tenant("listVMSnapshot", vmsnapshotid=first["id"])["vmSnapshot"][0]["current"]

    reverted = tenant.wait(tenant("revertToVMSnapshot", vmsnapshotid=first["id"]))["virtualmachine"]
    assert reverted["id"] == vm["id"] and reverted["state"] == "Running"
    rows = {s["displayname"]: s for s in tenant("listVMSnapshot")["vmSnapshot"]}
    assert rows["one"]["current"] and not rows["two"]["current"]

    # deleting the current snapshot makes its parent current; its children hang from its parent
    third = take(tenant, vm["id"], snapshotmemory=True, name="three")
    assert third["parent"] == first["id"]
    assert tenant.wait(tenant("deleteVMSnapshot", vmsnapshotid=first["id"])) == {"success": True}
    rows = {s["displayname"]: s for s in tenant("listVMSnapshot")["vmSnapshot"]}
    assert set(rows) == {"two", "three"} and "parent" not in rows["two"] and "parent" not in rows["three"]
    assert snapshot_names(sim, instance_name(admin, vm["id"])) == [second["name"], third["name"]]
    assert tenant("listVMSnapshot", name="one") == {}
    assert tenant("listVMSnapshot", keyword="thr")["count"] == 1


def test_a_revert_never_changes_the_vms_power_state(tenant, vm):
    memory = take(tenant, vm["id"], snapshotmemory=True, name="mem")
    tenant.wait(tenant("stopVirtualMachine", id=vm["id"]))
    with pytest.raises(ApiError) as err:
        tenant("revertToVMSnapshot", vmsnapshotid=memory["id"])
    assert err.value.status == 431 and "Start it first" in err.value.body["errortext"]
    with pytest.raises(ApiError) as err:
        tenant("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True)
    assert err.value.status == 431 and "not Running" in err.value.body["errortext"]

    disk = take(tenant, vm["id"], name="disk")
    assert disk["type"] == "Disk"
    reverted = tenant.wait(tenant("revertToVMSnapshot", vmsnapshotid=disk["id"]))["virtualmachine"]
    assert reverted["state"] == "Stopped"

    tenant.wait(tenant("startVirtualMachine", id=vm["id"]))
    with pytest.raises(ApiError) as err:
        tenant("revertToVMSnapshot", vmsnapshotid=disk["id"])
    assert err.value.status == 431 and "Stop it first" in err.value.body["errortext"]
    assert tenant.wait(tenant("revertToVMSnapshot", vmsnapshotid=memory["id"]))["virtualmachine"]["state"] == "Running"


def test_a_stopped_vm_gets_back_the_offering_of_its_disk_snapshot(cloud, tenant, vm):
    tenant.wait(tenant("stopVirtualMachine", id=vm["id"]))
    disk = take(tenant, vm["id"], name="small")
    medium = offering_id(cloud, "Medium Instance")
    tenant("changeServiceForVirtualMachine", id=vm["id"], serviceofferingid=medium)
    reverted = tenant.wait(tenant("revertToVMSnapshot", vmsnapshotid=disk["id"]))["virtualmachine"]
    assert reverted["serviceofferingid"] == offering_id(cloud)


def test_failed_driver_calls_leave_nothing_half_done(tenant, admin, vm, sim, zone):
    keys = zone["host_keys"]
    for key in keys:
        sim.inject(key, "snapshot", message="simulated snapshot failure")
    with pytest.raises(ApiError) as err:
        tenant.wait(tenant("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True))
    assert err.value.status == 534 and "simulated snapshot failure" in err.value.body["errortext"]
    assert tenant("listVMSnapshot") == {}, "a failed snapshot leaves no row"
    sim.clear_faults()

    snap = take(tenant, vm["id"], snapshotmemory=True)
    for action in ("revertToVMSnapshot", "deleteVMSnapshot"):
        for key in keys:
            sim.inject(key, "snapshot", message=f"simulated {action} failure")
        with pytest.raises(ApiError) as err:
            tenant.wait(tenant(action, vmsnapshotid=snap["id"]))
        assert err.value.status == 534
        sim.clear_faults()
        row = tenant("listVMSnapshot", vmsnapshotid=snap["id"])["vmSnapshot"][0]
        assert row["state"] == "Ready", f"{action} failed: the snapshot is as it was"
    assert snapshot_names(sim, instance_name(admin, vm["id"])) == [snap["name"]]


def test_expunging_the_vm_removes_its_snapshots(tenant, admin, vm, sim):
    take(tenant, vm["id"], snapshotmemory=True)
    instance = instance_name(admin, vm["id"])
    admin.wait(admin("destroyVirtualMachine", id=vm["id"], expunge=True))
    assert admin("listVMSnapshot", listall=True) == {}
    assert snapshot_names(sim, instance) == []


def test_another_account_can_neither_see_nor_touch_them(app, cloud, tenant, vm):
    snap = take(tenant, vm["id"], snapshotmemory=True)
    mallory = ApiClient.for_user(app, cloud, make_account(cloud, "mallory"))
    assert mallory("listVMSnapshot") == {}
    assert mallory("listVMSnapshot", listall=True) == {}
    for command, params in (("createVMSnapshot", {"virtualmachineid": vm["id"], "snapshotmemory": True}),
                            ("listVMSnapshot", {"virtualmachineid": vm["id"]}),
                            ("revertToVMSnapshot", {"vmsnapshotid": snap["id"]}),
                            ("deleteVMSnapshot", {"vmsnapshotid": snap["id"]})):
        with pytest.raises(ApiError) as err:
            mallory(command, **params)
        assert err.value.status == 531, command
    assert tenant("listVMSnapshot")["count"] == 1


def test_limits_names_and_bad_input(admin, tenant, vm):
    take(tenant, vm["id"], snapshotmemory=True, name="same")
    with pytest.raises(ApiError) as err:
        tenant("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True, name="same")
    assert err.value.status == 431 and "same" in err.value.body["errortext"]

    admin("updateConfiguration", name="vmsnapshot.max", value="1")
    with pytest.raises(ApiError) as err:
        tenant("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True)
    assert err.value.status == 532 and "vmsnapshot.max" in err.value.body["errortext"]

    with pytest.raises(ApiError) as err:
        tenant("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True, quiescevm=True)
    assert err.value.status == 432
    for command, params, name in (
            ("createVMSnapshot", {}, "virtualmachineid"),
            ("createVMSnapshot", {"virtualmachineid": "00000000-0000-0000-0000-000000000000"}, "virtualmachineid"),
            ("revertToVMSnapshot", {"vmsnapshotid": "nope"}, "vmsnapshotid"),
            ("deleteVMSnapshot", {"vmsnapshotid": "00000000-0000-0000-0000-000000000000"}, "vmsnapshotid"),
            ("listVMSnapshot", {"state": "Sleeping"}, "state")):
        with pytest.raises(ApiError) as err:
            tenant(command, **params)
        assert err.value.status == 431 and name in err.value.body["errortext"], (command, err.value.body)


def test_a_hypervisor_without_vm_snapshots_is_refused_with_432(tenant, vm, sim, monkeypatch):
    monkeypatch.setattr(sim, "capabilities", {**sim.capabilities, "vm_snapshots": False})
    with pytest.raises(ApiError) as err:
        tenant("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True)
    assert err.value.status == 432 and "Simulator" in err.value.body["errortext"]


def test_a_snapshot_whose_job_died_is_settled_and_can_be_deleted(cloud, tenant, admin, vm, sim):
    from core.model import VmSnapshot

    snap = take(tenant, vm["id"], snapshotmemory=True)
    with cloud.db.transaction() as session:  # what a worker killed in the middle of a take leaves
        row = session.scalars(sa.select(VmSnapshot).where(VmSnapshot.uuid == snap["id"])).one()
        row.state = "Creating"
    assert tenant.wait(tenant("deleteVMSnapshot", vmsnapshotid=snap["id"])) == {"success": True}
    assert tenant("listVMSnapshot") == {}
    assert snapshot_names(sim, instance_name(admin, vm["id"])) == []


def test_one_snapshot_task_per_vm_at_a_time(tenant, vm, sim, zone):
    for key in zone["host_keys"]:
        sim.inject(key, "snapshot", delay=1.0, fail=False)
    job = tenant("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True)
    with pytest.raises(ApiError) as err:
        tenant("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True)
    assert err.value.status == 431 and "another VM snapshot task" in err.value.body["errortext"]
    assert tenant.wait(job)["vmsnapshot"]["state"] == "Ready"


def test_listeventtypes_names_the_vm_snapshot_events_before_any_is_recorded(tenant):
    types = [t["name"] for t in tenant("listEventTypes")["eventtype"]]
    assert {"VMSNAPSHOT.CREATE", "VMSNAPSHOT.DELETE", "VMSNAPSHOT.REVERTTO"} <= set(types)


@pytest.mark.parametrize("command", ["stopVirtualMachine", "rebootVirtualMachine", "destroyVirtualMachine",
                                     "migrateVirtualMachine", "startVirtualMachine"])
def test_no_other_work_on_the_vm_while_its_snapshot_task_runs(tenant, admin, vm, sim, zone, command):
    """As CloudStack, VM work waits for nobody: it is refused (536) while a VM snapshot job of
    the VM is pending, and the VM is as the snapshot left it."""
    if command == "startVirtualMachine":
        tenant.wait(tenant("stopVirtualMachine", id=vm["id"]))
    before = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]
    for key in zone["host_keys"]:
        sim.inject(key, "snapshot", delay=1.0, fail=False)
    snap = tenant("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=command != "startVirtualMachine")
    client = admin if command == "migrateVirtualMachine" else tenant
    job = client(command, **({"virtualmachineid": vm["id"]} if command == "migrateVirtualMachine"
                             else {"id": vm["id"]}))
    with pytest.raises(ApiError) as err:
        client.wait(job)
    assert err.value.status == 536 and "active VM snapshot task" in err.value.body["errortext"], err.value.body
    assert tenant.wait(snap)["vmsnapshot"]["state"] == "Ready"
    after = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]
    assert (after["state"], after.get("hostid")) == (before["state"], before.get("hostid"))
