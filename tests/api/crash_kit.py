"""Shared pieces of the tests/api/test_breaker_crash_*.py files: real ``strato serve`` (and
``strato worker``) processes killed with SIGKILL in the middle of a job, a restart that runs
recovery and the periodic pass, and an audit of what is left: transitional rows, capacity and
resource counts against what exists, pending jobs, the simulator against the database."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from cs import CloudStack

from core.cloud import Cloud
from plugins.hypervisor_simulator.hypervisor import SimulatorHypervisor
from plugins.hypervisor_simulator.storage import SimulatorStorage  # noqa: F401  (the state file's tables)
from tests.api.test_crash_recovery import STRATO, free_port
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, make_account, offering_id, user_keys

REDIS_URL = os.environ.get("STRATO_TEST_REDIS", "redis://127.0.0.1:6379/0")


class Proc:
    """``strato serve`` (API on a free port) or ``strato worker``, optionally on Redis."""

    def __init__(self, settings, kind="serve", broker=None, queue=None):
        env = {**os.environ, "STRATO_DATABASE_URL": settings.database_url, "STRATO_DATA_DIR": str(settings.data_dir)}
        if broker:
            env.update(STRATO_BROKER=broker, STRATO_QUEUE=queue)
        self.port = free_port()
        args = [STRATO, "serve", "--port", str(self.port)] if kind == "serve" else [STRATO, "worker", "--threads", "2"]
        self.process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}/client/api"
        if kind == "serve":
            import socket

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    return
                except OSError:
                    time.sleep(0.1)
            self.kill9()
            raise RuntimeError("strato serve did not come up")

    def kill9(self):
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def world(settings):
    cloud = Cloud(settings, migrate=False)
    zone = simulated_zone(cloud, hosts=2)
    account = make_account(cloud, "dora")
    keys = user_keys(cloud, account)
    admin_keys = user_keys(cloud, "admin")
    offering = offering_id(cloud)
    count_drift(cloud)  # the factory writes its template's rows directly: start from true counts
    cloud.close()
    sim = SimulatorHypervisor({"state_file": str(Path(settings.data_dir) / "simulator.sqlite")})
    procs: list[Proc] = []
    w = {"zone": zone, "keys": keys, "admin_keys": admin_keys, "offering": offering, "sim": sim, "procs": procs,
         "settings": settings, "account": account}
    yield w
    for p in procs:
        p.kill9()
    if settings.queue and settings.queue.startswith("strato-breaker-"):
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        for key in r.scan_iter(f"{settings.queue}*"):
            r.delete(key)


def serve(world, broker=False):
    settings = world["settings"]
    if broker and not settings.queue.startswith("strato-breaker-"):
        settings.queue = f"strato-breaker-{uuid.uuid4().hex[:8]}"
    server = Proc(settings, "serve", REDIS_URL if broker else None, settings.queue)
    world["procs"].append(server)
    if broker:
        world["procs"].append(Proc(settings, "worker", REDIS_URL, settings.queue))
    return server


def tenant(world, server, admin=False):
    key, secret = world["admin_keys" if admin else "keys"]
    return CloudStack(endpoint=server.url, key=key, secret=secret, job_timeout=60)


def wait_for(fetch, predicate, timeout=20, what="the state"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fetch()
        if predicate(value):
            return value
        time.sleep(0.05)
    raise AssertionError(f"never reached {what}: {fetch()}")


def kill_all(world):
    for p in world["procs"]:
        p.kill9()


def age_heartbeats(cloud, seconds=600):
    """The killed worker's jobs, as they look once STALE_AFTER has passed without a beat."""
    from core.model import AsyncJob, JobStatus

    old = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=seconds)
    with cloud.db.transaction() as session:
        session.execute(sa.update(AsyncJob).where(AsyncJob.status == JobStatus.PENDING).values(
            heartbeat=old, created=old))


def restart(world, passes=2):
    """A new management server on the same data: start-up recovery, then periodic passes."""
    from core.orchestration import background

    settings = world["settings"]
    cloud = Cloud(settings, migrate=False)
    if not cloud.jobs.embedded:
        age_heartbeats(cloud)
    cloud.start(worker=True)
    for _ in range(passes):
        background.one_pass(cloud)
        cloud.jobs.join(30) if cloud.jobs.embedded else None
    return cloud


def api(world, cloud, admin=False):
    from api.app import create_app

    key, secret = world["admin_keys" if admin else "keys"]
    return ApiClient(create_app(cloud), key, secret)


# -- the audit --------------------------------------------------------------------------------

TRANSITIONAL = {
    "vm_instance": ("Starting", "Stopping", "Migrating", "Expunging"),
    "volume": ("Creating", "Resizing", "Migrating", "Snapshotting", "RevertSnapshotting", "Attaching", "Expunging",
               "Destroy", "UploadOp", "Copying"),
    "snapshot": ("Allocated", "BackingUp", "Destroying", "Creating"),
    "vm_snapshot": ("Allocated", "Creating", "Reverting", "Expunging"),
    "user_ip_address": ("Allocating", "Releasing"),
    "network": ("Implementing", "Shutdown"),
    "domain_router": ("Starting", "Stopping"),
}


def stuck_rows(cloud) -> dict:
    out = {}
    with cloud.db.engine.connect() as conn:
        for table, states in TRANSITIONAL.items():
            cols = {c["name"] for c in sa.inspect(conn).get_columns(table)}
            live = " AND removed IS NULL" if "removed" in cols else ""
            name = "uuid" if "uuid" in cols else "id"
            rows = conn.execute(sa.text(f"SELECT {name}, state FROM {table} WHERE state IN :s{live}").bindparams(
                sa.bindparam("s", expanding=True)), {"s": list(states)}).all()
            if rows:
                out[table] = [tuple(r) for r in rows]
    return out


def pending_jobs(cloud) -> list:
    from core.model import AsyncJob, JobStatus

    with cloud.db.transaction() as session:
        return [(j.uuid, j.handler) for j in session.scalars(sa.select(AsyncJob).where(
            AsyncJob.status == JobStatus.PENDING))]


def capacity_drift(cloud) -> dict:
    """{(type, host/pool name): (recorded used, what the live rows hold)} where they differ.
    CPU/memory: the reservations of VMs placed on the host (a Migrating one also on its
    destination); storage: the sizes of live volumes on the pool."""
    from core.model import Capacity, CapacityType, Host, StoragePool, VirtualMachine, Volume

    drift = {}
    with cloud.db.transaction() as session:
        for cap in session.scalars(sa.select(Capacity)):
            if cap.host_id is not None and cap.capacity_type in (CapacityType.CPU, CapacityType.MEMORY):
                column = VirtualMachine.reserved_cpu if cap.capacity_type == CapacityType.CPU else \
                    VirtualMachine.reserved_memory
                held = 0
                for vm in session.scalars(sa.select(VirtualMachine).where(VirtualMachine.removed.is_(None))):
                    here = vm.host_id == cap.host_id or (
                        vm.state == "Migrating" and (vm.details or {}).get("migration_destination") == cap.host_id)
                    if here and vm.state in ("Starting", "Running", "Stopping", "Migrating"):
                        held += int(getattr(vm, column.key) or 0)
                where = session.get(Host, cap.host_id).name
            elif cap.pool_id is not None and cap.capacity_type == CapacityType.STORAGE_ALLOCATED:
                held = int(session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Volume.size), 0)).where(
                    Volume.pool_id == cap.pool_id, Volume.removed.is_(None))))
                where = session.get(StoragePool, cap.pool_id).name
            else:
                continue
            if int(cap.used) != held:
                drift[(cap.capacity_type, where)] = (int(cap.used), held)
    return drift


def count_drift(cloud) -> dict:
    """{(account or domain, resource type): (count before, after a recount)} that a recount changes."""
    from core.model import Domain, ResourceCount
    from core.orchestration import limits

    def snapshot(session):
        return {(r.account_id, r.domain_id, r.resource_type): r.count for r in session.scalars(sa.select(ResourceCount))}

    with cloud.db.transaction() as session:
        before = snapshot(session)
    with cloud.db.transaction() as session:
        limits.recount(session, session.scalar(sa.select(Domain).where(Domain.path == "/")))
    with cloud.db.transaction() as session:
        after = snapshot(session)
    return {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}


def simulator_drift(cloud, sim) -> dict:
    """VMs the simulator has that the database has not placed there (or has removed), and
    DB VMs said Running that the simulator does not run; volumes files vs live volume rows;
    snapshot backups on stores vs live snapshot rows."""
    from core.model import Host, Snapshot, VirtualMachine, Volume

    with sim.state.cursor() as cur:
        sim_vms = {name: (host, power) for name, host, power in cur.execute("SELECT name, host_url, power FROM sim_vm")}
        sim_vols = {path for (path,) in cur.execute("SELECT path FROM sim_volume")}
        try:
            sim_files = {path for (path,) in cur.execute("SELECT path FROM sim_store_file")}
        except Exception:
            sim_files = set()
    out = {}
    with cloud.db.transaction() as session:
        keys = {h.id: h.details.get("sim_key") for h in session.scalars(sa.select(Host))}
        vms = {vm.instance_name: vm for vm in session.scalars(sa.select(VirtualMachine).where(
            VirtualMachine.removed.is_(None)))}
        unknown = sorted(n for n in sim_vms if n not in vms)
        if unknown:
            out["vms on the simulator the DB does not have"] = unknown
        wrong = sorted((n, vm.state, keys.get(vm.host_id), sim_vms.get(n)) for n, vm in vms.items()
                       if (vm.state == "Running") != (sim_vms.get(n, (None, "off"))[1].lower() == "on")
                       or (vm.state == "Running" and sim_vms[n][0] != keys.get(vm.host_id)))
        if wrong:
            out["vms whose DB state/host differs from the simulator"] = wrong
        vol_paths = {v.path for v in session.scalars(sa.select(Volume).where(
            Volume.removed.is_(None), Volume.path.is_not(None)))}
        if sim_vols - vol_paths:
            out["volume files no live volume has"] = sorted(sim_vols - vol_paths)
        if vol_paths - sim_vols:
            out["live volumes whose file is missing"] = sorted(vol_paths - sim_vols)
        backups = {s.backup_path for s in session.scalars(sa.select(Snapshot).where(
            Snapshot.removed.is_(None), Snapshot.backup_path.is_not(None)))}
        orphans = sorted(p for p in sim_files - backups if "snapshot" in p)
        if orphans:
            out["snapshot backups no live snapshot has"] = orphans
    return out


def audit(cloud, sim) -> dict:
    report = {"stuck": stuck_rows(cloud), "pending jobs": pending_jobs(cloud), "capacity": capacity_drift(cloud),
              "counts": count_drift(cloud), "simulator": simulator_drift(cloud, sim)}
    return {k: v for k, v in report.items() if v}
