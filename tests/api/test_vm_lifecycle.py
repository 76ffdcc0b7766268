"""A VM's life through the API on simulated hosts: deploy, stop, start, reboot, destroy,
recover, expunge; failures that leave nothing allocated; isolation between accounts."""

from __future__ import annotations

import pytest

from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, capacity_used, make_account, offering_id

CPU, MEMORY, STORAGE = 1, 0, 3


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud)


@pytest.fixture
def tenant(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "alice"))


def deploy(client, cloud, zone, **kw):
    return client("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                  templateid=zone["template"], **kw)


def test_deploy_answers_a_job_and_the_vm_runs(cloud, zone, tenant):
    job = deploy(tenant, cloud, zone, name="web1")
    assert set(job) == {"jobid", "id"}
    vm = tenant.wait(job)["virtualmachine"]
    assert vm["id"] == job["id"] and vm["name"] == "web1" and vm["state"] == "Running"
    assert vm["account"] == "alice" and vm["nic"][0]["ipaddress"].startswith("10.0.0.")
    assert "hostid" not in vm and "instancename" not in vm, "users do not see where their VM runs"
    listed = tenant("listVirtualMachines")
    assert listed["count"] == 1 and listed["virtualmachine"][0]["state"] == "Running"
    used = capacity_used(cloud)
    assert sum(v for (kind, _), v in used.items() if kind == CPU) == 500
    assert sum(v for (kind, _), v in used.items() if kind == MEMORY) == 512 * 1024**2


def allow_users_to_expunge(cloud):
    with cloud.db.transaction() as session:
        cloud.config.set(session, "allow.user.expunge.recover.vm", "true")


def test_stop_start_reboot_destroy_recover_expunge(cloud, zone, tenant, admin):
    allow_users_to_expunge(cloud)
    vm_id = tenant.wait(deploy(tenant, cloud, zone))["virtualmachine"]["id"]
    assert tenant.wait(tenant("stopVirtualMachine", id=vm_id))["virtualmachine"]["state"] == "Stopped"
    assert all(v == 0 for (kind, _), v in capacity_used(cloud).items() if kind in (CPU, MEMORY))
    assert tenant.wait(tenant("startVirtualMachine", id=vm_id))["virtualmachine"]["state"] == "Running"
    assert tenant.wait(tenant("rebootVirtualMachine", id=vm_id))["virtualmachine"]["state"] == "Running"
    assert tenant.wait(tenant("destroyVirtualMachine", id=vm_id))["virtualmachine"]["state"] == "Destroyed"
    assert all(v == 0 for (kind, _), v in capacity_used(cloud).items() if kind in (CPU, MEMORY))
    assert tenant("recoverVirtualMachine", id=vm_id)["virtualmachine"]["state"] == "Stopped"
    tenant.wait(tenant("destroyVirtualMachine", id=vm_id))
    assert admin.wait(admin("expungeVirtualMachine", id=vm_id)) == {"success": True}
    assert tenant("listVirtualMachines") == {}
    assert all(v == 0 for v in capacity_used(cloud).values()), "expunge gives the pool space back too"
    sim = cloud.plugins.hypervisors["simulator"]
    assert not any(sim.power_states(h) for h in _host_refs(cloud)), "no VM left on any simulated host"


def _host_refs(cloud):
    from core.model import Host
    from core.orchestration.refs import host_ref

    with cloud.db.transaction() as session:
        return [host_ref(h) for h in session.query(Host).all()]


def test_destroy_with_expunge_removes_at_once(cloud, zone, tenant):
    allow_users_to_expunge(cloud)
    vm_id = tenant.wait(deploy(tenant, cloud, zone))["virtualmachine"]["id"]
    tenant.wait(tenant("destroyVirtualMachine", id=vm_id, expunge=True))
    assert tenant("listVirtualMachines") == {}
    assert all(v == 0 for v in capacity_used(cloud).values())


def test_deploy_without_capacity_fails_533_and_keeps_nothing(cloud, zone, tenant):
    big = _offering(cloud, cpus=32)  # more than any host has, within max.account.cpus (40)
    job = tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=big, templateid=zone["template"])
    with pytest.raises(ApiError) as err:
        tenant.wait(job)
    assert err.value.status == 533 and "Unable to create a deployment" in err.value.body["errortext"]
    vm = tenant("listVirtualMachines")["virtualmachine"][0]
    assert vm["state"] == "Error"
    assert all(v == 0 for v in capacity_used(cloud).values()), "nothing stays allocated"


def _offering(cloud, cpus=1, mhz=500, memory=512):
    from core.model import ServiceOffering

    with cloud.db.transaction() as session:
        offering = ServiceOffering(name=f"o{cpus}x{mhz}x{memory}", display_text="t", cpu_number=cpus,
                                   cpu_speed=mhz, memory=memory)
        session.add(offering)
        session.flush()
        return offering.uuid


def test_a_failing_start_releases_capacity_and_removes_the_root_volume(cloud, zone, tenant):
    sim = cloud.plugins.hypervisors["simulator"]
    for key in zone["host_keys"]:
        sim.inject(key, "start", count=1, message="simulated start failure")
    job = deploy(tenant, cloud, zone)
    with pytest.raises(ApiError) as err:
        tenant.wait(job)
    assert err.value.status == 534 and "simulated start failure" in err.value.body["errortext"]
    assert all(v == 0 for v in capacity_used(cloud).values())
    volumes = tenant("listVolumes")["volume"]
    assert volumes[0]["state"] == "Allocated", "the root volume was removed from the pool"
    storage = cloud.plugins.storage["simulator"]
    with storage.state.cursor() as cur:
        assert cur.execute("SELECT COUNT(*) FROM sim_volume").fetchone()[0] == 0


def test_bad_input_is_431_naming_the_parameter(cloud, zone, tenant):
    with pytest.raises(ApiError) as err:
        tenant("deployVirtualMachine", zoneid=zone["zone"], templateid=zone["template"])
    assert err.value.status == 431 and "serviceofferingid" in err.value.body["errortext"]
    with pytest.raises(ApiError) as err:
        deploy(tenant, cloud, {**zone, "zone": "00000000-0000-0000-0000-000000000000"})
    assert err.value.status == 431 and "zoneid" in err.value.body["errortext"]
    with pytest.raises(ApiError) as err:
        tenant("stopVirtualMachine", id="not-a-uuid")
    assert err.value.status == 431 and "id" in err.value.body["errortext"]
    with pytest.raises(ApiError) as err:
        deploy(tenant, cloud, zone, userdata="%%% not base64")
    assert err.value.status == 431 and "userdata" in err.value.body["errortext"]


def test_another_account_cannot_see_or_touch_the_vm(app, cloud, zone, tenant):
    vm_id = tenant.wait(deploy(tenant, cloud, zone))["virtualmachine"]["id"]
    bob = ApiClient.for_user(app, cloud, make_account(cloud, "bob"))
    assert bob("listVirtualMachines") == {}
    assert bob("listVirtualMachines", id=vm_id) == {}
    assert bob("listVirtualMachines", listall=True) == {}
    for command in ("stopVirtualMachine", "rebootVirtualMachine", "destroyVirtualMachine", "startVirtualMachine"):
        with pytest.raises(ApiError) as err:
            bob(command, id=vm_id)
        assert err.value.status == 531, command
    assert tenant("listVirtualMachines", id=vm_id)["virtualmachine"][0]["state"] == "Running"


def test_admin_sees_everything_with_listall(cloud, zone, tenant, admin):
    tenant.wait(deploy(tenant, cloud, zone))
    assert admin("listVirtualMachines") == {}, "without listall an admin lists its own account's VMs"
    listed = admin("listVirtualMachines", listall=True)["virtualmachine"]
    assert listed[0]["account"] == "alice" and "hostid" in listed[0] and "instancename" in listed[0]


def test_change_offering_only_when_stopped(cloud, zone, tenant):
    vm_id = tenant.wait(deploy(tenant, cloud, zone))["virtualmachine"]["id"]
    medium = offering_id(cloud, "Medium Instance")
    with pytest.raises(ApiError) as err:
        tenant("changeServiceForVirtualMachine", id=vm_id, serviceofferingid=medium)
    assert err.value.status == 431 and "stop it" in err.value.body["errortext"]
    tenant.wait(tenant("stopVirtualMachine", id=vm_id))
    vm = tenant("changeServiceForVirtualMachine", id=vm_id, serviceofferingid=medium)["virtualmachine"]
    assert vm["serviceofferingname"] == "Medium Instance" and vm["memory"] == 1024
    assert tenant("updateVirtualMachine", id=vm_id, displayname="renamed")["virtualmachine"]["displayname"] == "renamed"


def test_vm_state_changes_reach_plugins(cloud, zone, tenant):
    """strato_vm_state_changed fires after each committed transition, in order."""
    from core import hookimpl

    seen = []

    class Listener:
        @hookimpl
        def strato_vm_state_changed(self, vm_uuid, old_state, new_state, reason):
            seen.append((old_state, new_state, reason))

    cloud.plugins.register(Listener(), "listener")
    vm_id = tenant.wait(deploy(tenant, cloud, zone))["virtualmachine"]["id"]
    tenant.wait(tenant("stopVirtualMachine", id=vm_id))
    assert seen == [("Stopped", "Starting", "StartRequested"), ("Starting", "Running", "OperationSucceeded"),
                    ("Running", "Stopping", "StopRequested"), ("Stopping", "Stopped", "OperationSucceeded")]


def test_jobs_report_completion_to_plugins(cloud, zone, tenant):
    from core import hookimpl

    done = []

    class Listener:
        @hookimpl
        def strato_job_completed(self, job_uuid, command, status, result):
            done.append((job_uuid, command, status))

    cloud.plugins.register(Listener(), "listener")
    job = deploy(tenant, cloud, zone)
    tenant.wait(job)
    cloud.jobs.join()  # the hook runs right after the result is committed, in the worker thread
    assert (job["jobid"], "deployVirtualMachine", 1) in done


def test_a_pool_whose_plugin_is_not_enabled_fails_the_deploy_cleanly(cloud, zone, tenant):
    """Regression: the clean-up looked the missing plugin up outside its guard and left the VM Starting."""
    storage = cloud.plugins.storage.pop("simulator")  # as a server started without the pool's plugin
    try:
        job = deploy(tenant, cloud, zone)
        with pytest.raises(ApiError) as err:
            tenant.wait(job)
    finally:
        cloud.plugins.storage["simulator"] = storage
    assert err.value.status == 534 and "storage pool p0 is unavailable" in err.value.body["errortext"]
    assert tenant("listVirtualMachines")["virtualmachine"][0]["state"] == "Error"
    assert all(v == 0 for v in capacity_used(cloud).values())


def test_users_expunge_recover_and_see_destroyed_vms_only_when_the_settings_allow(cloud, zone, tenant, admin):
    vm_id = tenant.wait(deploy(tenant, cloud, zone))["virtualmachine"]["id"]
    for command, extra in (("destroyVirtualMachine", {"expunge": True}), ("expungeVirtualMachine", {}),
                           ("recoverVirtualMachine", {})):
        with pytest.raises(ApiError) as err:
            tenant(command, id=vm_id, **extra)
        assert err.value.status == 531 and "allow.user.expunge.recover.vm" in err.value.body["errortext"], command
    tenant.wait(tenant("destroyVirtualMachine", id=vm_id))
    assert tenant("listVirtualMachines") == {}, "allow.user.view.destroyed.vm is false"
    assert admin("listVirtualMachines", listall=True)["virtualmachine"][0]["state"] == "Destroyed"
    assert admin("listCapabilities")["capability"]["allowuserexpungerecovervm"] is False
    allow_users_to_expunge(cloud)
    assert admin("listCapabilities")["capability"]["allowuserexpungerecovervm"] is True
    assert tenant("recoverVirtualMachine", id=vm_id)["virtualmachine"]["state"] == "Stopped"


def test_vm_names_must_be_hostnames_and_unsupported_parameters_are_refused(cloud, zone, tenant):
    for name in ("bad_name!", "1starts-with-digit", "ends-with-", "x" * 64):
        with pytest.raises(ApiError) as err:
            deploy(tenant, cloud, zone, name=name)
        assert err.value.status == 431 and "name" in err.value.body["errortext"], name
    with pytest.raises(ApiError) as err:
        deploy(tenant, cloud, zone, keypair="mykey")
    assert err.value.status == 431 and "keypair" in err.value.body["errortext"]
    assert tenant("listVirtualMachines") == {}, "nothing was created"


def test_the_name_filter_matches_substrings(cloud, zone, tenant):
    for name in ("web-1", "web-2", "db-1"):
        tenant.wait(deploy(tenant, cloud, zone, name=name))
    assert sorted(v["name"] for v in tenant("listVirtualMachines", name="web")["virtualmachine"]) == ["web-1", "web-2"]
    assert tenant("listVirtualMachines", name="%") == {}, "LIKE wildcards are taken literally"
