"""The KVM plugin through the signed API, on this machine's real libvirtd and QEMU.

A cloud with only the ``kvm`` and ``nfs`` plugins: createZone, createPod, addCluster
(KVM), addHost qemu:///system, a file:// primary pool and image store, the test guest
registered over HTTP. Then one VM's whole life (deploy, stop, start, reboot, a guest
that powers itself off, destroy with expunge) with its NIC on a test bridge whose
dnsmasq hands out the address the core allocated; and the failure paths: a libvirt URI
addHost cannot use, starts that fail, a domain Strato does not know.

Real boots are few (the machine has two cores and each TCG boot takes 10-20 s): three,
all in ``test_a_vms_whole_life_through_the_api``.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.config import Settings
from core.orchestration import background
from tests.helpers import ApiClient, ApiError, capacity_used, offering_id

from .helpers import GUEST_POWEROFF, GUEST_READY, Bridge, console_lines, wait_for_line

pytestmark = [pytest.mark.kvm, pytest.mark.slow]

BOOT_TIMEOUT = 150
JOB_TIMEOUT = 180


# -- fixtures ------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        """Requests are not worth a line each in the test output."""


@pytest.fixture(scope="module")
def template_url(guest_template):
    """The test guest served over http://127.0.0.1 (registerTemplate downloads it)."""
    handler = functools.partial(_QuietHandler, directory=str(guest_template.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="kvm-template-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{guest_template.name}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclasses.dataclass
class Dirs:
    pool: Path
    store: Path
    consoles: Path


@pytest.fixture
def dirs(workdir):
    """The pool, the image store and the console logs of one test, where QEMU can read."""
    base = workdir / f"api-{uuid.uuid4().hex[:8]}"
    made = Dirs(base / "pool", base / "store", base / "consoles")
    for path in (base, made.pool, made.store, made.consoles):
        path.mkdir()
        path.chmod(0o755)
    yield made
    shutil.rmtree(base)


@pytest.fixture
def settings(tmp_path, database_url, dirs, libvirtd) -> Settings:
    """Only the kvm and nfs plugins: nothing of the simulator is loaded."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url,
                    plugins={"hypervisors": ["kvm"], "storage": ["nfs"], "network": [], "api": []},
                    plugin_config={"kvm": {"domain_type": "qemu", "console_log_dir": str(dirs.consoles),
                                           "shutdown_timeout": 60}})


@pytest.fixture
def conn(libvirt_module, libvirtd):
    connection = libvirt_module.open(libvirtd)
    yield connection
    connection.close()


@pytest.fixture
def domains_made(conn, libvirt_module, dirs):
    """Instance names a test's VMs had. Afterwards every domain whose disks or console log are
    in the test's directories is removed (with its snapshots' metadata), and libvirt's own
    per-domain log of each name, so a failing test does not break the next one."""
    names: list[str] = []
    yield names
    base = str(dirs.pool.parent)
    flags = (libvirt_module.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
             | libvirt_module.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    for domain in conn.listAllDomains(0):
        if domain.name() in names or base in domain.XMLDesc(0):
            names.append(domain.name())
            if domain.isActive():
                domain.destroy()
            domain.undefineFlags(flags)
    for name in names:
        Path(f"/var/log/libvirt/qemu/{name}.log").unlink(missing_ok=True)


def make_tenant(app, cloud) -> ApiClient:
    """A user account with an id of its own: the core names VMs ``i-<account id>-<vm id>-<instance.name>``
    and every test's database starts from the same ids (tests/conftest.py also gives each test
    session its own ``instance.name``), so two test sessions sharing this machine's libvirtd
    never name their VMs alike."""
    from core.model import Account, Domain, User
    from core.passwords import hash_password

    name = f"kvm{uuid.uuid4().hex[:8]}"
    with cloud.db.transaction() as session:
        domain = session.scalars(sa.select(Domain).where(Domain.path == "/")).one()
        account = Account(id=100_000 + int(uuid.uuid4().int % 800_000), name=name, account_type=0,
                          domain_id=domain.id)
        session.add(account)
        session.flush()
        session.add(User(username=name, password_hash=hash_password("secret"), account_id=account.id,
                         domain_id=domain.id, firstname=name, lastname="Tester"))
    return ApiClient.for_user(app, cloud, name)


@pytest.fixture
def bridge(workdir):
    made = Bridge(workdir, static_only=True)
    yield made
    made.close()


# -- building the cloud through the API ------------------------------------------------------------


@dataclasses.dataclass
class KvmZone:
    zone: str
    pod: str
    cluster: str
    host: str
    pool: str
    template: str


def build_zone(admin, cloud, libvirtd: str, dirs: Dirs, template_url: str, *, bridge: Bridge | None = None,
               bridge_name: str | None = None) -> KvmZone:
    """The admin's commands for a one-host KVM zone. The pod's range is the bridge's network
    when there is one; the zone's guest network is given ``bridge_name`` (until a network
    plugin provides bridges, ``details["bridge"]`` of the Network row is what the NIC uses)."""
    if bridge is not None:
        hosts = list(bridge.network.hosts())
        gateway, netmask = bridge.address, str(bridge.network.netmask)
        start, end = str(hosts[60]), str(hosts[69])
        bridge_name = bridge.name
    else:
        gateway, netmask, start, end = "10.252.0.1", "255.255.255.0", "10.252.0.10", "10.252.0.20"
    zone = admin("createZone", name=f"kvm-{uuid.uuid4().hex[:6]}", networktype="Basic", dns1="127.0.0.1",
                 internaldns1="127.0.0.1")["zone"]
    pod = admin("createPod", zoneid=zone["id"], name="pod1", gateway=gateway, netmask=netmask, startip=start,
                endip=end)["pod"]
    cluster = admin("addCluster", zoneid=zone["id"], podid=pod["id"], clustername="kvm1", hypervisor="KVM",
                    clustertype="CloudManaged")["cluster"][0]
    host = admin("addHost", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], url=libvirtd,
                 hypervisor="KVM", username="root", password="unused")["host"][0]
    assert host["state"] == "Up" and host["hypervisor"] == "KVM"
    pool = admin("createStoragePool", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], name="primary1",
                 url=f"file://{dirs.pool}", scope="CLUSTER")["storagepool"]
    admin("addImageStore", name="store1", url=f"file://{dirs.store}", provider="NFS", zoneid=zone["id"])
    ostype = next(o for o in admin("listOsTypes")["ostype"] if o["description"] == "Other Linux (64-bit)")
    template = admin("registerTemplate", name="strato-test-guest", displaytext="strato test guest",
                     url=template_url, zoneid=zone["id"], format="QCOW2", hypervisor="KVM", ostypeid=ostype["id"],
                     ispublic=True, isfeatured=True)["template"][0]
    deadline = time.monotonic() + 120
    while not (row := admin("listTemplates", templatefilter="all", id=template["id"])["template"][0])["isready"]:
        assert "rror" not in row.get("status", "") and time.monotonic() < deadline, row.get("status")
        time.sleep(0.2)
    if bridge_name is not None:
        _give_guest_network_a_bridge(cloud, zone["id"], bridge_name)
    return KvmZone(zone["id"], pod["id"], cluster["id"], host["id"], pool["id"], template["id"])


def _give_guest_network_a_bridge(cloud, zone_uuid: str, bridge_name: str) -> None:
    from core.model import Zone
    from core.orchestration.network import default_network

    with cloud.db.transaction() as session:
        zone = session.scalars(sa.select(Zone).where(Zone.uuid == zone_uuid)).one()
        network = default_network(session, zone)
        network.details = {**(network.details or {}), "bridge": bridge_name}


def vm_row(cloud, vm_uuid: str):
    """(instance name, details, root volume path) as the database has them."""
    from core.model import VirtualMachine

    with cloud.db.transaction() as session:
        vm = session.scalars(sa.select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid)).one()
        root = next(v for v in vm.volumes if v.volume_type == "ROOT")
        return vm.instance_name, dict(vm.details or {}), root.path


def domain_uuids(conn) -> set[str]:
    return {d.UUIDString() for d in conn.listAllDomains(0)}


def volume_files(dirs: Dirs) -> list[str]:
    """The volumes in the pool (its templates/ copy is the pool's cache and stays)."""
    return sorted(p.name for p in dirs.pool.iterdir() if p.is_file())


def assert_nothing_held(cloud) -> None:
    held = {key: used for key, used in capacity_used(cloud).items() if used}
    assert not held, f"capacity still reserved: {held}"


# -- a VM's whole life ----------------------------------------------------------------------------


def test_a_vms_whole_life_through_the_api(cloud, app, admin, libvirtd, dirs, template_url, bridge, conn,
                                          domains_made):
    kvm = build_zone(admin, cloud, libvirtd, dirs, template_url, bridge=bridge)
    tenant = make_tenant(app, cloud)

    job = tenant("deployVirtualMachine", zoneid=kvm.zone, serviceofferingid=offering_id(cloud),
                 templateid=kvm.template, name="guest1")
    vm_id = job["id"]
    domains_made.append(vm_row(cloud, vm_id)[0])
    nic = tenant("listVirtualMachines", id=vm_id)["virtualmachine"][0]["nic"][0]
    # the core allocated the address; dnsmasq only hands it to this MAC (no dynamic pool)
    bridge.add_lease(nic["macaddress"], nic["ipaddress"])
    vm = tenant.wait(job, timeout=JOB_TIMEOUT)["virtualmachine"]
    instance, details, root_path = vm_row(cloud, vm_id)
    assert vm["state"] == "Running" and vm["hypervisor"] == "KVM"
    assert details["domain_type"] == "qemu" and details["vnc_port"] >= 5900
    log = details["console_log"]
    assert Path(log).parent == dirs.consoles
    wait_for_line(log, GUEST_READY, timeout=BOOT_TIMEOUT)
    wait_for_line(log, f"STRATO-GUEST-IP {nic['ipaddress']}", timeout=90)
    assert len(bridge.ports()) == 1, "the guest's tap device is on the bridge"
    assert Path(root_path).parent == dirs.pool and Path(root_path).exists()
    assert conn.lookupByName(instance).UUIDString() == vm_id, "the domain carries the VM's uuid"
    listed = admin("listVirtualMachines", id=vm_id)["virtualmachine"][0]
    assert listed["hostid"] == kvm.host and listed["instancename"] == instance
    assert "cpuused" not in listed, "a plain list asks libvirt nothing"

    # the guest's own counters, from libvirt
    stats = tenant("listVirtualMachines", id=vm_id, details="stats")["virtualmachine"][0]
    assert stats["memorykbs"] == 512 * 1024 and stats["cpuused"].endswith("%")
    assert stats["diskkbsread"] > 1024, "the guest read its kernel and initramfs"
    metrics = tenant("listVirtualMachinesMetrics", id=vm_id)["virtualmachine"][0]
    assert metrics["ipaddress"] == nic["ipaddress"] and metrics["memorytotal"] == "0.50 GiB"
    assert float(metrics["diskread"].split()[0]) > 1

    stopped = tenant.wait(tenant("stopVirtualMachine", id=vm_id), timeout=JOB_TIMEOUT)["virtualmachine"]
    assert stopped["state"] == "Stopped"
    assert GUEST_POWEROFF in console_lines(log), "stopped by ACPI: the guest powered itself off"
    assert not conn.lookupByName(instance).isActive()
    assert bridge.ports() == []
    assert_nothing_held_on_host(cloud)

    # a disk-only VM snapshot of the stopped VM: an internal qcow2 snapshot in its root volume
    snap = tenant.wait(tenant("createVMSnapshot", virtualmachineid=vm_id, name="cold"),
                       timeout=JOB_TIMEOUT)["vmsnapshot"]
    assert snap["state"] == "Ready" and snap["type"] == "Disk" and snap["hypervisor"] == "KVM"
    assert snap["name"] in _internal_snapshots(root_path)

    started = tenant.wait(tenant("startVirtualMachine", id=vm_id), timeout=JOB_TIMEOUT)["virtualmachine"]
    assert started["state"] == "Running"
    wait_for_line(log, GUEST_READY, count=2, timeout=BOOT_TIMEOUT)

    rebooted = tenant.wait(tenant("rebootVirtualMachine", id=vm_id), timeout=JOB_TIMEOUT)["virtualmachine"]
    assert rebooted["state"] == "Running"
    wait_for_line(log, GUEST_READY, count=3, timeout=BOOT_TIMEOUT)

    # the guest powers itself off behind Strato's back: the periodic pass follows it
    domain = conn.lookupByName(instance)
    domain.shutdown()
    deadline = time.monotonic() + 90
    while domain.isActive():
        assert time.monotonic() < deadline, "the guest did not power off on an ACPI shutdown"
        time.sleep(0.2)
    background.one_pass(cloud)
    assert tenant("listVirtualMachines", id=vm_id)["virtualmachine"][0]["state"] == "Stopped"
    assert_nothing_held_on_host(cloud)
    stops = admin("listEvents", type="VM.STOP", listall=True)["event"]
    assert any("Found powered off" in e["description"] for e in stops)

    reverted = tenant.wait(tenant("revertToVMSnapshot", vmsnapshotid=snap["id"]), timeout=JOB_TIMEOUT)
    assert reverted["virtualmachine"]["state"] == "Stopped"

    # the admin expunges (allow.user.expunge.recover.vm is false, as in CloudStack)
    gone = admin.wait(admin("destroyVirtualMachine", id=vm_id, expunge=True), timeout=JOB_TIMEOUT)
    assert gone["virtualmachine"]["id"] == vm_id
    assert tenant("listVirtualMachines") == {}
    assert tenant("listVMSnapshot") == {}, "the VM's snapshots went with it"
    assert vm_id not in domain_uuids(conn), "no domain left"
    assert volume_files(dirs) == [], "no volume file left"
    assert not os.path.exists(log), "no console log left"
    assert_nothing_held(cloud)


def _internal_snapshots(image: str) -> str:
    return subprocess.run(["qemu-img", "snapshot", "-l", "-U", image], capture_output=True, text=True,
                          check=True).stdout


def assert_nothing_held_on_host(cloud) -> None:
    cpu, memory = 1, 0  # CloudStack's capacity types
    held = {key: used for key, used in capacity_used(cloud).items() if used and key[0] in (cpu, memory)}
    assert not held, f"host capacity still reserved: {held}"


# -- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, status, words", [
    # nothing listens on port 1: unreachable
    ("qemu+tcp://127.0.0.1:1/system", 534, "127.0.0.1:1"),
    # a scheme libvirt has no driver for
    ("qemu+nosuch://127.0.0.1/system", 431, "qemu+nosuch"),
    # a local URI naming no libvirt driver
    ("nosuchdriver:///system", 431, "nosuchdriver"),
])
def test_add_host_with_a_libvirt_uri_it_cannot_use_adds_nothing(admin, cloud, url, status, words):
    zone = admin("createZone", name="kvm-bad", networktype="Basic", dns1="127.0.0.1",
                 internaldns1="127.0.0.1")["zone"]
    pod = admin("createPod", zoneid=zone["id"], name="pod1", gateway="10.252.0.1", netmask="255.255.255.0",
                startip="10.252.0.10", endip="10.252.0.20")["pod"]
    cluster = admin("addCluster", zoneid=zone["id"], podid=pod["id"], clustername="kvm1", hypervisor="KVM",
                    clustertype="CloudManaged")["cluster"][0]
    with pytest.raises(ApiError) as err:
        admin("addHost", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], url=url, hypervisor="KVM",
              username="root", password="unused")
    assert err.value.status == status, err.value.body
    text = err.value.body["errortext"]
    assert words in text, text
    assert "Traceback" not in text
    assert admin("listHosts") == {}
    assert capacity_used(cloud) == {}


@pytest.mark.parametrize("first", ["deploy", "start"])
def test_a_start_on_a_bridge_that_does_not_exist_leaves_nothing(cloud, app, admin, libvirtd, dirs, template_url,
                                                                 conn, domains_made, first):
    """QEMU cannot plug the NIC: the domain, its console log and the root volume made for
    this start go, the capacity is given back; a failed deploy ends in Error (as CloudStack),
    a failed start of a VM created with startvm=false in Stopped."""
    kvm = build_zone(admin, cloud, libvirtd, dirs, template_url, bridge_name="stnobr0")
    tenant = make_tenant(app, cloud)
    job = tenant("deployVirtualMachine", zoneid=kvm.zone, serviceofferingid=offering_id(cloud),
                 templateid=kvm.template, startvm=first == "deploy")
    vm_id = job["id"]
    domains_made.append(vm_row(cloud, vm_id)[0])
    if first == "start":
        assert tenant.wait(job, timeout=JOB_TIMEOUT)["virtualmachine"]["state"] == "Stopped"
        job = tenant("startVirtualMachine", id=vm_id)
    with pytest.raises(ApiError) as err:
        tenant.wait(job, timeout=JOB_TIMEOUT)
    text = err.value.body["errortext"]
    assert "stnobr0" in text and "Traceback" not in text, err.value.body
    assert_failed_start_left_nothing(cloud, admin, conn, dirs, vm_id, "Error" if first == "deploy" else "Stopped")


def assert_failed_start_left_nothing(cloud, admin, conn, dirs: Dirs, vm_id: str, state: str) -> None:
    vm = admin("listVirtualMachines", id=vm_id)["virtualmachine"][0]
    assert vm["state"] == state
    assert vm_id not in domain_uuids(conn), "no domain left"
    assert volume_files(dirs) == [], "no disk left"
    assert list(dirs.consoles.iterdir()) == [], "no console log left"
    assert_nothing_held(cloud)
    volume = admin("listVolumes", virtualmachineid=vm_id, listall=True)["volume"][0]
    assert volume["state"] == "Allocated" and "storageid" not in volume


# -- a domain Strato does not know ----------------------------------------------------------------


def test_a_domain_strato_does_not_know_is_reported_and_left_alone(cloud, admin, libvirtd, dirs, template_url,
                                                                  conn, domains_made):
    build_zone(admin, cloud, libvirtd, dirs, template_url)
    name = f"kvmtest-foreign-{uuid.uuid4().hex[:8]}"
    domains_made.append(name)
    conn.defineXML(f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>"
                   "<os><type arch='x86_64'>hvm</type></os></domain>")
    background.one_pass(cloud)
    background.one_pass(cloud)  # once a day per domain, not once a pass
    events = [e for e in admin("listEvents", type="VM.UNMANAGED", listall=True).get("event", [])
              if name in e["description"]]
    assert len(events) == 1 and events[0]["level"] == "WARN", events
    assert conn.lookupByName(name) is not None, "the foreign domain was left alone"
    assert admin("listVirtualMachines", listall=True) == {}
