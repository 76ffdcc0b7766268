"""The simulator runs the hypervisor contract like any driver, and its faults are
reachable through configureSimulator."""

from __future__ import annotations

import uuid

import pytest

from core.drivers import VmSpec
from core.testing import HypervisorDriverContract
from plugins.hypervisor_simulator.hypervisor import SimulatorHypervisor, parse_host_url
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, make_account, offering_id

URL = "http://sim/c0/h0?cpus=4&mhz=2400&ram=8192"


def spec() -> VmSpec:
    return VmSpec(uuid=str(uuid.uuid4()), instance_name=f"i-2-{uuid.uuid4().hex[:6]}-VM", display_name="t",
                  cpu_count=1, cpu_speed_mhz=500, memory_mb=256, volumes=[], nics=[])


class TestSimulatorContract(HypervisorDriverContract):
    @pytest.fixture
    def driver(self, tmp_path):
        return SimulatorHypervisor({"state_file": str(tmp_path / "sim.sqlite")})

    @pytest.fixture
    def host_url(self):
        return URL

    @pytest.fixture
    def vm_spec(self):
        return spec

    @pytest.fixture
    def bad_host_urls(self):
        return ["nosuchscheme://nowhere/", "", "http://sim/", "http://sim/c0/h0?cpus=0", "http://sim/c/h?ram=lots"]

    @pytest.fixture
    def broken_vm_spec(self, driver):
        driver.inject(parse_host_url(URL)[0], "start", message="disk missing")
        return spec()

    @pytest.fixture
    def foreign_vm(self, driver):
        driver.place_unknown_vm(parse_host_url(URL)[0], "foreign-vm")
        return "foreign-vm"


def test_host_url_sets_capacity():
    driver = SimulatorHypervisor()
    info = driver.connect_host(URL)
    assert (info.cpu_cores, info.cpu_speed_mhz, info.memory_bytes) == (4, 2400, 8192 * 1024**2)


def test_a_delay_only_fault_slows_without_failing():
    import time

    driver = SimulatorHypervisor()
    info = driver.connect_host(URL)
    from core.drivers import HostRef

    host = HostRef(uuid="h", name=info.name, url=URL, details=info.details)
    driver.inject(info.details["sim_key"], "start", delay=0.3, fail=False)
    began = time.monotonic()
    driver.start_vm(host, spec())
    assert time.monotonic() - began >= 0.3


def test_configure_simulator_through_the_api(app, cloud, admin):
    zone = simulated_zone(cloud, hosts=1)
    host_id = zone["hosts"][0]
    admin("configureSimulator", hostid=host_id, name="start", value="injected by the test")
    job = admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                templateid=zone["template"])
    with pytest.raises(ApiError) as err:
        admin.wait(job)
    assert "injected by the test" in err.value.body["errortext"]
    # the fault was used up: the next deploy works
    job = admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                templateid=zone["template"])
    assert admin.wait(job)["virtualmachine"]["state"] == "Running"
    # a host taken down is seen by the next ping
    admin("configureSimulator", hostid=host_id, state="Down")
    from core.orchestration.background import one_pass

    one_pass(cloud)
    assert admin("listHosts", id=host_id)["host"][0]["state"] == "Alert"


def test_configure_simulator_refuses_bad_input_and_users(app, cloud, admin):
    zone = simulated_zone(cloud, hosts=1)
    with pytest.raises(ApiError) as err:
        admin("configureSimulator", hostid=zone["hosts"][0], name="explode")
    assert err.value.status == 431 and "unknown simulator action" in err.value.body["errortext"]
    with pytest.raises(ApiError) as err:
        admin("configureSimulator", hostid=zone["hosts"][0])
    assert err.value.status == 431
    user = ApiClient.for_user(app, cloud, make_account(cloud, "mallory"))
    with pytest.raises(ApiError) as err:
        user("configureSimulator", hostid=zone["hosts"][0], name="start")
    assert err.value.status == 432
