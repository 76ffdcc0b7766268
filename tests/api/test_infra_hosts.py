"""Hosts through the API on the simulator: discovery by the driver, capacity rows,
allocation figures as CloudStack prints them, updates, deletes, and maintenance
with live migration."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.drivers import PowerState
from core.model import Host, VirtualMachine
from tests.core.factories import simulated_zone, zone_with_cluster
from tests.helpers import ApiClient, ApiError, capacity_used, make_account, offering_id

CPU, MEMORY = 1, 0
MiB = 1024**2
URL = "http://sim/c0/h0?cpus=8&mhz=2000&ram=16384"


@pytest.fixture
def cluster(cloud):
    with cloud.db.transaction() as session:
        zone, pod, cluster = zone_with_cluster(session)
        return {"zone": zone.uuid, "pod": pod.uuid, "cluster": cluster.uuid}


@pytest.fixture
def sim(cloud):
    return cloud.plugins.hypervisors["simulator"]


def add_host(admin, where, url=URL, **kw):
    args = dict(zoneid=where["zone"], podid=where["pod"], clusterid=where["cluster"], hypervisor="Simulator")
    args.update(kw)
    answer = admin("addHost", url=url, **args)
    assert answer["count"] == 1
    return answer["host"][0]


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kw)
    return info.value


def host_rows(cloud) -> int:
    with cloud.db.transaction() as session:
        return session.scalar(sa.select(sa.func.count(Host.id)).where(Host.removed.is_(None)))


def test_add_host_reports_what_the_driver_discovered(admin, cloud, cluster):
    host = add_host(admin, cluster, hosttags="gpu,ssd")
    assert (host["name"], host["state"], host["resourcestate"], host["type"]) == ("h0", "Up", "Enabled", "Routing")
    assert (host["hypervisor"], host["hypervisorversion"]) == ("Simulator", "simulator-1.0")
    assert (host["cpunumber"], host["cpuspeed"], host["cpusockets"]) == (8, 2000, 1)
    assert host["memorytotal"] == 16384 * MiB and host["memoryallocated"] == 0
    assert host["cpuallocated"] == "0%" and host["cpuwithoverprovisioning"] == "16000"
    assert host["hosttags"] == "gpu,ssd" and host["clusterid"] == cluster["cluster"]
    assert "lastpinged" in host and "created" in host
    used = capacity_used(cloud)
    assert (CPU, host["id"]) in used and (MEMORY, host["id"]) in used, "capacity rows come with the host"
    assert admin("listHosts", id=host["id"])["host"] == [host]
    for filters in (dict(clusterid=cluster["cluster"]), dict(name="h"), dict(state="up"), dict(type="Routing"),
                    dict(resourcestate="Enabled"), dict(hypervisor="simulator"), dict(zoneid=cluster["zone"])):
        assert admin("listHosts", **filters)["count"] == 1, filters
    assert admin("listHosts", state="Down") == {} and admin("listHosts", name="zz") == {}
    assert "HOST.ADD" in {e["type"] for e in admin("listEvents")["event"]}


def test_add_host_failures_add_nothing(admin, cloud, cluster, sim):
    sim.set_host_up("sim/c0/down", False)
    exc = error(add_host, admin, cluster, url="http://sim/c0/down")
    assert exc.status == 534 and "down" in exc.body["errortext"]
    sim.inject("sim/c0/flaky", "connect", message="no route to host")
    exc = error(add_host, admin, cluster, url="http://sim/c0/flaky")
    assert exc.status == 534 and "no route to host" in exc.body["errortext"]
    assert error(add_host, admin, cluster, url="ftp://sim/c0/h9").status == 431
    assert error(add_host, admin, cluster, url=URL, hypervisor="KVM").status == 431
    assert host_rows(cloud) == 0 and capacity_used(cloud) == {}
    add_host(admin, cluster)
    exc = error(add_host, admin, cluster)
    assert exc.status == 431 and "already" in exc.body["errortext"]
    exc = error(admin, "addHost", zoneid=cluster["zone"], podid=cluster["pod"], hypervisor="Simulator", url=URL)
    assert exc.status == 431 and "cluster" in exc.body["errortext"]
    assert error(admin, "addHost", zoneid=cluster["zone"], podid=cluster["pod"], clustername="nope",
                 hypervisor="Simulator", url="http://sim/c0/h5").status == 431
    assert add_host(admin, cluster, url="http://sim/c0/h5", clusterid=None, clustername="z1-c0")["name"] == "h5"
    assert host_rows(cloud) == 2


def test_allocation_figures_follow_the_vms_and_the_cluster_ratio(admin, app, cloud):
    zone = simulated_zone(cloud, hosts=1)  # 4 cores x 2000 MHz, 8 GiB
    tenant = ApiClient.for_user(app, cloud, make_account(cloud, "alice"))
    tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                       templateid=zone["template"]))
    host = admin("listHosts", id=zone["hosts"][0])["host"][0]
    assert host["cpuallocated"] == "6.25%" and host["cpuallocatedvalue"] == 500
    assert host["memoryallocated"] == 512 * MiB and host["memoryallocatedpercentage"] == "6.25%"
    admin("updateCluster", id=zone["cluster"], cpuovercommitratio=2)
    host = admin("listHosts", id=zone["hosts"][0])["host"][0]
    assert host["cpuwithoverprovisioning"] == "16000" and host["cpuallocated"] == "3.12%", "half-even, as Java"


def test_update_host_tags_and_allocation_state(admin, cluster):
    host = add_host(admin, cluster)
    updated = admin("updateHost", id=host["id"], hosttags="fast", allocationstate="Disable")["host"]
    assert (updated["hosttags"], updated["resourcestate"]) == ("fast", "Disabled")
    assert admin("updateHost", id=host["id"], allocationstate="Enable")["host"]["resourcestate"] == "Enabled"
    assert error(admin, "updateHost", id=host["id"], allocationstate="Sideways").status == 431
    assert error(admin, "updateHost", id="2b6f0f4a-0000-4000-8000-000000000000").status == 431


def test_delete_host_refuses_vms_unless_forced_and_drops_capacity(admin, app, cloud, sim):
    zone = simulated_zone(cloud, hosts=2)
    tenant = ApiClient.for_user(app, cloud, make_account(cloud, "alice"))
    vm = tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                            templateid=zone["template"]))["virtualmachine"]
    busy = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    idle = next(h for h in zone["hosts"] if h != busy)
    exc = error(admin, "deleteHost", id=busy)
    assert exc.status == 536 and "VMs" in exc.body["errortext"]
    assert admin("deleteHost", id=idle) == {"success": True}
    assert not any(owner == idle for _, owner in capacity_used(cloud)), "its capacity rows went with it"
    assert admin("deleteHost", id=busy, forced=True) == {"success": True}
    assert tenant("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["state"] == "Stopped"
    assert admin("listHosts") == {}
    assert all(owner not in zone["hosts"] for _, owner in capacity_used(cloud))
    reported = {**sim.power_states(_ref(zone["host_keys"][0])), **sim.power_states(_ref(zone["host_keys"][1]))}
    assert set(reported.values()) <= {PowerState.OFF}, "a host that answers has its VMs powered off first"


def test_maintenance_live_migrates_the_vms_then_cancel(admin, app, cloud):
    zone = simulated_zone(cloud, hosts=2)
    tenant = ApiClient.for_user(app, cloud, make_account(cloud, "alice"))
    vm = tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                            templateid=zone["template"]))["virtualmachine"]
    source = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    job = admin("prepareHostForMaintenance", id=source)
    assert job["id"] == source
    assert admin.wait(job)["host"]["resourcestate"] == "Maintenance"
    moved = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]
    assert moved["state"] == "Running" and moved["hostid"] != source
    used = capacity_used(cloud)
    assert used[(CPU, source)] == 0 and used[(CPU, moved["hostid"])] == 500, "the reservation moved with the VM"
    assert "VM.MIGRATE" in {e["type"] for e in tenant("listEvents")["event"]}, "the owner hears of the move"
    recorded = {(e["type"], e["state"]) for e in admin("listEvents")["event"]}
    assert {("MAINT.PREPARE", "Scheduled"), ("MAINT.PREPARE", "Completed")} <= recorded
    assert error(admin, "prepareHostForMaintenance", id=source).status == 431
    assert error(admin, "updateHost", id=source, allocationstate="Enable").status == 431
    assert admin.wait(admin("cancelHostMaintenance", id=source))["host"]["resourcestate"] == "Enabled"
    assert error(admin, "cancelHostMaintenance", id=source).status == 431


def test_maintenance_without_room_elsewhere_is_error_in_maintenance(admin, app, cloud):
    zone = simulated_zone(cloud, hosts=1)
    tenant = ApiClient.for_user(app, cloud, make_account(cloud, "alice"))
    vm = tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                            templateid=zone["template"]))["virtualmachine"]
    exc = error(admin.wait, admin("prepareHostForMaintenance", id=zone["hosts"][0]))
    assert exc.status == 533 and "No other host" in exc.body["errortext"]
    assert admin("listHosts")["host"][0]["resourcestate"] == "ErrorInMaintenance"
    assert tenant("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["state"] == "Running"
    assert admin.wait(admin("cancelHostMaintenance", id=zone["hosts"][0]))["host"]["resourcestate"] == "Enabled"


def test_a_failed_migration_leaves_the_vm_where_it_was(admin, app, cloud, sim):
    zone = simulated_zone(cloud, hosts=2)
    tenant = ApiClient.for_user(app, cloud, make_account(cloud, "alice"))
    vm = tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                            templateid=zone["template"]))["virtualmachine"]
    source = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    sim.inject(zone["host_keys"][zone["hosts"].index(source)], "migrate", message="link down")
    exc = error(admin.wait, admin("prepareHostForMaintenance", id=source))
    assert exc.status == 534 and "link down" in exc.body["errortext"]
    with cloud.db.transaction() as session:
        row = session.scalar(sa.select(VirtualMachine).where(VirtualMachine.uuid == vm["id"]))
        assert (row.state, row.host.uuid) == ("Running", source)
    assert sum(v for (kind, _), v in capacity_used(cloud).items() if kind == CPU) == 500, "nothing reserved twice"


def _ref(key):
    from core.drivers import HostRef

    return HostRef(uuid="", name="", url="", details={"sim_key": key})


def test_numbers_are_printed_as_cloudstack_prints_them():
    from api.views.infrastructure import cs_decimal, cs_percent

    assert [cs_decimal(v) for v in (0, 12.5, 3.125, 3.135, 16000.0, 2 / 3)] == [
        "0", "12.5", "3.12", "3.14", "16000", "0.67"]
    assert (cs_percent(1, 8), cs_percent(5, 0)) == ("12.5%", "0%")
