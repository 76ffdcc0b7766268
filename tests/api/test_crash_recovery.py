"""kill -9 of the management server in the middle of a job: after a restart nothing is
left in a transitional state, no capacity leaks, and no hypervisor object is orphaned."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cs import CloudStack

from core.cloud import Cloud
from plugins.hypervisor_simulator.hypervisor import SimulatorHypervisor
from tests.core.factories import simulated_zone
from tests.helpers import capacity_used, make_account, offering_id, user_keys

STRATO = str(Path(sys.executable).with_name("strato"))
CPU, MEMORY = 1, 0

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, settings):
        self.port = free_port()
        env = {**os.environ, "STRATO_DATABASE_URL": settings.database_url, "STRATO_DATA_DIR": str(settings.data_dir)}
        self.process = subprocess.Popen([STRATO, "serve", "--port", str(self.port)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.url = f"http://127.0.0.1:{self.port}/client/api"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.process.kill()
        raise RuntimeError(f"strato serve did not come up: {self.process.stdout.read()}")

    def kill9(self):
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def wait_for_state(client, vm_id, state, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vms = client.listVirtualMachines(id=vm_id).get("virtualmachine", [])
        if vms and vms[0]["state"] == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"VM never reached {state}")


@pytest.fixture
def world(settings):
    cloud = Cloud(settings, migrate=False)
    zone = simulated_zone(cloud, hosts=1)
    keys = user_keys(cloud, make_account(cloud, "dora"))
    offering = offering_id(cloud)
    cloud.close()
    sim = SimulatorHypervisor({"state_file": str(Path(settings.data_dir) / "simulator.sqlite")})
    return {"zone": zone, "keys": keys, "offering": offering, "sim": sim}


def restart(settings):
    cloud = Cloud(settings, migrate=False)
    cloud.start()
    return cloud


def job_result(cloud, job_uuid):
    from sqlalchemy import select

    from core.model import AsyncJob

    with cloud.db.transaction() as session:
        job = session.scalar(select(AsyncJob).where(AsyncJob.uuid == job_uuid))
        return job.status, job.result


def test_kill_during_start_leaves_a_stopped_vm_and_no_capacity(settings, world):
    zone = world["zone"]
    server = Server(settings)
    client = CloudStack(endpoint=server.url, key=world["keys"][0], secret=world["keys"][1])
    world["sim"].inject(zone["host_keys"][0], "start", delay=30, fail=False)  # the power-on hangs
    job = client.deployVirtualMachine(zoneid=zone["zone"], serviceofferingid=world["offering"],
                                      templateid=zone["template"])
    wait_for_state(client, job["id"], "Starting")
    server.kill9()

    cloud = restart(settings)
    try:
        status, result = job_result(cloud, job["jobid"])
        assert status == 2 and "interrupted" in result["errortext"]
        from sqlalchemy import select

        from core.model import VirtualMachine

        with cloud.db.transaction() as session:
            vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == job["id"]))
            assert (vm.state, vm.host_id) == ("Stopped", None)
        used = capacity_used(cloud)
        assert all(v == 0 for (kind, _), v in used.items() if kind in (CPU, MEMORY)), used
        assert world["sim"].power_states(_host(cloud)) == {}, "no VM left on the host"
        # and the VM starts normally afterwards
        from api.app import create_app
        from tests.helpers import ApiClient

        tenant = ApiClient(create_app(cloud), *world["keys"])
        assert tenant.wait(tenant("startVirtualMachine", id=job["id"]))["virtualmachine"]["state"] == "Running"
    finally:
        cloud.close()


def test_kill_during_stop_follows_what_the_host_reports(settings, world):
    zone = world["zone"]
    server = Server(settings)
    client = CloudStack(endpoint=server.url, key=world["keys"][0], secret=world["keys"][1], job_timeout=60)
    vm = client.deployVirtualMachine(zoneid=zone["zone"], serviceofferingid=world["offering"],
                                     templateid=zone["template"], fetch_result=True)["virtualmachine"]
    world["sim"].inject(zone["host_keys"][0], "stop", delay=30, fail=False)  # the shutdown hangs
    client.stopVirtualMachine(id=vm["id"])
    wait_for_state(client, vm["id"], "Stopping")
    server.kill9()

    cloud = restart(settings)
    try:
        from sqlalchemy import select

        from core.model import VirtualMachine

        with cloud.db.transaction() as session:
            row = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm["id"]))
            assert row.state == "Running", "the host still runs it, so it is Running, holding its capacity"
        used = capacity_used(cloud)
        assert sum(v for (kind, _), v in used.items() if kind == MEMORY) == 512 * 1024**2
    finally:
        cloud.close()


def _host(cloud):
    from core.model import Host
    from core.orchestration.refs import host_ref

    with cloud.db.transaction() as session:
        return host_ref(session.query(Host).one())


def leave_migrating(cloud, vm_uuid: str) -> tuple[str, str]:
    """What migrate_vm's first transaction leaves when the process dies right after it: the
    destination reserved and recorded, the VM Migrating. Returns (source, destination) uuids."""
    from sqlalchemy import select

    from core.model import VirtualMachine
    from core.orchestration import infrastructure
    from core.orchestration.vm_states import Event, transition

    with cloud.db.transaction() as session:
        row = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
        destination = infrastructure._reserve_destination(cloud, session, row, row.host)
        row.details = {**row.details, "migration_destination": destination.id}
        transition(session, row, Event.MIGRATION_REQUESTED)
        return row.host.uuid, destination.uuid


def vm_place(cloud, vm_uuid: str) -> tuple[str, str | None, str | None, dict]:
    """(state, host uuid, last host uuid, details) as the database has them."""
    from sqlalchemy import select

    from core.model import Host, VirtualMachine

    with cloud.db.transaction() as session:
        row = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
        uuid_of = {h.id: h.uuid for h in session.scalars(select(Host))}
        return row.state, uuid_of.get(row.host_id), uuid_of.get(row.last_host_id), dict(row.details)


def memory_held(cloud) -> dict:
    return {host: v for (kind, host), v in capacity_used(cloud).items() if kind == MEMORY and v}


# where the dead worker had got to -> where the VM runs afterwards
@pytest.mark.parametrize("moved, source_down, expected", [
    (False, False, "source"),       # died before the driver moved it
    (True, False, "destination"),   # died after the driver moved it, before the last transaction
    (False, True, "source"),        # the source cannot be asked and the destination lacks it: it stayed
    (True, True, "destination"),    # the source cannot be asked and the destination runs it
])
def test_a_migration_interrupted_by_a_crash_settles_where_the_vm_runs(cloud, moved, source_down, expected):
    """Recovery of a VM left Migrating: Running on the host that runs it, the other host's
    reservation released, the migration detail gone."""
    from api.app import create_app
    from core.orchestration import recovery
    from tests.helpers import ApiClient

    zone = simulated_zone(cloud, hosts=2)
    sim = cloud.plugins.hypervisors["simulator"]
    key_of = dict(zip(zone["hosts"], zone["host_keys"]))
    admin = ApiClient(create_app(cloud), *user_keys(cloud, "admin"))
    vm = admin.wait(admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                          templateid=zone["template"]))["virtualmachine"]
    instance = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["instancename"]
    source, destination = leave_migrating(cloud, vm["id"])
    assert memory_held(cloud) == {source: 512 * 1024**2, destination: 512 * 1024**2}
    if moved:  # the driver's part, done before the process died
        sim.migrate_vm(host_ref_of(cloud, source), host_ref_of(cloud, destination), _spec(cloud, vm["id"]))
    if source_down:
        sim.set_host_up(key_of[source], False)

    assert recovery.settle_transitional_vms(cloud) == {vm["id"]: "Running"}
    runs_on = {"source": source, "destination": destination}[expected]
    state, host, last_host, details = vm_place(cloud, vm["id"])
    assert (state, host, last_host) == ("Running", runs_on, source)
    assert "migration_destination" not in details
    assert memory_held(cloud) == {runs_on: 512 * 1024**2}, "only the host that runs it holds it"
    # the VM's owner sees the event: it names no host (CloudStack shows users no host)
    assert [e["description"] for e in admin("listEvents", type="VM.MIGRATE", listall=True)["event"]] == [
        f"VM {vm['name']} was left migrating by a server that stopped; it runs again"]
    sim.set_host_up(key_of[source], True)
    assert instance in sim.power_states(host_ref_of(cloud, runs_on))


def test_an_interrupted_migration_off_on_both_hosts_ends_stopped_holding_nothing(cloud):
    from api.app import create_app
    from core.orchestration import recovery
    from tests.helpers import ApiClient

    zone = simulated_zone(cloud, hosts=2)
    sim = cloud.plugins.hypervisors["simulator"]
    admin = ApiClient(create_app(cloud), *user_keys(cloud, "admin"))
    vm = admin.wait(admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                          templateid=zone["template"]))["virtualmachine"]
    source, _destination = leave_migrating(cloud, vm["id"])
    sim.stop_vm(host_ref_of(cloud, source), _spec(cloud, vm["id"]))  # the guest powered off meanwhile

    assert recovery.settle_transitional_vms(cloud) == {vm["id"]: "Stopped"}
    state, host, _last, details = vm_place(cloud, vm["id"])
    assert (state, host) == ("Stopped", None) and "migration_destination" not in details
    assert memory_held(cloud) == {}


def test_an_interrupted_migration_waits_while_the_destination_cannot_be_asked(cloud):
    """Off on the source and the destination silent: it may have landed there, so nothing is
    decided until the destination answers."""
    from api.app import create_app
    from core.orchestration import recovery
    from tests.helpers import ApiClient

    zone = simulated_zone(cloud, hosts=2)
    sim = cloud.plugins.hypervisors["simulator"]
    key_of = dict(zip(zone["hosts"], zone["host_keys"]))
    admin = ApiClient(create_app(cloud), *user_keys(cloud, "admin"))
    vm = admin.wait(admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                          templateid=zone["template"]))["virtualmachine"]
    source, destination = leave_migrating(cloud, vm["id"])
    refs = {uuid: host_ref_of(cloud, uuid) for uuid in (source, destination)}
    sim.migrate_vm(refs[source], refs[destination], _spec(cloud, vm["id"]))
    sim.set_host_up(key_of[destination], False)

    assert recovery.settle_transitional_vms(cloud) == {}
    assert vm_place(cloud, vm["id"])[:2] == ("Migrating", source)
    assert set(memory_held(cloud)) == {source, destination}, "both reservations kept meanwhile"
    sim.set_host_up(key_of[destination], True)
    assert recovery.settle_transitional_vms(cloud) == {vm["id"]: "Running"}
    assert vm_place(cloud, vm["id"])[:2] == ("Running", destination)
    assert set(memory_held(cloud)) == {destination}


def host_ref_of(cloud, host_uuid: str):
    from core.model import Host
    from core.orchestration.refs import host_ref

    with cloud.db.transaction() as session:
        return host_ref(session.query(Host).filter(Host.uuid == host_uuid).one())


def _spec(cloud, vm_uuid: str):
    from sqlalchemy import select

    from core.model import VirtualMachine
    from core.orchestration.refs import vm_spec

    with cloud.db.transaction() as session:
        return vm_spec(session, session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid)))
