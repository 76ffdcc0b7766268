"""Async jobs: the job table is the truth, dramatiq carries the work.

``JobQueue.submit`` adds the job row to the caller's transaction and queues the
job only after that transaction commits, so a queued job always has its row
and a rolled-back command queues nothing. A worker *claims* a job with a
conditional UPDATE before running it, so a job message delivered twice runs
once. While a job runs its worker refreshes the row's heartbeat; ``recover``
settles jobs whose worker is gone and re-queues jobs nobody claimed.

The embedded default runs dramatiq's StubBroker with worker threads in this
process. ``broker = "redis://..."`` sends jobs to Redis, where any number of
``strato worker`` processes take them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import traceback
import uuid as uuidlib
from typing import Any, Callable

import dramatiq
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .access import Caller
from .db import after_commit
from .errors import StratoError
from .model import AsyncJob, JobStatus, utcnow

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
#: a running job whose heartbeat is older than this has lost its worker
STALE_AFTER = dt.timedelta(seconds=6 * HEARTBEAT_SECONDS)

_handlers: dict[str, Callable[[JobContext], dict]] = {}


def job_handler(name: str):
    """Register the function that does the work of jobs with ``handler=name``.

    The function takes a ``JobContext`` and returns the job result (CloudStack's
    ``jobresult``: e.g. ``{"virtualmachine": {...}}``). Raising a ``StratoError``
    fails the job with that error's code; it must leave resources in a stable state.
    """

    def register(fn):
        if name in _handlers and _handlers[name] is not fn:
            raise ValueError(f"job handler {name!r} registered twice")
        _handlers[name] = fn
        return fn

    return register


@dataclasses.dataclass
class JobHandle:
    """What an async command answers: ``{"jobid": ..., "id": ...}``."""

    job_uuid: str
    instance_uuid: str | None = None


@dataclasses.dataclass
class JobContext:
    cloud: Any
    job_uuid: str
    command: str
    params: dict
    caller: Caller | None

    def transaction(self):
        return self.cloud.db.transaction()


class JobQueue:
    def __init__(self, cloud, broker_url: str = "embedded", worker_threads: int = 4, queue: str = "strato"):
        self.cloud = cloud
        self.broker_url = broker_url
        self.worker_threads = worker_threads
        #: identifies this process in ``queued_by`` / ``executor``
        self.process_id = f"{uuidlib.uuid4().hex[:12]}"
        self.broker = _make_broker(broker_url, queue)
        self.actor = dramatiq.actor(self.run, broker=self.broker, actor_name="strato_run_job",
                                    queue_name=queue, max_retries=0, time_limit=24 * 3600 * 1000)
        self._worker: dramatiq.Worker | None = None
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def embedded(self) -> bool:
        return self.broker_url == "embedded"

    # -- submitting ----------------------------------------------------------

    def submit(self, session: Session, *, command: str, handler: str, params: dict[str, Any],
               caller: Caller | None, instance_type: str | None = None,
               instance_uuid: str | None = None) -> JobHandle:
        if handler not in _handlers:
            raise KeyError(f"no job handler {handler!r}")
        job = AsyncJob(command=command, handler=handler, params=params,
                       account_id=caller.account_id if caller else None,
                       user_id=caller.user_id if caller else None, instance_type=instance_type,
                       instance_uuid=instance_uuid, queued_by=self.process_id)
        session.add(job)
        session.flush()
        job_uuid = job.uuid
        after_commit(session, lambda: self.enqueue(job_uuid))
        return JobHandle(job_uuid, instance_uuid)

    def enqueue(self, job_uuid: str) -> None:
        self.actor.send(job_uuid)

    # -- running -------------------------------------------------------------

    def run(self, job_uuid: str) -> None:
        """Claim and run one job. A job already claimed or finished is left alone."""
        now = utcnow()
        with self.cloud.db.transaction() as session:
            claimed = session.execute(
                update(AsyncJob).where(AsyncJob.uuid == job_uuid, AsyncJob.status == JobStatus.PENDING,
                                       AsyncJob.executor.is_(None))
                .values(executor=self.process_id, heartbeat=now)).rowcount
            job = session.scalar(select(AsyncJob).where(AsyncJob.uuid == job_uuid)) if claimed else None
            if job is None:
                return
            caller = Caller.load(session, job.user_id) if job.user_id else None
            ctx = JobContext(self.cloud, job.uuid, job.command, dict(job.params), caller)
            handler = _handlers.get(job.handler)
        with self._lock:
            self._running.add(job_uuid)
        try:
            if handler is None:
                raise StratoError(f"this worker has no handler {job.handler!r} for the job")
            result, status, code = handler(ctx) or {}, JobStatus.SUCCEEDED, 0
        except StratoError as exc:
            result, status, code = {"errorcode": exc.errorcode, "errortext": exc.message}, JobStatus.FAILED, \
                exc.errorcode
        except Exception as exc:  # a bug: report 530 without the stack trace, keep it in the log
            log.error("job %s (%s) failed:\n%s", job_uuid, ctx.command, traceback.format_exc())
            result, status, code = {"errorcode": 530, "errortext": f"Internal error running {ctx.command}: "
                                    f"{type(exc).__name__}: {exc}"}, JobStatus.FAILED, 530
        finally:
            with self._lock:
                self._running.discard(job_uuid)
        self._finish(job_uuid, status, code, result)
        self.cloud.plugins.job_completed(job_uuid, ctx.command, status, result)

    def _finish(self, job_uuid: str, status: int, code: int, result: dict) -> None:
        with self.cloud.db.transaction() as session:
            session.execute(update(AsyncJob).where(AsyncJob.uuid == job_uuid).values(
                status=status, result_code=code, result=result, completed=utcnow()))

    # -- workers -------------------------------------------------------------

    def start_worker(self, threads: int | None = None) -> None:
        """Run jobs in this process (the embedded default, and ``strato worker``)."""
        if self._worker is None:
            self._worker = dramatiq.Worker(self.broker, worker_threads=threads or self.worker_threads,
                                           worker_timeout=100)
            self._worker.start()
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._beat, name="strato-job-heartbeat", daemon=True)
            self._heartbeat.start()

    def stop_worker(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.stop(timeout=10_000)
            self._worker = None

    def join(self, timeout: float = 30.0) -> None:
        """Wait until the embedded queue is empty and no job runs (tests, the demo)."""
        if self.embedded:
            self.broker.join(self.actor.queue_name, timeout=int(timeout * 1000))
            if self._worker is not None:
                self._worker.join()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._lock:
                running = list(self._running)
            if not running:
                continue
            try:
                with self.cloud.db.transaction() as session:
                    session.execute(update(AsyncJob).where(AsyncJob.uuid.in_(running)).values(heartbeat=utcnow()))
            except Exception:  # a missed beat is retried on the next tick; the job itself goes on
                log.exception("job heartbeat failed")

    # -- recovery ------------------------------------------------------------

    def recover(self, *, startup: bool = True) -> list[str]:
        """Settle jobs whose worker is gone; re-queue jobs nobody has claimed.

        Returns the uuids of the jobs failed. A job is dead when its worker's heartbeat
        is older than ``STALE_AFTER`` - or, at the start-up of a process with the embedded
        broker (the only worker), as soon as another process claimed it. A job unclaimed
        for ``STALE_AFTER`` is queued again (its message may have been lost with the
        process that sent it; a job runs once however often it is queued). The periodic
        pass calls this with ``startup=False``, so a worker that dies while the management
        server runs on has its jobs settled too.
        """
        stale = utcnow() - STALE_AFTER
        with self._lock:
            running_here = set(self._running)

        def is_dead(job) -> bool:
            if job.executor is None or job.uuid in running_here:
                return False
            if startup and self.embedded and job.executor != self.process_id:
                return True
            return (job.heartbeat or job.created) < stale  # no beat: its worker is gone, whichever it was

        def is_lost(job) -> bool:
            if job.executor is not None:
                return False
            if startup and self.embedded and job.queued_by != self.process_id:
                return True
            # this process's own embedded queue loses nothing: only a message from elsewhere may be lost
            return job.created < stale and not (self.embedded and job.queued_by == self.process_id)

        with self.cloud.db.transaction() as session:
            pending = session.scalars(select(AsyncJob).where(AsyncJob.status == JobStatus.PENDING)).all()
            dead = [job for job in pending if is_dead(job)]
            unclaimed = [job.uuid for job in pending if is_lost(job)]
            for job in dead:
                job.status, job.result_code, job.completed = JobStatus.FAILED, 530, utcnow()
                job.result = {"errorcode": 530, "errortext": "The job was interrupted: the management server or "
                              "worker running it stopped. The resource was returned to a stable state."}
            failed = [job.uuid for job in dead]
        for job_uuid in unclaimed:
            self.enqueue(job_uuid)
        return failed


def _make_broker(url: str, queue: str):
    if url == "embedded":
        from dramatiq.brokers.stub import StubBroker

        return StubBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, namespace=f"{queue}-dramatiq")
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    from .errors import ConfigurationError

    raise ConfigurationError(f"broker {url!r}: use 'embedded', a redis:// URL or an amqp:// URL")
