"""The periodic pass: a guest that powered itself off becomes Stopped, a VM found running
becomes Running, an unknown VM is reported and left alone, destroyed VMs are expunged
after expunge.delay, and an unreachable host goes Alert then Down."""

from __future__ import annotations

from sqlalchemy import select

from core.model import Event, Host, VirtualMachine
from core.orchestration import background
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, capacity_used, offering_id

MEMORY = 0


def deploy(app, cloud, zone):
    admin = ApiClient.for_user(app, cloud, "admin")
    vm = admin.wait(admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                          templateid=zone["template"]))["virtualmachine"]
    return admin, vm


def vm_row(cloud, vm_id):
    with cloud.db.transaction() as session:
        return session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_id))


def test_a_guest_that_powered_itself_off_becomes_stopped(app, cloud):
    zone = simulated_zone(cloud, hosts=1)
    _, vm = deploy(app, cloud, zone)
    sim = cloud.plugins.hypervisors["simulator"]
    with sim.state.cursor() as cur:  # the guest shuts down on its own
        cur.execute("UPDATE sim_vm SET power = 'off'")
    background.one_pass(cloud)
    assert vm_row(cloud, vm["id"]).state == "Stopped"
    assert all(v == 0 for (kind, _), v in capacity_used(cloud).items() if kind == MEMORY)


def test_a_vm_found_running_becomes_running_and_holds_capacity(app, cloud):
    zone = simulated_zone(cloud, hosts=1)
    admin, vm = deploy(app, cloud, zone)
    admin.wait(admin("stopVirtualMachine", id=vm["id"]))
    sim = cloud.plugins.hypervisors["simulator"]
    with sim.state.cursor() as cur:  # someone started it on the host directly
        cur.execute("UPDATE sim_vm SET power = 'on'")
    background.one_pass(cloud)
    assert vm_row(cloud, vm["id"]).state == "Running"
    assert sum(v for (kind, _), v in capacity_used(cloud).items() if kind == MEMORY) == 512 * 1024**2


def test_an_unknown_vm_is_reported_once_and_left_alone(app, cloud):
    zone = simulated_zone(cloud, hosts=1)
    sim = cloud.plugins.hypervisors["simulator"]
    sim.place_unknown_vm(zone["host_keys"][0], "somebody-elses-vm")
    background.one_pass(cloud)
    background.one_pass(cloud)
    with cloud.db.transaction() as session:
        events = session.scalars(select(Event).where(Event.event_type == "VM.UNMANAGED")).all()
    assert len(events) == 1 and "somebody-elses-vm" in events[0].description
    with sim.state.cursor() as cur:
        assert cur.execute("SELECT power FROM sim_vm WHERE name = 'somebody-elses-vm'").fetchone() == ("on",)


def test_destroyed_vms_are_expunged_after_the_delay(app, cloud):
    zone = simulated_zone(cloud, hosts=1)
    admin, vm = deploy(app, cloud, zone)
    admin.wait(admin("destroyVirtualMachine", id=vm["id"]))
    background.one_pass(cloud)
    assert vm_row(cloud, vm["id"]).removed is None, "the default delay is a day"
    with cloud.db.transaction() as session:
        cloud.config.set(session, "expunge.delay", "0")
    background.one_pass(cloud)
    assert vm_row(cloud, vm["id"]).removed is not None
    assert all(v == 0 for v in capacity_used(cloud).values())


def test_an_unreachable_host_goes_alert_then_down(app, cloud):
    zone = simulated_zone(cloud, hosts=1)
    sim = cloud.plugins.hypervisors["simulator"]
    sim.set_host_up(zone["host_keys"][0], False)

    def status():
        with cloud.db.transaction() as session:
            return session.scalar(select(Host.status))

    background.one_pass(cloud)
    assert status() == "Alert"
    background.one_pass(cloud)
    assert status() == "Down"
    sim.set_host_up(zone["host_keys"][0], True)
    background.one_pass(cloud)
    assert status() == "Up"
