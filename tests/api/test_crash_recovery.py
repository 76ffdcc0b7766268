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


def test_a_migration_interrupted_by_a_crash_gives_the_destination_back(cloud):
    """Recovery of a VM left Migrating: it runs where the host says, the other reservation is released."""
    from core.orchestration import infrastructure, recovery
    from core.orchestration.vm_states import Event, transition
    from tests.core.factories import simulated_zone
    from tests.helpers import ApiClient

    zone = simulated_zone(cloud, hosts=2)
    from api.app import create_app

    admin = ApiClient(create_app(cloud), *user_keys(cloud, "admin"))
    vm = admin.wait(admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                          templateid=zone["template"]))["virtualmachine"]
    from sqlalchemy import select

    from core.model import VirtualMachine

    # what migrate_vm's first transaction leaves when the process dies right after it
    with cloud.db.transaction() as session:
        row = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm["id"]))
        destination = infrastructure._reserve_destination(cloud, session, row, row.host)
        row.details = {**row.details, "migration_destination": destination.id}
        transition(session, row, Event.MIGRATION_REQUESTED)
    assert sum(v for (kind, _), v in capacity_used(cloud).items() if kind == MEMORY) == 2 * 512 * 1024**2
    assert recovery.settle_transitional_vms(cloud) == {vm["id"]: "Running"}
    used = {key: v for key, v in capacity_used(cloud).items() if key[0] == MEMORY}
    assert sorted(used.values()) == [0, 512 * 1024**2], "only the source holds the VM again"
