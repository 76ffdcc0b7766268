"""Live migration of a real guest through the signed API, between two libvirtds of this
machine: the system one and the session's second one (``second_libvirtd``), two hosts of
one KVM cluster sharing a file:// pool (declared in ``shared_filesystems``).

One boot: the guest is deployed, migrated by the root admin with migrateVirtualMachine,
then stopped by ACPI on the destination, which the guest answers on its console.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
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
    events = admin("listEvents", type="VM.MIGRATE", listall=True)["event"]
    assert any("traveller" in e["description"] for e in events)

    # the guest still runs, now on the target: it answers the ACPI button the target's libvirt presses
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
