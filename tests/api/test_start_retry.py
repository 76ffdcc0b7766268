"""A start that fails on the host the planner chose moves to another suitable host, as
CloudStack's deployment retries with the failed host avoided: each host once, then the
job fails with the last host's reason and nothing is left anywhere."""

from __future__ import annotations

import pytest

from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, capacity_used, make_account, offering_id

MEMORY = 0


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud, hosts=2)


@pytest.fixture
def tenant(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "rhea"))


def vms_on_hosts(cloud, zone) -> dict:
    """{host uuid: instance names the simulator runs there}."""
    from core.model import Host
    from core.orchestration.refs import host_ref

    sim = cloud.plugins.hypervisors["simulator"]
    with cloud.db.transaction() as session:
        refs = {h.uuid: host_ref(h) for h in session.query(Host).filter(Host.uuid.in_(zone["hosts"]))}
    return {uuid: sorted(sim.power_states(ref)) for uuid, ref in refs.items()}


def memory_held(cloud) -> dict:
    return {where: used for (kind, where), used in capacity_used(cloud).items() if kind == MEMORY and used}


def deploy(tenant, cloud, zone, **kw):
    return tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                  templateid=zone["template"], name="web1", **kw)


def test_a_start_that_fails_on_one_host_runs_on_the_other(admin, tenant, cloud, zone):
    first, second = zone["hosts"]  # first fit: the planner picks the first host
    admin("configureSimulator", hostid=first, name="start", value="disk on fire")
    vm = tenant.wait(deploy(tenant, cloud, zone))["virtualmachine"]
    assert vm["state"] == "Running"
    assert admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"] == second
    assert memory_held(cloud) == {second: 512 * 1024**2}, "nothing held on the host that failed"
    assert vms_on_hosts(cloud, zone)[first] == []


def test_a_restart_moves_off_its_last_host_when_that_host_fails(admin, tenant, cloud, zone):
    vm = tenant.wait(deploy(tenant, cloud, zone))["virtualmachine"]
    last = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    tenant.wait(tenant("stopVirtualMachine", id=vm["id"]))
    admin("configureSimulator", hostid=last, name="start", value="disk on fire")
    tenant.wait(tenant("startVirtualMachine", id=vm["id"]))
    listed = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]
    assert listed["state"] == "Running" and listed["hostid"] != last


def test_a_start_that_fails_on_every_host_fails_holding_nothing(admin, tenant, cloud, zone):
    before = capacity_used(cloud)
    for host, reason in zip(zone["hosts"], ("disk on fire", "fan stuck")):
        admin("configureSimulator", hostid=host, name="start", value=reason)
    with pytest.raises(ApiError) as caught:
        tenant.wait(deploy(tenant, cloud, zone))
    assert caught.value.status == 534 and "fan stuck" in caught.value.body["errortext"], "the last host's reason"
    [vm] = tenant("listVirtualMachines")["virtualmachine"]
    assert vm["state"] == "Error" and "hostid" not in admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]
    assert capacity_used(cloud) == before, "no CPU, memory or storage held"
    assert vms_on_hosts(cloud, zone) == {h: [] for h in zone["hosts"]}


def test_a_start_on_a_host_the_admin_named_is_not_moved(admin, tenant, cloud, zone):
    first, second = zone["hosts"]
    vm = tenant.wait(deploy(tenant, cloud, zone, startvm=False))["virtualmachine"]
    admin("configureSimulator", hostid=second, name="start", value="disk on fire")
    with pytest.raises(ApiError) as caught:
        admin.wait(admin("startVirtualMachine", id=vm["id"], hostid=second))
    assert caught.value.status == 534
    assert admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["state"] == "Stopped"
    assert memory_held(cloud) == {}
