"""LibvirtDriver on libvirt's built-in test driver (test:///default): no daemon needed.

The test driver keeps its domains in this process while a connection to it is open;
the ``keeper`` fixture holds one so domains made behind the driver's back stay.
"""

from __future__ import annotations

import uuid

import pytest

from core.drivers import HostRef, PowerState
from core.errors import InvalidParameterError, ResourceInUseError
from core.testing import HypervisorDriverContract

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (pip install 'strato[kvm]')")

from plugins.hypervisor_kvm.driver import LibvirtDriver  # noqa: E402

from .helpers import nic, vm_spec, volume  # noqa: E402

URI = "test:///default"


@pytest.fixture
def keeper():
    conn = libvirt.open(URI)
    yield conn
    conn.close()


@pytest.fixture
def make_driver(tmp_path, keeper):
    made = []

    def make(**settings):
        settings.setdefault("console_log_dir", str(tmp_path / "consoles"))
        made.append(LibvirtDriver(settings))
        return made[-1]

    yield make
    for driver in made:
        driver.close()


class TestContractOnTestDriver(HypervisorDriverContract):
    @pytest.fixture
    def driver(self, make_driver):
        return make_driver()

    @pytest.fixture
    def host_url(self):
        return URI

    @pytest.fixture
    def vm_spec(self, tmp_path):
        # the test driver never opens disks: the files need not exist
        return lambda: vm_spec([volume(tmp_path, f"{uuid.uuid4()}.qcow2")], [nic()])

    @pytest.fixture
    def bad_host_urls(self):
        return ["nosuchscheme://nowhere.invalid/", "", "qemu+tcp://127.0.0.1:1/system", "test:///no/such/file.xml"]

    @pytest.fixture
    def broken_vm_spec(self, tmp_path):
        # libvirt refuses the definition (the MAC does not parse)
        return vm_spec([volume(tmp_path, "broken.qcow2")], [nic("zz:54:00:00:00:01")])

    @pytest.fixture
    def foreign_vm(self, keeper):
        name = f"kvmtest-foreign-{uuid.uuid4().hex[:8]}"
        domain = keeper.defineXML(f"<domain type='test'><name>{name}</name><memory>65536</memory>"
                                  "<os><type>hvm</type></os></domain>")
        domain.create()
        yield name
        domain.destroy()
        domain.undefine()


@pytest.fixture
def driver(make_driver):
    return make_driver()


@pytest.fixture
def host_ref(driver):
    info = driver.connect_host(URI, None, None)
    return HostRef(uuid=str(uuid.uuid4()), name=info.name, url=URI, details=info.details)


@pytest.fixture
def spec(tmp_path, driver, host_ref):
    made = vm_spec([volume(tmp_path, "root.qcow2")], [nic()])
    yield made
    driver.destroy_vm(host_ref, made)


def test_start_details_name_the_console_log_and_vnc(driver, host_ref, spec, tmp_path):
    details = driver.start_vm(host_ref, spec)
    assert details["console_log"] == str(tmp_path / "consoles" / f"{spec.instance_name}.console.log")
    assert details["domain_type"] == "test"


def test_start_of_a_running_vm_changes_nothing(driver, host_ref, spec, keeper):
    driver.start_vm(host_ref, spec)
    domain_id = keeper.lookupByUUIDString(spec.uuid).ID()
    driver.start_vm(host_ref, spec)
    assert keeper.lookupByUUIDString(spec.uuid).ID() == domain_id


def test_start_of_a_stopped_vm_applies_the_new_spec(driver, host_ref, spec, keeper):
    driver.start_vm(host_ref, spec)
    driver.stop_vm(host_ref, spec, force=True)
    spec.memory_mb = 96
    driver.start_vm(host_ref, spec)
    assert keeper.lookupByUUIDString(spec.uuid).maxMemory() == 96 * 1024


def test_a_foreign_domain_with_the_same_name_is_left_alone(driver, host_ref, spec, keeper):
    other = keeper.defineXML(f"<domain type='test'><name>{spec.instance_name}</name><memory>65536</memory>"
                             "<os><type>hvm</type></os></domain>")
    try:
        with pytest.raises(ResourceInUseError, match="already exists"):
            driver.start_vm(host_ref, spec)
        driver.destroy_vm(host_ref, spec)
        assert keeper.lookupByName(spec.instance_name).UUIDString() == other.UUIDString()
    finally:
        other.undefine()


def test_reboot_on_the_test_driver_is_immediate(driver, host_ref, spec):
    driver.start_vm(host_ref, spec)
    assert driver.reboot_vm(host_ref, spec) == "immediate"


def test_stats_cpu_measured_since_the_previous_call(driver, host_ref, spec):
    driver.start_vm(host_ref, spec)
    first = driver.vm_stats(host_ref, spec)
    second = driver.vm_stats(host_ref, spec)
    assert first.memory_kbs == second.memory_kbs == spec.memory_mb * 1024
    assert second.disk_read_bytes >= 0


def test_stats_of_a_stopped_or_missing_vm_are_refused(driver, host_ref, spec, tmp_path):
    driver.start_vm(host_ref, spec)
    driver.stop_vm(host_ref, spec, force=True)
    with pytest.raises(InvalidParameterError, match="not running"):
        driver.vm_stats(host_ref, spec)
    with pytest.raises(InvalidParameterError, match="not on host"):
        driver.vm_stats(host_ref, vm_spec([volume(tmp_path, "x.qcow2")]))


def test_snapshots_create_list_revert_delete(driver, host_ref, spec):
    driver.start_vm(host_ref, spec)
    driver.create_vm_snapshot(host_ref, spec, "before", "a test snapshot")
    assert driver.list_vm_snapshots(host_ref, spec) == ["before"]
    driver.stop_vm(host_ref, spec, force=True)
    driver.revert_vm_snapshot(host_ref, spec, "before")
    assert driver.power_states(host_ref)[spec.instance_name] == PowerState.ON
    driver.delete_vm_snapshot(host_ref, spec, "before")
    driver.delete_vm_snapshot(host_ref, spec, "before")
    assert driver.list_vm_snapshots(host_ref, spec) == []
    with pytest.raises(InvalidParameterError):
        driver.revert_vm_snapshot(host_ref, spec, "never-taken")


def test_destroy_drops_a_vm_with_snapshots(driver, host_ref, spec, keeper):
    driver.start_vm(host_ref, spec)
    driver.create_vm_snapshot(host_ref, spec, "kept-in-the-volume")
    driver.destroy_vm(host_ref, spec)
    with pytest.raises(libvirt.libvirtError):
        keeper.lookupByUUIDString(spec.uuid)


def test_volume_hotplug_unsupported_by_the_test_driver_says_so(driver, host_ref, spec, tmp_path):
    from core.errors import UnsupportedError

    driver.start_vm(host_ref, spec)
    with pytest.raises(UnsupportedError, match="attaching a disk"):
        driver.attach_volume(host_ref, spec, volume(tmp_path, "data.qcow2", device_id=1, volume_type="DATADISK"))
