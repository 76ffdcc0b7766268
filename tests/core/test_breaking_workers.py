"""A ``strato worker`` killed in the middle of a job while the management server runs on:
the periodic pass settles the job and its VM. (Recovery used to run only when a process
started, and a worker that started again at once found the dead job's heartbeat still
fresh: the job stayed pending and its VM Starting for ever.)"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import pytest
from sqlalchemy import select

import core.jobs
from api.app import create_app
from core.cloud import Cloud
from core.model import AsyncJob, JobStatus, VirtualMachine
from core.orchestration import background
from tests.api.test_redis_workers import redis_settings, start_worker, stop  # noqa: F401 (fixture)
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, capacity_used, offering_id

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _state(cloud, job):
    with cloud.db.transaction() as session:
        vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == job["id"]))
        status = session.scalar(select(AsyncJob.status).where(AsyncJob.uuid == job["jobid"]))
        return vm.state, status


def test_a_job_whose_worker_was_killed_is_settled_by_the_periodic_pass(redis_settings, monkeypatch):  # noqa: F811
    cloud = Cloud(redis_settings, migrate=False)
    cloud.start()
    worker = start_worker(redis_settings)
    replacement = None
    try:
        admin = ApiClient.for_user(create_app(cloud), cloud, "admin")
        zone = simulated_zone(cloud, hosts=1)
        cloud.plugins.hypervisors["simulator"].inject(zone["host_keys"][0], "start", delay=60, fail=False)
        job = admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                    templateid=zone["template"])
        deadline = time.monotonic() + 30
        while _state(cloud, job)[0] != "Starting":
            assert time.monotonic() < deadline, "the worker never took the job"
            time.sleep(0.05)
        background.one_pass(cloud)
        assert _state(cloud, job) == ("Starting", JobStatus.PENDING), "a live worker's job was settled"

        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        replacement = start_worker(redis_settings)  # a new worker does not revive the dead one's job
        # its heartbeat stops; the job counts as dead once the beat is older than STALE_AFTER
        # (shortened here from a minute; times are kept to the second)
        monkeypatch.setattr(core.jobs, "STALE_AFTER", dt.timedelta(seconds=1))
        time.sleep(2.1)
        background.one_pass(cloud)
        assert _state(cloud, job) == ("Stopped", JobStatus.FAILED)
        result = admin("queryAsyncJobResult", jobid=job["jobid"])["jobresult"]
        assert "interrupted" in result["errortext"]
        assert all(used == 0 for (kind, _), used in capacity_used(cloud).items() if kind in (0, 1))
    finally:
        for process in (worker, replacement):
            if process is not None:
                stop(process)
        cloud.close()
