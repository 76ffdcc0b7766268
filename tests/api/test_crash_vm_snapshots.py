"""kill -9 of ``strato serve`` (embedded worker) or of a ``strato worker`` (Redis) while a VM
snapshot is being taken or deleted: after the restart (start-up recovery and the periodic
pass) the VM snapshot must not stay Creating / Expunging."""

from __future__ import annotations

import time

import pytest

from tests.api.crash_kit import api, audit, kill_all, restart, serve, tenant, world  # noqa: F401

pytestmark = pytest.mark.slow


def _running_vm(w, c, a):
    vm = c.deployVirtualMachine(zoneid=w["zone"]["zone"], serviceofferingid=w["offering"],
                                templateid=w["zone"]["template"], fetch_result=True)["virtualmachine"]
    return vm, a.listVirtualMachines(id=vm["id"])["virtualmachine"][0]["hostid"]


def _vm_snapshots(c, vm_id):
    return [(s["id"], s["state"]) for s in c.listVMSnapshot(virtualmachineid=vm_id).get("vmSnapshot", [])]


@pytest.mark.parametrize("broker", [False, True], ids=["kill-serve", "kill-worker"])
def test_a_vm_snapshot_whose_job_died_does_not_stay_creating(world, broker):
    w = world
    server = serve(w, broker)
    c, a = tenant(w, server), tenant(w, server, admin=True)
    vm, host = _running_vm(w, c, a)
    a.configureSimulator(hostid=host, name="snapshot", delay=5, fail=False)  # the hypervisor's snapshot hangs
    job = c.createVMSnapshot(virtualmachineid=vm["id"], snapshotmemory=True)
    time.sleep(1.5)
    assert [state for _, state in _vm_snapshots(c, vm["id"])] == ["Creating"]
    kill_all(w)

    cloud = restart(w)  # start-up recovery + two periodic passes
    try:
        tenant_api = api(w, cloud)
        assert tenant_api("queryAsyncJobResult", jobid=job["jobid"])["jobstatus"] == 2
        left = [(s["id"], s["state"]) for s in tenant_api("listVMSnapshot", virtualmachineid=vm["id"])
                .get("vmSnapshot", [])]
        assert not [s for s in left if s[1] in ("Allocated", "Creating")], \
            f"the VM snapshot whose job died is still {left} after recovery"
        assert audit(cloud, w["sim"]) == {}
    finally:
        cloud.close()


@pytest.mark.parametrize("broker", [False, True], ids=["kill-serve", "kill-worker"])
def test_a_vm_snapshot_whose_deletion_died_does_not_stay_expunging(world, broker):
    w = world
    server = serve(w, broker)
    c, a = tenant(w, server), tenant(w, server, admin=True)
    vm, host = _running_vm(w, c, a)
    snap = c.createVMSnapshot(virtualmachineid=vm["id"], snapshotmemory=True, fetch_result=True)["vmsnapshot"]
    a.configureSimulator(hostid=host, name="snapshot", delay=5, fail=False)  # the hypervisor's delete hangs
    job = c.deleteVMSnapshot(vmsnapshotid=snap["id"])
    time.sleep(1.5)
    assert _vm_snapshots(c, vm["id"]) == [(snap["id"], "Expunging")]
    kill_all(w)

    cloud = restart(w)
    try:
        tenant_api = api(w, cloud)
        assert tenant_api("queryAsyncJobResult", jobid=job["jobid"])["jobstatus"] == 2
        left = [(s["id"], s["state"]) for s in tenant_api("listVMSnapshot", virtualmachineid=vm["id"])
                .get("vmSnapshot", [])]
        assert not [s for s in left if s[1] == "Expunging"], \
            f"the VM snapshot whose deletion died is still {left} after recovery"
        assert audit(cloud, w["sim"]) == {}
    finally:
        cloud.close()
