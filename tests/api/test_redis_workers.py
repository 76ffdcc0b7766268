"""Jobs over the real Redis, run by separate ``strato worker`` processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from api.app import create_app
from core.cloud import Cloud
from core.model import AsyncJob
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, offering_id

REDIS_URL = os.environ.get("STRATO_TEST_REDIS", "redis://127.0.0.1:6379/0")
STRATO = str(Path(sys.executable).with_name("strato"))

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_settings(settings):
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.skip(f"REDIS NOT REACHABLE at {REDIS_URL} ({exc}): start it with scripts/services/databases.sh")
    settings.broker = REDIS_URL
    settings.queue = f"strato-test-{uuid.uuid4().hex[:8]}"
    return settings


def start_worker(settings, threads=2):
    env = {**os.environ, "STRATO_DATABASE_URL": settings.database_url, "STRATO_BROKER": settings.broker,
           "STRATO_QUEUE": settings.queue, "STRATO_DATA_DIR": str(settings.data_dir)}
    return subprocess.Popen([STRATO, "worker", "--threads", str(threads)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(process):
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def test_jobs_run_in_separate_worker_processes(redis_settings):
    cloud = Cloud(redis_settings, migrate=False)
    cloud.start()  # no in-process worker with a real broker
    workers = [start_worker(redis_settings), start_worker(redis_settings)]
    try:
        app = create_app(cloud)
        admin = ApiClient.for_user(app, cloud, "admin")
        zone = simulated_zone(cloud)
        jobs = [admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                      templateid=zone["template"]) for _ in range(6)]
        states = [admin.wait(job, timeout=180)["virtualmachine"]["state"] for job in jobs]
        assert states == ["Running"] * 6
        with cloud.db.transaction() as session:
            executors = set(session.scalars(select(AsyncJob.executor).where(
                AsyncJob.uuid.in_([j["jobid"] for j in jobs]))))
        assert cloud.jobs.process_id not in executors, "the API process ran none of the jobs"
        assert len(executors) >= 1 and None not in executors
    finally:
        for worker in workers:
            stop(worker)
        cloud.close()


def test_a_job_queued_while_no_worker_runs_waits_for_one(redis_settings):
    cloud = Cloud(redis_settings, migrate=False)
    cloud.start()
    try:
        app = create_app(cloud)
        admin = ApiClient.for_user(app, cloud, "admin")
        zone = simulated_zone(cloud)
        job = admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                    templateid=zone["template"])
        time.sleep(0.5)
        assert admin("queryAsyncJobResult", jobid=job["jobid"])["jobstatus"] == 0
        worker = start_worker(redis_settings)
        try:
            assert admin.wait(job, timeout=180)["virtualmachine"]["state"] == "Running"
        finally:
            stop(worker)
    finally:
        cloud.close()
