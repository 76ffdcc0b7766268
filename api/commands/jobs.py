"""``queryAsyncJobResult`` and ``listAsyncJobs``: how clients follow async commands.

A job belongs to the account that started it. A user reaches its own account's
jobs, a domain admin those of accounts in its domain and below, a root admin all
(jobs started by no one, such as recovery work, only root admins see). The job
table has no domain column, so the domain is the owning account's.
"""

from __future__ import annotations

import datetime as dt
import types

from sqlalchemy import select

from core.access import can_reach
from core.commands import ALL_ROLES, P, api_command
from core.errors import InvalidParameterError, PermissionDenied
from core.model import Account, AsyncJob, Domain, JobStatus, User

from api.native.envelope import UNWRAPPED

JOB_FIELDS = {
    "accountid": "the account id that executed the async command",
    "account": "the account that executed the async command",
    "domainid": "the domain id that executed the async command",
    "userid": "the user that executed the async command",
    "cmd": "the async command executed",
    "jobstatus": "the current job status-should be 0 for PENDING",
    "jobprocstatus": "the progress information of the PENDING job",
    "jobresultcode": "the result code for the job",
    "jobresulttype": "the result type",
    "jobresult": "the result reason",
    "jobinstancetype": "the instance/entity object related to the job",
    "jobinstanceid": "the unique ID of the instance/entity object related to the job",
    "created": "the created date of the job",
    "completed": "the completed date of the job",
    "jobid": "the ID of the async job",
}


@api_command("queryAsyncJobResult", response=UNWRAPPED, roles=ALL_ROLES, response_fields=JOB_FIELDS,
             description="Retrieves the current status of asynchronous job.",
             params={"jobid": P.uuid("the ID of the asynchronous job", required=True)})
def query_async_job_result(ctx, p):
    """The job's status and, once it has ended, its result; 431 for no such job, 531 for another's."""
    job = ctx.session.scalar(select(AsyncJob).where(AsyncJob.uuid == p["jobid"]))
    if job is None:
        raise InvalidParameterError(f"Unable to find a job by id {p['jobid']}")
    account = ctx.session.get(Account, job.account_id) if job.account_id is not None else None
    if not _may_see(ctx, job, account):
        raise PermissionDenied(f"Account {ctx.caller.account_name} is not authorized to query job id:{job.uuid}")
    user = ctx.session.get(User, job.user_id) if job.user_id is not None else None
    domain = ctx.session.get(Domain, account.domain_id) if account is not None else None
    return job_view(job, account, user, domain)


@api_command("listAsyncJobs", response="asyncjobs", is_list=True, roles=ALL_ROLES, response_fields=JOB_FIELDS,
             description="Lists all pending asynchronous jobs for the account.",
             params={"startdate": P.date("the start date of the async job (yyyy-MM-dd'T'HH:mm:ssZ)")})
def list_async_jobs(ctx, p):
    """Jobs of the accounts the caller may list (``listall``/``account``/``domainid`` as every list),
    newest first; ``startdate`` keeps those created at or after it."""
    # owner_filter reads model.account_id and model.domain_id; a job's domain is its account's.
    owner = types.SimpleNamespace(account_id=AsyncJob.account_id, domain_id=Account.domain_id)
    query = (select(AsyncJob).outerjoin(Account, Account.id == AsyncJob.account_id)
             .where(ctx.owner_filter(owner)))
    if p.get("startdate") is not None:
        query = query.where(AsyncJob.created >= _naive_utc(p["startdate"]))
    total, jobs = ctx.page(query, name_column=AsyncJob.command, order_by=(AsyncJob.created.desc(), AsyncJob.id.desc()))
    accounts = _by_id(ctx.session, Account, {job.account_id for job in jobs})
    users = _by_id(ctx.session, User, {job.user_id for job in jobs})
    domains = _by_id(ctx.session, Domain, {account.domain_id for account in accounts.values()})
    views = []
    for job in jobs:
        account = accounts.get(job.account_id)
        views.append(job_view(job, account, users.get(job.user_id),
                              domains.get(account.domain_id) if account is not None else None))
    return total, views


def job_view(job: AsyncJob, account: Account | None, user: User | None, domain: Domain | None) -> dict:
    """CloudStack's AsyncJobResponse. ``jobresult`` is there once the job has ended."""
    ended = job.status != JobStatus.PENDING
    return {
        "accountid": account.uuid if account else None, "account": account.name if account else None,
        "domainid": domain.uuid if domain else None, "userid": user.uuid if user else None,
        "cmd": job.command, "jobstatus": job.status, "jobprocstatus": 0, "jobresultcode": job.result_code,
        "jobresulttype": "object" if ended else None, "jobresult": (job.result or {}) if ended else None,
        "jobinstancetype": job.instance_type, "jobinstanceid": job.instance_uuid,
        "created": job.created, "completed": job.completed, "jobid": job.uuid,
    }


def _may_see(ctx, job: AsyncJob, account: Account | None) -> bool:
    verdict = ctx.cloud.plugins.check_access(ctx.caller, ctx.command.name, job)
    if verdict is not None:
        return bool(verdict)
    if account is None:
        return ctx.caller.is_root_admin
    return can_reach(ctx.session, ctx.caller, account.id, account.domain_id)


def _by_id(session, model, ids: set) -> dict:
    ids.discard(None)
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(model).where(model.id.in_(ids)))}


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    """The database keeps naive UTC; a date given with a zone is converted, one without is taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment
