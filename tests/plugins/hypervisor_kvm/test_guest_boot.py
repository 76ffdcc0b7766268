"""A real guest (scripts/build-test-template.sh) under QEMU through LibvirtDriver.

One VM on a test bridge with DHCP goes through a whole life: boot, lease, stats, a disk
plugged in and out while it runs, a snapshot, an ACPI reboot, an ACPI stop, a start
again, destroy, and nothing left after. A second boots from an NFS export through
QEMU's own NFS client (this kernel has none).
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from core.drivers import HostRef, PowerState
from core.errors import StratoError

from .helpers import (
    GUEST_POWEROFF,
    GUEST_READY,
    REPO,
    Bridge,
    cached_template_path,
    console_lines,
    nic,
    qemu_img_create,
    skip_loudly,
    vm_spec,
    volume,
    wait_for_line,
)

pytestmark = [pytest.mark.kvm, pytest.mark.slow]

BOOT_TIMEOUT = 120


@pytest.fixture
def driver(libvirtd, workdir):
    from plugins.hypervisor_kvm.driver import LibvirtDriver

    driver = LibvirtDriver({"domain_type": "qemu", "console_log_dir": str(workdir / "consoles"),
                            "shutdown_timeout": 60, "detach_timeout": 60})
    yield driver
    driver.close()


@pytest.fixture
def host_ref(driver, libvirtd):
    info = driver.connect_host(libvirtd, None, None)
    return HostRef(uuid=str(uuid.uuid4()), name=info.name, url=libvirtd, details=info.details)


@pytest.fixture
def pool(workdir):
    path = workdir / f"boot-pool-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


@pytest.fixture
def bridge(workdir):
    mac = "52:54:00:5a:%02x:%02x" % tuple(os.urandom(2))
    made = Bridge(workdir, macs=[mac])
    yield made
    made.close()


def test_template_build_is_idempotent(guest_template):
    built = cached_template_path()  # the guest_template fixture built it there
    before = built.stat().st_mtime_ns
    done = subprocess.run(["bash", str(REPO / "scripts/build-test-template.sh"), str(built)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert built.stat().st_mtime_ns == before, "a re-run with the same inputs rebuilt the image"
    assert guest_template.read_bytes() == built.read_bytes()


def test_a_guests_whole_life_on_a_bridge(driver, host_ref, guest_template, pool, bridge, libvirt_module,
                                         libvirtd):
    ((mac, ip),) = bridge.leases.items()
    root = qemu_img_create(pool / "root.qcow2", backing=guest_template)
    data = qemu_img_create(pool / "data.qcow2", size="32M")
    spec = vm_spec([volume(pool, root.name)], [nic(mac, bridge=bridge.name, ip=ip)], memory_mb=128)
    data_volume = volume(pool, data.name, device_id=1, volume_type="DATADISK")
    try:
        details = driver.start_vm(host_ref, spec)
        log = details["console_log"]
        assert details["domain_type"] == "qemu" and details["vnc_port"] >= 5900
        wait_for_line(log, GUEST_READY, timeout=BOOT_TIMEOUT)
        wait_for_line(log, f"STRATO-GUEST-IP {ip}", timeout=60)
        assert len(bridge.ports()) == 1, "the guest's tap device is on the bridge"
        assert driver.power_states(host_ref)[spec.instance_name] == PowerState.ON

        stats = driver.vm_stats(host_ref, spec)
        assert stats.memory_kbs == 128 * 1024
        assert stats.network_read_bytes > 0 and stats.network_write_bytes > 0  # the DHCP exchange
        assert stats.disk_read_bytes > 0

        # a data disk in and out while the guest runs, as the guest itself sees it
        wait_for_line(log, "STRATO-GUEST-DISKS vda")
        driver.attach_volume(host_ref, spec, data_volume)
        wait_for_line(log, "STRATO-GUEST-DISKS vda vdb", timeout=30)
        driver.detach_volume(host_ref, spec, data_volume)
        wait_for_line(log, "STRATO-GUEST-DISKS vda", count=2, timeout=30)

        driver.create_vm_snapshot(host_ref, spec, "running")
        assert driver.list_vm_snapshots(host_ref, spec) == ["running"]
        driver.revert_vm_snapshot(host_ref, spec, "running")
        assert driver.power_states(host_ref)[spec.instance_name] == PowerState.ON
        driver.delete_vm_snapshot(host_ref, spec, "running")
        assert driver.list_vm_snapshots(host_ref, spec) == []

        assert driver.reboot_vm(host_ref, spec) == "acpi"
        wait_for_line(log, GUEST_READY, count=2, timeout=BOOT_TIMEOUT)
        assert driver.power_states(host_ref)[spec.instance_name] == PowerState.ON

        driver.stop_vm(host_ref, spec)
        # ACPI reboot and ACPI stop: the guest powered itself off both times (not forced)
        assert console_lines(log).count(GUEST_POWEROFF) == 2
        assert driver.power_states(host_ref)[spec.instance_name] == PowerState.OFF
        assert bridge.ports() == []

        driver.start_vm(host_ref, spec)
        wait_for_line(log, GUEST_READY, count=3, timeout=BOOT_TIMEOUT)

        driver.destroy_vm(host_ref, spec)
        assert spec.instance_name not in driver.power_states(host_ref)
        conn = libvirt_module.open(libvirtd)
        try:
            assert spec.uuid not in {d.UUIDString() for d in conn.listAllDomains(0)}
        finally:
            conn.close()
        assert not os.path.exists(log), "the console log is removed with the VM"
        assert bridge.ports() == []
        # the volumes stay, handed back to root by libvirt's DAC labelling
        assert root.exists() and root.stat().st_uid == 0
        assert "running" not in subprocess.run(["qemu-img", "snapshot", "-l", str(root)], capture_output=True,
                                               text=True).stdout
    finally:
        driver.destroy_vm(host_ref, spec)


def test_a_guest_boots_from_an_nfs_export_through_qemus_nfs_client(nfs_export, driver, host_ref, guest_template):
    url, export_dir = nfs_export.url, nfs_export.directory
    template = export_dir / "template.qcow2"
    template.write_bytes(guest_template.read_bytes())
    # As the nfs storage plugin makes them: the backing file named by its nfs:// URL (QEMU 7.2's
    # nfs driver resolves relative names against the overlay's file name), the volume's path
    # the overlay's URL.
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", f"{url}/template.qcow2", "-F", "qcow2",
                    str(export_dir / "root.qcow2")], check=True)
    spec = vm_spec([volume(None, f"{url}/root.qcow2", pool_url=url,
                           pool_details={"access": "libnfs", "server": "127.0.0.1", "export": "/kvmtest",
                                         "url_prefix": url})],
                   memory_mb=128)
    try:
        try:
            details = driver.start_vm(host_ref, spec)
            wait_for_line(details["console_log"], GUEST_READY, timeout=BOOT_TIMEOUT)
        except (StratoError, AssertionError) as exc:
            if not nfs_export.still_ours():
                skip_loudly("another NFS server (not this session's) registered itself with rpcbind during "
                            f"the test, so QEMU reached that one (the failure: {exc})")
            raise
        assert "STRATO-GUEST-NO-NIC" in console_lines(details["console_log"])
    finally:
        driver.destroy_vm(host_ref, spec)
        for name in ("root.qcow2", "template.qcow2"):
            (export_dir / name).unlink(missing_ok=True)
