"""Per-VM statistics: listVirtualMachines details=stats and listVirtualMachinesMetrics ask the
hypervisor drivers for the Running VMs' stats; a plain list asks nothing."""

from __future__ import annotations

import pytest

from core.drivers import VmStats
from core.errors import ResourceUnavailableError
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, make_account, offering_id

STATS = {"cpuused", "memorykbs", "networkkbsread", "networkkbswrite", "diskkbsread", "diskkbswrite"}


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud)


@pytest.fixture
def tenant(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "alice"))


@pytest.fixture
def calls(cloud, monkeypatch):
    """Every vm_stats call the simulator gets, answering fixed counters (and failing for VMs in ``fail``)."""
    sim = cloud.plugins.hypervisors["simulator"]
    made = _Calls()
    fail = made.fail

    def vm_stats(host, vm):
        made.append(vm.instance_name)
        if vm.uuid in fail:
            raise ResourceUnavailableError(f"host {host.name} does not answer")
        return VmStats(cpu_used_percent=12.345, memory_kbs=vm.memory_mb * 1024, disk_read_bytes=3 * 1024**2,
                       disk_write_bytes=2048, network_read_bytes=5 * 1024 + 1000, network_write_bytes=1024)

    monkeypatch.setattr(sim, "vm_stats", vm_stats)
    return made


class _Calls(list):
    """The instance names asked for, in order; ``fail`` holds VM uuids whose host will not answer."""

    def __init__(self):
        super().__init__()
        self.fail: set[str] = set()


def deploy(tenant, cloud, zone, name, start=True):
    return tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                              templateid=zone["template"], name=name, startvm=start))["virtualmachine"]


def test_a_plain_list_asks_no_hypervisor(tenant, cloud, zone, calls):
    deploy(tenant, cloud, zone, "a")
    vm = tenant("listVirtualMachines")["virtualmachine"][0]
    assert not STATS & set(vm) and calls == []
    tenant("listVirtualMachines", details="nics,tmpl")
    assert calls == []


@pytest.mark.parametrize("details", ["stats", "all", "nics,STATS"])
def test_details_stats_fills_the_running_vms_stats(tenant, cloud, zone, calls, details):
    running = deploy(tenant, cloud, zone, "running")
    deploy(tenant, cloud, zone, "stopped", start=False)
    rows = {vm["name"]: vm for vm in tenant("listVirtualMachines", details=details)["virtualmachine"]}
    assert len(calls) == 1, "one driver call, for the Running VM only"
    stats = rows["running"]
    assert stats["id"] == running["id"]
    assert stats["cpuused"] == "12.35%" and stats["memorykbs"] == 512 * 1024
    assert stats["diskkbsread"] == 3072 and stats["diskkbswrite"] == 2
    assert stats["networkkbsread"] == 5 and stats["networkkbswrite"] == 1
    assert not STATS & set(rows["stopped"])


def test_a_host_that_cannot_answer_leaves_only_its_vm_without_stats(tenant, cloud, zone, calls):
    first, second = deploy(tenant, cloud, zone, "first"), deploy(tenant, cloud, zone, "second")
    calls.fail.add(first["id"])
    rows = {vm["name"]: vm for vm in tenant("listVirtualMachines", details="stats")["virtualmachine"]}
    assert not STATS & set(rows["first"]) and rows["second"]["cpuused"] == "12.35%"
    assert second["id"] == rows["second"]["id"]


def test_bad_details_are_431(tenant):
    with pytest.raises(ApiError) as err:
        tenant("listVirtualMachines", details="stats,everything")
    assert err.value.status == 431 and "everything" in err.value.body["errortext"]


def test_list_virtual_machines_metrics(tenant, cloud, zone, calls):
    vm = deploy(tenant, cloud, zone, "metered")
    deploy(tenant, cloud, zone, "idle", start=False)
    body = tenant("listVirtualMachinesMetrics")
    assert body["count"] == 2
    rows = {row["name"]: row for row in body["virtualmachine"]}
    metered, idle = rows["metered"], rows["idle"]
    assert metered["id"] == vm["id"] and metered["cpuused"] == "12.35%"
    assert metered["cputotal"] == "0.5 Ghz" and metered["memorytotal"] == "0.50 GiB"
    assert metered["networkread"] == "0.00 MiB" and metered["diskread"] == "3.00 MiB"
    assert metered["ipaddress"] == vm["nic"][0]["ipaddress"]
    assert idle["cputotal"] == "0.5 Ghz" and "cpuused" not in idle and "diskread" not in idle
    assert tenant("listVirtualMachinesMetrics", name="idle")["count"] == 1
    assert len(calls) == 1, "only the Running VM was asked, by the first list"


def test_metrics_show_only_the_callers_vms(app, cloud, tenant, zone, calls):
    deploy(tenant, cloud, zone, "mine")
    mallory = ApiClient.for_user(app, cloud, make_account(cloud, "mallory"))
    assert mallory("listVirtualMachinesMetrics") == {}
    assert calls == []
    api = {a["name"]: a for a in tenant("listApis", name="listVirtualMachinesMetrics")["api"]}
    # it takes listVirtualMachines' parameters, as CloudStack's ListVMsMetricsCmd extends ListVMsCmd
    assert {"id", "name", "zoneid", "state", "keyword", "page"} <= {p["name"] for p in
                                                                   api["listVirtualMachinesMetrics"]["params"]}
