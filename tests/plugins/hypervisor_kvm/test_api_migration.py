"""Live migration of a real guest through the signed API, between two libvirtds of this
machine: the system one and the session's second one (``second_libvirtd``), two hosts of
one KVM cluster sharing a file:// pool (declared in ``shared_filesystems``).

One boot: the guest is deployed, migrated by the root admin with migrateVirtualMachine,
its console address (VNC port) now the destination's; then two migrations cut short by a
dead worker are settled by recovery (before and after libvirt moved it back); then stopped
by ACPI where it runs, which the guest answers on its console.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.config import Settings
from core.model import Host, VirtualMachine
from core.orchestration import recovery
from tests.helpers import ApiClient, capacity_used, offering_id

from .helpers import GUEST_POWEROFF, GUEST_READY, console_lines, wait_for_line
from .test_api_integration import (  # noqa: F401 - fixtures, used by name
    BOOT_TIMEOUT,
    JOB_TIMEOUT,
    assert_nothing_held,
    build_zone,
    conn,
    dirs,
    domains_made,
    make_tenant,
    template_url,
    vm_row,
    volume_files,
)

pytestmark = [pytest.mark.kvm, pytest.mark.slow]
CPU, MEMORY = 1, 0  # CloudStack's capacity types


@pytest.fixture
def settings(tmp_path, database_url, dirs, libvirtd, second_libvirtd) -> Settings:  # noqa: F811
    return Settings(data_dir=tmp_path / "data", database_url=database_url,
                    plugins={"hypervisors": ["kvm"], "storage": ["nfs"], "network": [], "api": []},
                    plugin_config={"kvm": {"domain_type": "qemu", "console_log_dir": str(dirs.consoles),
                                           "shutdown_timeout": 60,
                                           "shared_filesystems": [str(dirs.pool.parent)]}})


@pytest.fixture
def conns(libvirt_module, libvirtd, second_libvirtd):
    """{uri: connection} of both daemons; afterwards none holds a domain of the test's VMs."""
    made = {uri: libvirt_module.open(uri) for uri in (libvirtd, second_libvirtd)}
    yield made
    for conn in made.values():
        conn.close()


def host_use(cloud, host: str) -> tuple[int, int]:
    used = capacity_used(cloud)
    return used.get((CPU, host), 0), used.get((MEMORY, host), 0)


def leave_migrating(cloud, vm_id: str, to: str) -> bool:
    """What migrate_vm's first transaction leaves (``to`` reserved and recorded, the VM
    Migrating) when the process dies right after it."""
    from core.orchestration import infrastructure
    from core.orchestration.vm_states import Event, transition

    with cloud.db.transaction() as session:
        row = session.scalar(sa.select(VirtualMachine).where(VirtualMachine.uuid == vm_id))
        destination = infrastructure._reserve_destination(cloud, session, row, row.host, host_uuid=to)
        row.details = {**row.details, "migration_destination": destination.id}
        transition(session, row, Event.MIGRATION_REQUESTED)
    return True


def driver_move(cloud, vm_id: str, source: str, destination: str) -> None:
    """The driver's part of a migration, as migrate_vm calls it."""
    from core.orchestration import networking
    from core.orchestration.refs import host_ref, vm_spec

    with cloud.db.transaction() as session:
        row = session.scalar(sa.select(VirtualMachine).where(VirtualMachine.uuid == vm_id))
        refs = {h.uuid: host_ref(h) for h in session.scalars(sa.select(Host).where(Host.uuid.in_([source, destination])))}
        spec, driver = vm_spec(session, row), cloud.plugins.hypervisor(row.host.hypervisor)
    spec.nics = networking.prepare_vm_nics(cloud, vm_id, spec)
    driver.migrate_vm(refs[source], refs[destination], spec)


def where(cloud, vm_id: str) -> str:
    with cloud.db.transaction() as session:
        row = session.scalar(sa.select(VirtualMachine).where(VirtualMachine.uuid == vm_id))
        assert row.state == "Running" and "migration_destination" not in row.details
        return row.host.uuid


def test_a_running_guest_moves_to_the_other_host_and_keeps_running(cloud, app, admin: ApiClient, libvirtd,
                                                                   second_libvirtd, dirs, template_url, conns,
                                                                   domains_made):  # noqa: F811
    kvm = build_zone(admin, cloud, libvirtd, dirs, template_url)
    second = admin("addHost", zoneid=kvm.zone, podid=kvm.pod, clusterid=kvm.cluster, url=second_libvirtd,
                   hypervisor="KVM", username="root", password="unused")["host"][0]
    first_name = admin("listHosts", id=kvm.host)["host"][0]["name"]
    assert second["state"] == "Up" and second["name"] != first_name
    uri_of = {kvm.host: libvirtd, second["id"]: second_libvirtd}
    name_of = {kvm.host: first_name, second["id"]: second["name"]}
    tenant = make_tenant(app, cloud)

    job = tenant("deployVirtualMachine", zoneid=kvm.zone, serviceofferingid=offering_id(cloud),
                 templateid=kvm.template, name="traveller")
    vm_id = job["id"]
    domains_made.append(vm_row(cloud, vm_id)[0])
    assert tenant.wait(job, timeout=JOB_TIMEOUT)["virtualmachine"]["state"] == "Running"
    instance, details, _root = vm_row(cloud, vm_id)
    log = details["console_log"]
    wait_for_line(log, GUEST_READY, timeout=BOOT_TIMEOUT)
    source = admin("listVirtualMachines", id=vm_id)["virtualmachine"][0]["hostid"]
    target = next(h for h in uri_of if h != source)
    held = host_use(cloud, source)
    assert held[0] > 0 and host_use(cloud, target) == (0, 0)

    moved = admin.wait(admin("migrateVirtualMachine", virtualmachineid=vm_id, hostid=target),
                       timeout=JOB_TIMEOUT)["virtualmachine"]
    assert moved["state"] == "Running" and moved["hostid"] == target
    listed = admin("listVirtualMachines", id=vm_id)["virtualmachine"][0]
    assert listed["hostid"] == target and listed["hostname"] == name_of[target]
    assert vm_id not in {d.UUIDString() for d in conns[uri_of[source]].listAllDomains(0)}, "gone from the source"
    domain = conns[uri_of[target]].lookupByUUIDString(vm_id)
    assert domain.isActive() and domain.isPersistent() and domain.name() == instance
    assert host_use(cloud, target) == held and host_use(cloud, source) == (0, 0), "the capacity moved with it"
    # the console address kept for the UI is the target's (the two daemons give VNC ports from 5900 and 6900)
    graphics = ET.fromstring(domain.XMLDesc(0)).find("devices/graphics[@type='vnc']")
    moved_details = vm_row(cloud, vm_id)[1]
    assert moved_details["vnc_port"] == int(graphics.get("port")) != details["vnc_port"], (moved_details, details)
    assert moved_details["console_log"] == log
    events = admin("listEvents", type="VM.MIGRATE", listall=True)["event"]
    assert any("traveller" in e["description"] for e in events)

    # a worker killed mid-migration back to the source, before and then after libvirt moved the guest:
    # recovery asks both libvirtds where it runs
    assert leave_migrating(cloud, vm_id, to=source) and recovery.settle_transitional_vms(cloud) == {vm_id: "Running"}
    assert where(cloud, vm_id) == target and host_use(cloud, target) == held and host_use(cloud, source) == (0, 0)
    leave_migrating(cloud, vm_id, to=source)
    driver_move(cloud, vm_id, target, source)  # what the dead worker had done
    assert recovery.settle_transitional_vms(cloud) == {vm_id: "Running"}
    assert where(cloud, vm_id) == source and host_use(cloud, source) == held and host_use(cloud, target) == (0, 0)
    assert vm_id not in {d.UUIDString() for d in conns[uri_of[target]].listAllDomains(0)}
    domain = conns[uri_of[source]].lookupByUUIDString(vm_id)
    assert domain.isActive() and domain.isPersistent()

    # the guest still runs, moved twice: it answers the ACPI button its libvirt presses
    assert GUEST_POWEROFF not in console_lines(log)
    stopped = tenant.wait(tenant("stopVirtualMachine", id=vm_id), timeout=JOB_TIMEOUT)["virtualmachine"]
    assert stopped["state"] == "Stopped"
    assert GUEST_POWEROFF in console_lines(log), "powered off by itself: it was alive after the migration"
    assert not domain.isActive()

    admin.wait(admin("destroyVirtualMachine", id=vm_id, expunge=True), timeout=JOB_TIMEOUT)
    for conn in conns.values():
        assert vm_id not in {d.UUIDString() for d in conn.listAllDomains(0)}
    assert volume_files(dirs) == [] and not Path(log).exists()
    assert_nothing_held(cloud)
