"""LibvirtDriver on this machine's real libvirtd (qemu:///system) with QEMU processes.

The VMs here have blank disks: QEMU runs, the firmware finds nothing to boot, and the
"guest" ignores ACPI, so stops and reboots take the forced path after the (short)
``shutdown_timeout``. test_guest_boot.py boots a real guest.
"""

from __future__ import annotations

import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from core.drivers import HostRef, PowerState
from core.errors import InvalidParameterError, StratoError, UnsupportedError
from core.testing import HypervisorDriverContract

from .helpers import REPO, nic, qemu_img_create, vm_spec, volume

pytestmark = pytest.mark.kvm


@pytest.fixture(scope="module")
def pool(workdir) -> Path:
    path = workdir / "contract-pool"
    path.mkdir()
    path.chmod(0o755)
    return path


@pytest.fixture
def make_driver(libvirtd, workdir):
    from plugins.hypervisor_kvm.driver import LibvirtDriver

    made = []

    def make(**settings):
        settings.setdefault("console_log_dir", str(workdir / "consoles"))
        settings.setdefault("shutdown_timeout", 1)
        made.append(LibvirtDriver(settings))
        return made[-1]

    yield make
    for driver in made:
        driver.close()


@pytest.fixture
def blank_vm(pool):
    """Factory of VMs with a blank 16 MiB disk and a user-mode NIC; removes the disks after."""
    disks: list[Path] = []

    def make(**kwargs):
        disk = qemu_img_create(pool / f"{uuid.uuid4()}.qcow2")
        disks.append(disk)
        return vm_spec([volume(pool, disk.name)], [nic()], memory_mb=32, **kwargs)

    yield make
    for disk in disks:
        disk.unlink(missing_ok=True)


class TestContractOnLibvirtd(HypervisorDriverContract):
    @pytest.fixture
    def driver(self, make_driver):
        return make_driver()

    @pytest.fixture
    def host_url(self, libvirtd):
        return libvirtd

    @pytest.fixture
    def vm_spec(self, blank_vm):
        return blank_vm

    @pytest.fixture
    def bad_host_urls(self):
        return ["nosuchscheme://nowhere.invalid/", "", "qemu:///nosuch", "qemu+tcp://127.0.0.1:1/system",
                "qemu+ssh://root@127.0.0.1:1/system"]

    @pytest.fixture
    def broken_vm_spec(self, pool):
        # defined fine, but QEMU cannot start without its disk
        return vm_spec([volume(pool, "does-not-exist.qcow2")], memory_mb=32)

    @pytest.fixture
    def foreign_vm(self, libvirtd, libvirt_module):
        conn = libvirt_module.open(libvirtd)
        name = f"kvmtest-foreign-{uuid.uuid4().hex[:8]}"
        # transient, made with plain libvirt: Strato never saw it
        domain = conn.createXML(f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>"
                                "<os><type>hvm</type></os></domain>", 0)
        yield name
        domain.destroy()
        conn.close()


@pytest.fixture
def driver(make_driver):
    return make_driver()


@pytest.fixture
def host_ref(driver, libvirtd):
    info = driver.connect_host(libvirtd, None, None)
    ref = HostRef(uuid=str(uuid.uuid4()), name=info.name, url=libvirtd, details=info.details)
    yield ref
    driver.disconnect_host(ref)


def _cpu_has_virtualisation() -> bool:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"vmx", "svm"})


def test_auto_domain_type_follows_the_cpus_virtualisation(driver, libvirtd):
    info = driver.connect_host(libvirtd, None, None)
    if "kvm" not in info.details["domain_types"]:
        assert info.details["domain_type"] == "qemu"
    else:
        # here: /dev/kvm exists but the CPU has no vmx/svm, and guests only run emulated
        assert info.details["domain_type"] == ("kvm" if _cpu_has_virtualisation() else "qemu")


def test_reboot_of_a_guest_ignoring_acpi_resets_it(driver, host_ref, blank_vm):
    spec = blank_vm()
    try:
        driver.start_vm(host_ref, spec)
        assert driver.reboot_vm(host_ref, spec) == "reset"
        assert driver.power_states(host_ref)[spec.instance_name] == PowerState.ON
    finally:
        driver.destroy_vm(host_ref, spec)


def test_start_on_a_missing_bridge_fails_and_leaves_nothing(driver, host_ref, pool, libvirt_module, libvirtd,
                                                           workdir):
    disk = qemu_img_create(pool / f"{uuid.uuid4()}.qcow2")
    spec = vm_spec([volume(pool, disk.name)], [nic(bridge="nosuchbr0")], memory_mb=32)
    try:
        with pytest.raises(StratoError, match="nosuchbr0"):
            driver.start_vm(host_ref, spec)
        conn = libvirt_module.open(libvirtd)
        try:
            assert spec.uuid not in {d.UUIDString() for d in conn.listAllDomains(0)}
        finally:
            conn.close()
        assert not (workdir / "consoles" / f"{spec.instance_name}.console.log").exists()
    finally:
        disk.unlink()


def test_stats_of_a_running_qemu(driver, host_ref, blank_vm):
    spec = blank_vm()
    try:
        driver.start_vm(host_ref, spec)
        stats = driver.vm_stats(host_ref, spec)
        assert stats.memory_kbs == 32 * 1024
        assert stats.cpu_used_percent > 0  # the firmware spins looking for a boot disk
        assert stats.disk_read_bytes > 0  # and it read the blank disk's first sectors
    finally:
        driver.destroy_vm(host_ref, spec)


def test_failed_migration_leaves_the_vm_running_on_the_source(driver, host_ref, blank_vm, libvirtd):
    spec = blank_vm()
    try:
        driver.start_vm(host_ref, spec)
        # the destination is the source's own libvirtd: refused before libvirt is asked
        same = HostRef(uuid=str(uuid.uuid4()), name="same", url=libvirtd, details=dict(host_ref.details))
        with pytest.raises(InvalidParameterError, match="migrating.*same libvirt host"):
            driver.migrate_vm(host_ref, same, spec)
        assert driver.power_states(host_ref)[spec.instance_name] == PowerState.ON
        driver.stop_vm(host_ref, spec, force=True)
        with pytest.raises(StratoError, match="not running"):
            driver.migrate_vm(host_ref, same, spec)
    finally:
        driver.destroy_vm(host_ref, spec)


def _connect(driver, uri: str) -> HostRef:
    info = driver.connect_host(uri, None, None)
    return HostRef(uuid=str(uuid.uuid4()), name=info.name, url=uri, details=info.details)


def test_live_migration_there_and_back(make_driver, libvirtd, second_libvirtd, blank_vm, workdir, libvirt_module):
    """Host A is the system libvirtd, host B the session's second one (same machine, own state)."""
    driver = make_driver(shared_filesystems=[str(workdir)])
    a, b = _connect(driver, libvirtd), _connect(driver, second_libvirtd)
    assert a.details["host_uuid"] != b.details["host_uuid"] and a.name != b.name
    spec = blank_vm()
    try:
        on_a = driver.start_vm(a, spec)
        pid_on_a = _qemu_pid(libvirt_module, libvirtd, spec)
        on_b = driver.migrate_vm(a, b, spec)
        assert spec.instance_name not in driver.power_states(a), "gone from A (undefined, not only stopped)"
        assert driver.power_states(b)[spec.instance_name] == PowerState.ON
        conn_b = libvirt_module.open(second_libvirtd)
        try:
            domain = conn_b.lookupByUUIDString(spec.uuid)
            assert domain.isPersistent() and domain.name() == spec.instance_name
            # B's console address, as start_vm reports it (the daemons' VNC ports lie apart)
            port = int(ET.fromstring(domain.XMLDesc(0)).find("devices/graphics[@type='vnc']").get("port"))
            assert on_b == {**on_a, "vnc_port": port} and port != on_a["vnc_port"], (on_a, on_b)
        finally:
            conn_b.close()
        assert driver.vm_stats(b, spec).memory_kbs == 32 * 1024, "B's QEMU runs the guest"
        driver.migrate_vm(b, a, spec)
        assert driver.power_states(a)[spec.instance_name] == PowerState.ON
        assert spec.instance_name not in driver.power_states(b)
        assert _qemu_pid(libvirt_module, libvirtd, spec) != pid_on_a, "a new QEMU on A took the guest"
    finally:
        driver.destroy_vm(a, spec)
        driver.destroy_vm(b, spec)


def _qemu_pid(libvirt_module, uri: str, spec) -> int:
    conn = libvirt_module.open(uri)
    try:
        name = conn.lookupByUUIDString(spec.uuid).name()
    finally:
        conn.close()
    return int(Path(f"/run/libvirt/qemu/{name}.pid").read_text())


def test_migration_of_disks_not_known_to_be_shared_is_refused(driver, libvirtd, second_libvirtd, blank_vm):
    """libvirt sees the pool on a local file system; without shared_filesystems the driver does
    not tell it otherwise: 432 saying what to declare, and the VM runs on where it was."""
    a, b = _connect(driver, libvirtd), _connect(driver, second_libvirtd)
    spec = blank_vm()
    try:
        driver.start_vm(a, spec)
        with pytest.raises(UnsupportedError, match="shared_filesystems") as caught:
            driver.migrate_vm(a, b, spec)
        assert "shared storage is unsafe" in caught.value.message
        assert driver.power_states(a)[spec.instance_name] == PowerState.ON
        assert spec.instance_name not in driver.power_states(b)
    finally:
        driver.destroy_vm(a, spec)


def test_libvirtd_script_leaves_a_running_daemon_alone(libvirtd):
    before = Path("/run/libvirtd.pid").read_text().strip()
    done = subprocess.run(["bash", str(REPO / "scripts/services/libvirtd.sh")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert Path("/run/libvirtd.pid").read_text().strip() == before
