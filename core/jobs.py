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

A job that fails records an ERROR event of its command's event type (``FAILURE_EVENTS``),
owned by the owner of the resource it worked on (else by the job's account), in the
transaction that settles the job - as CloudStack's ActionEventInterceptor records
"Error while ..." for a failed action - unless the work recorded its own ERROR event.
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
from .model import AsyncJob, Event, JobStatus, utcnow

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
            if status == JobStatus.FAILED:
                record_failure(session, session.scalar(select(AsyncJob).where(AsyncJob.uuid == job_uuid)),
                               self.cloud.plugins)

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
                record_failure(session, job, self.cloud.plugins)
            failed = [job.uuid for job in dead]
        for job_uuid in unclaimed:
            self.enqueue(job_uuid)
        return failed


# -- failure events ------------------------------------------------------------

#: command -> (CloudStack's event type, what it was doing: "Error while <doing>"), as the
#: commands' @ActionEvent(eventType, eventDescription) in CloudStack
FAILURE_EVENTS: dict[str, tuple[str, str]] = {
    "deployVirtualMachine": ("VM.CREATE", "deploying Vm"), "startVirtualMachine": ("VM.START", "starting Vm"),
    "stopVirtualMachine": ("VM.STOP", "stopping Vm"), "rebootVirtualMachine": ("VM.REBOOT", "rebooting Vm"),
    "destroyVirtualMachine": ("VM.DESTROY", "destroying Vm"),
    "expungeVirtualMachine": ("VM.EXPUNGE", "expunging Vm"), "migrateVirtualMachine": ("VM.MIGRATE", "migrating Vm"),
    "createVMSnapshot": ("VMSNAPSHOT.CREATE", "creating VM snapshot"),
    "deleteVMSnapshot": ("VMSNAPSHOT.DELETE", "deleting VM snapshot"),
    "revertToVMSnapshot": ("VMSNAPSHOT.REVERTTO", "reverting to VM snapshot"),
    "createVolume": ("VOLUME.CREATE", "creating volume"), "attachVolume": ("VOLUME.ATTACH", "attaching volume"),
    "detachVolume": ("VOLUME.DETACH", "detaching volume"), "resizeVolume": ("VOLUME.RESIZE", "resizing volume"),
    "migrateVolume": ("VOLUME.MIGRATE", "migrating volume"),
    "createSnapshot": ("SNAPSHOT.CREATE", "creating snapshot"), "deleteSnapshot": ("SNAPSHOT.DELETE", "deleting snapshot"),
    "revertSnapshot": ("SNAPSHOT.REVERT", "reverting snapshot"),
    "createTemplate": ("TEMPLATE.CREATE", "creating template"), "copyTemplate": ("TEMPLATE.COPY", "copying template"),
    "extractTemplate": ("TEMPLATE.EXTRACT", "extracting template"),
    "deleteTemplate": ("TEMPLATE.DELETE", "deleting template"), "deleteIso": ("ISO.DELETE", "deleting iso"),
    "createTags": ("CREATE_TAGS", "creating tags"), "deleteTags": ("DELETE_TAGS", "deleting tags"),
    "associateIpAddress": ("NET.IPASSIGN", "associating ip to network"),
    "disassociateIpAddress": ("NET.IPRELEASE", "disassociating ip address"),
    "disableStaticNat": ("STATICNAT.DISABLE", "disabling static nat"),
    "createFirewallRule": ("FIREWALL.OPEN", "creating firewall rule"),
    "deleteFirewallRule": ("FIREWALL.CLOSE", "deleting firewall rule"),
    "createEgressFirewallRule": ("FIREWALL.EGRESS.OPEN", "creating egress firewall rule"),
    "deleteEgressFirewallRule": ("FIREWALL.EGRESS.CLOSE", "deleting egress firewall rule"),
    "createPortForwardingRule": ("NET.RULEADD", "creating forwarding rule"),
    "updatePortForwardingRule": ("NET.RULEMODIFY", "updating forwarding rule"),
    "deletePortForwardingRule": ("NET.RULEDELETE", "deleting forwarding rule"),
    "createIpForwardingRule": ("NET.RULEADD", "creating ip forwarding rule"),
    "deleteIpForwardingRule": ("NET.RULEDELETE", "deleting ip forwarding rule"),
    "createLoadBalancerRule": ("LB.CREATE", "creating load balancer"),
    "updateLoadBalancerRule": ("LB.UPDATE", "updating load balancer rule"),
    "deleteLoadBalancerRule": ("LB.DELETE", "deleting load balancer"),
    "assignToLoadBalancerRule": ("LB.ASSIGN.TO.RULE", "assigning to load balancer"),
    "removeFromLoadBalancerRule": ("LB.REMOVE.FROM.RULE", "removing from load balancer"),
    "createLBStickinessPolicy": ("LB.STICKINESSPOLICY.CREATE", "creating load balancer stickiness policy"),
    "deleteLBStickinessPolicy": ("LB.STICKINESSPOLICY.DELETE", "deleting load balancer stickiness policy"),
    "createRemoteAccessVpn": ("VPN.REMOTE.ACCESS.CREATE", "creating remote access vpn"),
    "deleteRemoteAccessVpn": ("VPN.REMOTE.ACCESS.DESTROY", "destroying remote access vpn"),
    "addVpnUser": ("VPN.USER.ADD", "adding remote access vpn user"),
    "removeVpnUser": ("VPN.USER.REMOVE", "removing remote access vpn user"),
    "updateNetwork": ("NETWORK.UPDATE", "updating network"), "deleteNetwork": ("NETWORK.DELETE", "deleting network"),
    "restartNetwork": ("NETWORK.RESTART", "restarting network"),
    "startRouter": ("ROUTER.START", "starting router"), "stopRouter": ("ROUTER.STOP", "stopping router"),
    "rebootRouter": ("ROUTER.REBOOT", "rebooting router"),
    "createPhysicalNetwork": ("PHYSICAL.NETWORK.CREATE", "creating physical network"),
    "updatePhysicalNetwork": ("PHYSICAL.NETWORK.UPDATE", "updating physical network"),
    "deletePhysicalNetwork": ("PHYSICAL.NETWORK.DELETE", "deleting physical network"),
    "addTrafficType": ("TRAFFIC.TYPE.CREATE", "creating physical network traffic type"),
    "updateTrafficType": ("TRAFFIC.TYPE.UPDATE", "updating physical network traffic type"),
    "deleteTrafficType": ("TRAFFIC.TYPE.DELETE", "deleting physical network traffic type"),
    "updateNetworkServiceProvider": ("NETWORK.SERVICE.PROVIDER.UPDATE", "updating physical network provider"),
    "configureVirtualRouterElement": ("NETWORK.ELEMENT.CONFIGURE", "configuring virtual router provider"),
    "prepareHostForMaintenance": ("MAINT.PREPARE", "preparing host for maintenance"),
    "cancelHostMaintenance": ("MAINT.CANCEL", "canceling maintenance for host"),
    "enableStorageMaintenance": ("MAINT.PREPARE.PS", "preparing storage pool for maintenance"),
    "cancelStorageMaintenance": ("MAINT.CANCEL.PS", "canceling maintenance for primary storage pool"),
    "disableAccount": ("ACCOUNT.DISABLE", "disabling account"), "deleteAccount": ("ACCOUNT.DELETE", "deleting account"),
    "disableUser": ("USER.DISABLE", "disabling user"), "deleteDomain": ("DOMAIN.DELETE", "deleting domain"),
    "createProject": ("PROJECT.CREATE", "creating project"), "updateProject": ("PROJECT.UPDATE", "updating project"),
    "deleteProject": ("PROJECT.DELETE", "deleting project"),
    "addAccountToProject": ("PROJECT.ACCOUNT.ADD", "adding account to project"),
    "deleteAccountFromProject": ("PROJECT.ACCOUNT.REMOVE", "removing account from project"),
    "addUserToProject": ("PROJECT.USER.ADD", "adding user to project"),
    "deleteUserFromProject": ("PROJECT.USER.REMOVE", "removing user from project"),
    "updateProjectInvitation": ("PROJECT.INVITATION.UPDATE", "updating project invitation"),
    "deleteProjectInvitation": ("PROJECT.INVITATION.REMOVE", "removing project invitation"),
}


def record_failure(session: Session, job: AsyncJob, plugins=None) -> Event | None:
    """The ERROR event of a failed job, in ``session``'s transaction: "Error while starting Vm.
    VirtualMachine Id: <uuid>. <errortext>" (the errortext when the owner called). None when the command has no event type or the
    work already recorded an ERROR event of that type since the job was queued."""
    from . import model
    from .events import record

    event_type, doing = FAILURE_EVENTS.get(job.command, (None, None))
    if event_type is None:
        return None
    if session.scalar(select(Event.id).where(
            Event.event_type == event_type, Event.level == "ERROR", Event.created >= job.created,
            Event.resource_uuid == job.instance_uuid if job.instance_uuid else Event.resource_uuid.is_(None))
            .limit(1)) is not None:
        return None
    resource_model = getattr(model, job.instance_type, None) if job.instance_type else None
    resource = session.scalar(select(resource_model).where(resource_model.uuid == job.instance_uuid)) \
        if resource_model is not None and job.instance_uuid else None
    owner, owner_id = {}, getattr(resource, "account_id", None)
    if owner_id is None and job.account_id is not None:  # a host, a zone, ...: the caller's
        account = session.get(model.Account, job.account_id)
        owner, owner_id = {"account_id": account.id, "domain_id": account.domain_id}, account.id
    subject = f". {job.instance_type} Id: {job.instance_uuid}" if job.instance_uuid else ""
    # The reason only for the account that called (its job result says it anyway): an admin's
    # failure on a tenant's resource may name hosts, which CloudStack never shows users.
    reason = (job.result or {}).get("errortext") if owner_id == job.account_id else None
    event = record(session, event_type, f"Error while {doing}{subject}" + (f". {reason}" if reason else ""),
                   level="ERROR", resource=resource, plugins=plugins, **owner)
    event.user_id = job.user_id
    return event


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
