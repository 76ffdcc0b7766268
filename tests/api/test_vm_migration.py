"""migrateVirtualMachine on simulated hosts: the VM's host and the hosts' capacity move, and
CloudStack's refusals. The same command on two real libvirtds:
tests/plugins/hypervisor_kvm/test_api_migration.py."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.model import VirtualMachine
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, capacity_used, make_account, offering_id

CPU, MEMORY = 1, 0  # CloudStack's capacity types


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud)


@pytest.fixture
def tenant(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "mover"))


@pytest.fixture
def vm(tenant, cloud, zone):
    job = tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                 templateid=zone["template"], name="mover")
    return tenant.wait(job)["virtualmachine"]


def console(cloud, vm_id: str) -> str:
    """The console address kept with the VM (what the simulator's start_vm returns)."""
    with cloud.db.transaction() as session:
        return session.scalar(sa.select(VirtualMachine).where(VirtualMachine.uuid == vm_id)).details["console"]


def host_use(cloud, host: str) -> tuple[int, int]:
    used = capacity_used(cloud)
    return used[(CPU, host)], used[(MEMORY, host)]


def test_a_running_vm_moves_to_the_host_asked_for(cloud, admin, tenant, vm, zone):
    listed = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]
    source, instance = listed["hostid"], listed["instancename"]
    target = next(h for h in zone["hosts"] if h != source)
    held = host_use(cloud, source)
    assert held[0] > 0 and host_use(cloud, target) == (0, 0)
    key_of = dict(zip(zone["hosts"], zone["host_keys"]))
    assert console(cloud, vm["id"]) == f"sim://{key_of[source]}/{instance}"

    job = admin("migrateVirtualMachine", virtualmachineid=vm["id"], hostid=target)
    moved = admin.wait(job)["virtualmachine"]
    assert moved["state"] == "Running" and moved["hostid"] == target
    assert admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"] == target
    assert host_use(cloud, target) == held and host_use(cloud, source) == (0, 0)
    assert console(cloud, vm["id"]) == f"sim://{key_of[target]}/{instance}", "the target's console"
    assert any(vm["name"] in e["description"] for e in admin("listEvents", type="VM.MIGRATE", listall=True)["event"])

    # no hostid: the planner picks (the only other host is the first one)
    back = admin.wait(admin("migrateVirtualMachine", virtualmachineid=vm["id"]))["virtualmachine"]
    assert back["hostid"] == source


@pytest.mark.parametrize("params, status, words", [
    ({"hostid": "same"}, 431, "the host it runs on"),
    ({"hostid": "00000000-0000-0000-0000-000000000000"}, 431, "hostid"),
    ({"autoselect": False}, 431, "autoselect=true"),
    ({"storageid": "pool"}, 432, "migrateVolume"),
    ({"storageid": "pool", "hostid": "other"}, 431, "Only one of hostId and storageId"),
])
def test_refusals(admin, vm, zone, params, status, words):
    source = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    names = {"same": source, "other": next(h for h in zone["hosts"] if h != source), "pool": zone["pool"]}
    params = {k: names.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
    with pytest.raises(ApiError) as err:
        admin("migrateVirtualMachine", virtualmachineid=vm["id"], **params)
    assert err.value.status == status and words in err.value.body["errortext"], err.value.body
    assert admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"] == source


def test_only_a_running_vm_and_only_by_the_root_admin(admin, tenant, vm, zone):
    # users do not have the command at all, as in CloudStack (432 "does not exist or is not available")
    with pytest.raises(ApiError) as err:
        tenant("migrateVirtualMachine", virtualmachineid=vm["id"], hostid=zone["hosts"][0])
    assert err.value.status == 432 and "not available" in err.value.body["errortext"], err.value.body
    tenant.wait(tenant("stopVirtualMachine", id=vm["id"]))
    with pytest.raises(ApiError) as err:
        admin("migrateVirtualMachine", virtualmachineid=vm["id"], hostid=zone["hosts"][1])
    assert err.value.status == 431 and "Stopped, not Running" in err.value.body["errortext"]


def _set_host(cloud, host_uuid: str, **columns) -> None:
    from core.model import Host

    with cloud.db.transaction() as session:
        session.execute(sa.update(Host).where(Host.uuid == host_uuid).values(**columns))


@pytest.mark.parametrize("columns", [
    {"status": "Alert"}, {"status": "Down"}, {"status": "Disconnected"},
    {"resource_state": "Maintenance"}, {"resource_state": "PrepareForMaintenance"}, {"resource_state": "Disabled"},
])
def test_a_named_destination_that_is_not_up_and_enabled_is_refused(cloud, admin, vm, zone, columns):
    """As CloudStack: 431 "destination host is not in correct state"; the VM stays where it is."""
    source = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    target = next(h for h in zone["hosts"] if h != source)
    before = capacity_used(cloud)
    _set_host(cloud, target, **columns)
    with pytest.raises(ApiError) as err:
        admin.wait(admin("migrateVirtualMachine", virtualmachineid=vm["id"], hostid=target))
    assert err.value.status == 431 and "not in correct state" in err.value.body["errortext"], err.value.body
    assert next(iter(columns.values())) in err.value.body["errortext"]
    listed = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]
    assert (listed["state"], listed["hostid"]) == ("Running", source)
    assert capacity_used(cloud) == before


def test_the_planner_never_picks_a_host_that_is_not_up(cloud, admin, vm, zone):
    """No hostid: the only other host is in Alert, so nothing can take the VM (533)."""
    source = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    _set_host(cloud, next(h for h in zone["hosts"] if h != source), status="Alert")
    with pytest.raises(ApiError) as err:
        admin.wait(admin("migrateVirtualMachine", virtualmachineid=vm["id"]))
    assert err.value.status == 533, err.value.body
    assert admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"] == source


def test_a_start_on_a_named_host_that_is_down_says_why(cloud, admin, tenant, vm, zone):
    """startVirtualMachine hostid=<a Down host>: 533 naming the host's state, not a bare "no host"."""
    tenant.wait(tenant("stopVirtualMachine", id=vm["id"]))
    _set_host(cloud, zone["hosts"][0], status="Down")
    with pytest.raises(ApiError) as err:
        admin.wait(admin("startVirtualMachine", id=vm["id"], hostid=zone["hosts"][0]))
    assert err.value.status == 533 and "status Down" in err.value.body["errortext"], err.value.body
