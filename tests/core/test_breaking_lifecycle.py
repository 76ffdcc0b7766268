"""Operations racing on one VM, removals racing deploys, and work a dead process left:
found by trying to break the orchestration. Whatever the interleaving, every VM ends in
a stable state that its host agrees with, and capacity is neither leaked nor counted twice.

The removal and expunge races only interleave on PostgreSQL and MariaDB (SQLite
serialises every write transaction); run them with STRATO_TEST_DB=postgresql.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from core.drivers import PowerState
from core.errors import InvalidParameterError
from core.model import (
    AsyncJob,
    CapacityType,
    DownloadState,
    Host,
    ImageStore,
    JobStatus,
    StoragePool,
    Template,
    TemplateStoreRef,
    VirtualMachine,
)
from core.orchestration import capacity, planner, recovery
from core.orchestration import vm as vm_ops
from core.orchestration.refs import host_ref
from tests.core.factories import add_template, simulated_zone
from tests.helpers import ApiClient, ApiError, capacity_used, offering_id

GiB = 1024**3


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud, hosts=1)


@pytest.fixture
def sim(cloud):
    return cloud.plugins.hypervisors["simulator"]


def vm_row(cloud, vm_uuid):
    with cloud.db.transaction() as session:
        return session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))


def wait_for_state(cloud, vm_uuid, state, timeout=10.0):
    deadline = time.monotonic() + timeout
    while vm_row(cloud, vm_uuid).state != state:
        assert time.monotonic() < deadline, f"VM never became {state}"
        time.sleep(0.01)


def powered_on(cloud, sim) -> set[str]:
    with cloud.db.transaction() as session:
        refs = [host_ref(h) for h in session.scalars(select(Host).where(Host.removed.is_(None)))]
    return {name for ref in refs for name, power in sim.power_states(ref).items() if power == PowerState.ON}


def host_capacity_used(cloud) -> int:
    return sum(v for (kind, _), v in capacity_used(cloud).items() if kind in (CapacityType.CPU, CapacityType.MEMORY))


def deploy(admin, cloud, zone, **kw):
    return admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                 templateid=zone["template"], **kw)


# -- two operations on one VM ------------------------------------------------------


def test_destroying_a_starting_vm_waits_for_the_start_and_leaves_nothing_running(cloud, admin, zone, sim):
    # The destroy used to stop the VM from under its start: the start then powered it on
    # anyway, and a Destroyed VM ran on its host with no capacity counted for it.
    sim.inject(zone["host_keys"][0], "start", delay=1.0, fail=False)
    job = deploy(admin, cloud, zone)
    wait_for_state(cloud, job["id"], "Starting")
    destroy = admin("destroyVirtualMachine", id=job["id"])
    admin.wait(job)  # the deploy succeeded (ApiError otherwise): nothing took the VM from under it
    assert admin.wait(destroy)["virtualmachine"]["state"] == "Destroyed"
    assert powered_on(cloud, sim) == set()
    assert host_capacity_used(cloud) == 0


def test_a_stop_that_meets_a_start_waits_for_it(cloud, admin, zone, sim):
    # A stop accepted while the VM was Stopped runs once a start has it Starting (two jobs
    # queued back to back). It used to take the VM over: the VM ended Stopped in the
    # database and powered on at its host.
    vm = admin.wait(deploy(admin, cloud, zone, startvm=False))["virtualmachine"]
    sim.inject(zone["host_keys"][0], "start", delay=1.0, fail=False)
    start = admin("startVirtualMachine", id=vm["id"])
    wait_for_state(cloud, vm["id"], "Starting")
    vm_ops.stop(cloud, vm["id"], forced=True)  # what that stop job does
    admin.wait(start)  # the start succeeded (ApiError otherwise)
    assert vm_row(cloud, vm["id"]).state == "Stopped"
    assert powered_on(cloud, sim) == set()
    assert host_capacity_used(cloud) == 0


def test_an_operation_that_comes_after_the_expunge_is_refused_at_once(cloud, admin, zone):
    # e.g. a deploy job that runs after the VM was destroyed with expunge=true: an expunged
    # VM stays Expunging, which must not read as "another operation is moving it"
    vm = admin.wait(deploy(admin, cloud, zone, startvm=False))["virtualmachine"]
    admin.wait(admin("destroyVirtualMachine", id=vm["id"], expunge=True))
    started = time.monotonic()
    for operation in (vm_ops.start, vm_ops.stop, vm_ops.destroy):
        with pytest.raises(InvalidParameterError, match="has been expunged"):
            operation(cloud, vm["id"])
    assert time.monotonic() - started < 2


def test_two_expunges_of_one_vm_give_its_storage_back_once(cloud, admin, zone, sim, monkeypatch):
    keep = admin.wait(deploy(admin, cloud, zone))["virtualmachine"]
    gone = admin.wait(deploy(admin, cloud, zone))["virtualmachine"]
    admin.wait(admin("destroyVirtualMachine", id=gone["id"]))
    pool_used = lambda: capacity_used(cloud)[(CapacityType.STORAGE_ALLOCATED, zone["pool"])]  # noqa: E731
    assert pool_used() == 4 * GiB
    # Both expunges reach their last transaction together: each read the root volume as
    # not yet expunged before the other committed (the rendezvous makes sure of it where
    # the database lets two writers overlap).
    meet = threading.Barrier(2, timeout=2)
    real_release = capacity.release

    def release(session, kind, amount, **owner):
        if kind == CapacityType.STORAGE_ALLOCATED:
            try:
                meet.wait()
            except threading.BrokenBarrierError:
                pass  # the other one never got this far: nothing to overlap with
        real_release(session, kind, amount, **owner)

    monkeypatch.setattr(capacity, "release", release)
    sim.inject(zone["host_keys"][0], "destroy", count=2, delay=0.5, fail=False)
    errors = []

    def expunge():
        try:
            vm_ops.expunge_vm(cloud, gone["id"])
        except Exception as exc:  # reported below: an expunge must not fail for being second
            errors.append(exc)

    first = threading.Thread(target=expunge)
    first.start()
    wait_for_state(cloud, gone["id"], "Expunging")
    second = threading.Thread(target=expunge)
    second.start()
    first.join(20)
    second.join(20)
    assert errors == []
    assert vm_row(cloud, gone["id"]).removed is not None
    assert pool_used() == 2 * GiB, "the expunged VM's root volume was given back twice"
    assert vm_row(cloud, keep["id"]).state == "Running"


# -- removals racing a deploy --------------------------------------------------------


def _hold_the_reservation(monkeypatch):
    """Make ``planner.plan`` stop, with its reservation made and uncommitted, until released."""
    reserved, go = threading.Event(), threading.Event()
    real_plan = planner.plan

    def plan(*args, **kw):
        deployment = real_plan(*args, **kw)
        reserved.set()
        go.wait(10)
        return deployment

    monkeypatch.setattr(planner, "plan", plan)
    return reserved, go


@pytest.mark.parametrize("command, what", [("deleteHost", "hosts"), ("deleteStoragePool", "pool")])
def test_a_removal_sees_a_deploy_that_is_reserving_on_it(app, cloud, admin, zone, monkeypatch, command, what):
    vm = admin.wait(deploy(admin, cloud, zone, startvm=False))["virtualmachine"]
    reserved, go = _hold_the_reservation(monkeypatch)
    starter = threading.Thread(target=vm_ops.start, args=(cloud, vm["id"]))
    starter.start()
    assert reserved.wait(10)
    outcome = {}

    def remove():  # its own client: this one blocks until the reservation commits
        client = ApiClient(app, admin.api_key, admin.secret_key)
        target = zone["hosts"][0] if what == "hosts" else zone["pool"]
        try:
            outcome["answer"] = client(command, id=target)
        except ApiError as exc:
            outcome["answer"] = exc.status

    remover = threading.Thread(target=remove)
    remover.start()
    time.sleep(0.5)  # the removal now waits on the reservation (PostgreSQL) or on the write lock (SQLite)
    go.set()
    starter.join(20)
    remover.join(20)
    assert outcome["answer"] == 536, "the host or pool was removed under a VM deploying onto it"
    with cloud.db.transaction() as session:
        assert session.scalar(select(Host.removed).where(Host.uuid == zone["hosts"][0])) is None
        assert session.scalar(select(StoragePool.removed).where(StoragePool.uuid == zone["pool"])) is None
    assert vm_row(cloud, vm["id"]).state == "Running"


# -- what a dead process left ----------------------------------------------------------


def test_a_template_download_whose_job_died_ends_in_an_error(cloud, zone):
    with cloud.db.transaction() as session:
        store = session.scalars(select(ImageStore)).one()
        interrupted, running = [add_template(session, store, name) for name in ("interrupted", "running")]
        # a download at 40% when its process died, and one this process is still doing
        for template, executor in ((interrupted, "dead-process"), (running, cloud.jobs.process_id)):
            ref = session.scalar(select(TemplateStoreRef).where(TemplateStoreRef.template_id == template.id))
            ref.download_state, ref.download_percent = DownloadState.DOWNLOAD_IN_PROGRESS, 40
            session.add(AsyncJob(command="registerTemplate", handler="template.download",
                                 params={"template": template.uuid}, instance_type="Template",
                                 instance_uuid=template.uuid, executor=executor, queued_by=executor))
        uuids = interrupted.uuid, running.uuid
    settled = recovery.recover(cloud)
    assert settled["templates"] == [uuids[0]]
    with cloud.db.transaction() as session:
        states = dict(session.execute(select(Template.uuid, TemplateStoreRef.download_state).join(
            TemplateStoreRef, TemplateStoreRef.template_id == Template.id).where(Template.uuid.in_(uuids))).all())
        jobs = dict(session.execute(select(AsyncJob.instance_uuid, AsyncJob.status)).all())
    assert states == {uuids[0]: DownloadState.DOWNLOAD_ERROR, uuids[1]: DownloadState.DOWNLOAD_IN_PROGRESS}
    assert jobs == {uuids[0]: JobStatus.FAILED, uuids[1]: JobStatus.PENDING}
