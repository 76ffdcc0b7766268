"""``strato demo --hypervisor kvm``: the real command, in its own process, boots the test
guest on this machine's libvirtd and says how to see its console (one real boot); what
``strato serve`` then loads from the data dir stops it; the KVM driver's hint on a name
another cloud took."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from api.demo import instance_name_for

from .helpers import GUEST_READY, REPO, console_lines

pytestmark = [pytest.mark.kvm]


def _remove_domain(conn, name: str) -> None:
    try:
        domain = conn.lookupByName(name)
    except Exception:  # libvirtError: the domain is not there, nothing to remove
        return
    if domain.isActive():
        domain.destroy()
    domain.undefine()


def _remove_domains_using(conn, directory: Path) -> list[str]:
    """Remove every domain whose XML names a file under ``directory``; their names."""
    removed = []
    for domain in conn.listAllDomains(0):
        if str(directory) in domain.XMLDesc(0):
            removed.append(domain.name())
            _remove_domain(conn, domain.name())
    return removed


@pytest.fixture
def conn(libvirt_module, libvirtd):
    connection = libvirt_module.open(libvirtd)
    yield connection
    connection.close()


@pytest.fixture
def data_dir(workdir):
    path = workdir / f"demo-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_the_kvm_demo_boots_the_test_guest(data_dir, conn, guest_template):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATO_")}
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "400"  # rich wraps its lines at 80 columns when not on a terminal
    done = subprocess.run([sys.executable, "-m", "api.cli", "--data-dir", str(data_dir), "demo", "--hypervisor", "kvm",
                           "--no-serve"], cwd=data_dir, env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    found = re.search(r"virsh -c qemu:///system console (\S+)", output)
    instance = found.group(1) if found else None
    try:
        assert done.returncode == 0, output
        assert found, output
        log = re.search(r"tail -f (\S+)", output).group(1)
        assert GUEST_READY in console_lines(log)
        domain = conn.lookupByName(instance)
        assert domain.isActive(), "the demo's VM runs on after the command returns"
        disks = [line for line in domain.XMLDesc(0).splitlines() if "<source file=" in line]
        assert disks and all(str(data_dir / "storage" / "kvm-primary") in line for line in disks), disks
        assert "demo-vm-1 (Running" in output and "listVirtualMachines" in output
        assert instance.endswith("-" + instance_name_for(data_dir)), "instance.name is this data dir's own"
        _stop_as_serve_would(data_dir, env, instance, conn)
    finally:
        # the demo leaves its VM running (it is a demo); whatever it made goes, even after a failure
        for name in {*_remove_domains_using(conn, data_dir), *([instance] if instance else [])}:
            Path(f"/var/log/libvirt/qemu/{name}.log").unlink(missing_ok=True)
            Path(f"/var/log/libvirt/qemu/{name}.console.log").unlink(missing_ok=True)


def _stop_as_serve_would(data_dir: Path, env: dict, instance: str, conn) -> None:
    """`strato --data-dir <dir> serve` reads <dir>/strato.toml: with the demo's plugins (kvm,
    nfs) its cloud can stop the demo's VM, which the default plugins could not."""
    script = ("import sys\nfrom core import config\nfrom core.cloud import Cloud\n"
              "from api.app import create_app\nfrom api.inprocess import InProcessClient, user_keys\n"
              "settings = config.load({'data_dir': sys.argv[1]})\n"
              "assert settings.plugins['hypervisors'] == ['kvm'] and settings.plugins['storage'] == ['nfs'], "
              "settings.plugins\n"
              "cloud = Cloud(settings)\ncloud.start(periodic=False)\n"
              "admin = InProcessClient(create_app(cloud), *user_keys(cloud, 'admin'))\n"
              "vm = admin('listVirtualMachines', listall=True)['virtualmachine'][0]\n"
              "print(admin.wait(admin('stopVirtualMachine', id=vm['id'], forced=True), timeout=120)"
              "['virtualmachine']['state'])\ncloud.close()\n")
    done = subprocess.run([sys.executable, "-c", script, str(data_dir)], cwd=data_dir, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "Stopped", done.stdout + done.stderr
    assert not conn.lookupByName(instance).isActive()


def test_a_domain_name_another_cloud_took_is_536_naming_instance_name(tmp_path):
    """Two clouds (two demos) on one libvirtd name VMs alike unless instance.name differs."""
    libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (pip install 'strato[kvm]')")
    from core.drivers import HostRef
    from core.errors import ResourceInUseError
    from plugins.hypervisor_kvm.driver import LibvirtDriver

    from .helpers import nic, vm_spec, volume

    keeper = libvirt.open("test:///default")  # the test driver keeps domains while a connection is open
    driver = LibvirtDriver({"console_log_dir": str(tmp_path / "consoles")})
    spec = vm_spec([volume(tmp_path, f"{uuid.uuid4()}.qcow2")], [nic()])
    other = keeper.defineXML(f"<domain type='test'><name>{spec.instance_name}</name><memory>65536</memory>"
                             "<os><type>hvm</type></os></domain>")
    try:
        info = driver.connect_host("test:///default", None, None)
        host_ref = HostRef(uuid=str(uuid.uuid4()), name=info.name, url="test:///default", details=info.details)
        with pytest.raises(ResourceInUseError, match="already exists.*global setting instance.name") as raised:
            driver.start_vm(host_ref, spec)
        assert raised.value.errorcode == 536
    finally:
        other.undefine()
        driver.close()
        keeper.close()


def test_a_previous_demos_domains_are_removed_when_their_disks_are_gone(conn, workdir):
    from api.demo import _remove_orphan_domains

    storage = workdir / f"demo-storage-{uuid.uuid4().hex[:8]}"
    storage.mkdir()
    kept_disk = storage / "kept.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(kept_disk), "16M"], check=True)
    names = {what: f"kvmtest-demo-{what}-{uuid.uuid4().hex[:6]}" for what in ("orphan", "kept", "elsewhere")}
    disks = {"orphan": storage / "gone.qcow2", "kept": kept_disk, "elsewhere": Path("/nonexistent/x.qcow2")}
    try:
        for what, name in names.items():
            conn.defineXML(f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>"
                           "<os><type arch='x86_64'>hvm</type></os><devices><disk type='file' device='disk'>"
                           f"<source file='{disks[what]}'/><target dev='vda' bus='virtio'/></disk></devices>"
                           "</domain>")
        _remove_orphan_domains(storage)
        left = {d.name() for d in conn.listAllDomains(0)}
        assert names["orphan"] not in left, "its disk was in the demo's storage and is gone"
        assert names["kept"] in left, "its disk is still there: a kept demo's VM"
        assert names["elsewhere"] in left, "not the demo's: never touched"
    finally:
        for name in names.values():
            _remove_domain(conn, name)
        shutil.rmtree(storage)
