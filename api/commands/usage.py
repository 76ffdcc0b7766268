"""Usage: listUsageRecords, generateUsageRecords, listUsageTypes (CloudStack's usage API).

Records are made by the usage job (``core.orchestration.usage``): the periodic pass makes
those of each period as it ends; ``generateUsageRecords`` (re)makes those of the whole
periods in a range at once. Root admins see every account's records, domain admins those
of the accounts in their domain and below.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from api.views.identity import USAGE_RECORD_FIELDS, USAGE_TYPE_FIELDS, usage_record_view
from core.access import domain_ids_under, find_project
from core.commands import ADMINS, PAGING_PARAMS, ROOT_ONLY, SUCCESS, P, api_command
from core.model import Account, AccountType, Domain, UsageRecord
from core.orchestration import usage

from .accounts import check_account, check_domain
from .zones import invalid


def _end_of(value: dt.datetime) -> dt.datetime:
    """A bare date as an end date means the whole day, as CloudStack's usage API reads it."""
    return value.replace(hour=23, minute=59, second=59) if (value.hour, value.minute, value.second) == (0, 0, 0) \
        else value


def _naive(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


@api_command("listUsageRecords", response="usagerecord", is_list=True, list_params=False, roles=ADMINS,
             response_fields=USAGE_RECORD_FIELDS, params={
                 "startdate": P.date("start of the range (yyyy-MM-dd or yyyy-MM-dd HH:mm:ss, UTC)", required=True),
                 "enddate": P.date("end of the range (a bare date: the whole day)", required=True),
                 "account": P.string("list the records of this account (with domainid)"),
                 "domainid": P.uuid("list the records of this domain (and below it)"),
                 "accountid": P.uuid("list the records of this account"),
                 "projectid": P.uuid("list the records of this project"),
                 "type": P.long("list records of this usage type (listUsageTypes)"),
                 "usageid": P.string("list records of this resource (with type)"),
                 **PAGING_PARAMS,
             })
def list_usage_records(ctx, p):
    """Lists usage records whose period starts in the range."""
    start, end = _naive(p["startdate"]), _end_of(_naive(p["enddate"]))
    if end < start:
        raise invalid(ctx, "enddate", "the end date is before the start date")
    query = select(UsageRecord).where(UsageRecord.start_date >= start, UsageRecord.start_date <= end)
    caller = ctx.caller
    if "projectid" in p:
        query = query.where(UsageRecord.account_id == find_project(ctx.session, caller, p["projectid"])
                            .project_account_id)
    elif "accountid" in p:
        account = check_account(ctx, ctx.get(Account, p["accountid"], "accountid", check_owner=False))
        query = query.where(UsageRecord.account_id == account.id)
    elif "account" in p:
        domain = check_domain(ctx, ctx.get(Domain, p["domainid"], "domainid")) if "domainid" in p else \
            ctx.session.get(Domain, caller.domain_id)
        account = ctx.session.scalar(select(Account).where(Account.name == p["account"], Account.domain_id == domain.id,
                                                           Account.account_type != AccountType.PROJECT))
        if account is None:
            raise invalid(ctx, "account", f"domain {domain.name} has no account named {p['account']}")
        query = query.where(UsageRecord.account_id == check_account(ctx, account).id)
    elif "domainid" in p:
        domain = check_domain(ctx, ctx.get(Domain, p["domainid"], "domainid"))
        query = query.where(UsageRecord.domain_id.in_(domain_ids_under(ctx.session, domain.path)))
    elif not caller.is_root_admin:
        query = query.where(UsageRecord.domain_id.in_(domain_ids_under(ctx.session, caller.domain_path)))
    if "type" in p:
        query = query.where(UsageRecord.usage_type == p["type"])
    if "usageid" in p:
        if "type" not in p:
            raise invalid(ctx, "usageid", "usageid can be used only together with type")
        query = query.where(UsageRecord.resource_uuid == p["usageid"])
    total, records = ctx.page(query, order_by=(UsageRecord.start_date, UsageRecord.usage_type, UsageRecord.id))
    return total, [usage_record_view(ctx.session, record) for record in records]


@api_command("generateUsageRecords", response="success", roles=ROOT_ONLY, params={
    "startdate": P.date("start of the range (yyyy-MM-dd or yyyy-MM-dd HH:mm:ss, UTC)", required=True),
    "enddate": P.date("end of the range (a bare date: the whole day)", required=True),
    "domainid": P.uuid("only the accounts of this domain (and below it)"),
})
def generate_usage_records(ctx, p):
    """Makes (again) the usage records of every whole period in the range that has ended, from the
    usage events; earlier records of those periods are replaced."""
    start, end = _naive(p["startdate"]), _end_of(_naive(p["enddate"]))
    if end < start:
        raise invalid(ctx, "enddate", "the end date is before the start date")
    domain = ctx.get(Domain, p["domainid"], "domainid") if "domainid" in p else None
    minutes = ctx.cloud.config.get(ctx.session, "usage.stats.job.aggregation.range")
    usage.generate(ctx.session, start, end + dt.timedelta(seconds=1), minutes=minutes, domain=domain)
    return SUCCESS


@api_command("listUsageTypes", response="usagetype", is_list=True, list_params=False, roles=ADMINS,
             response_fields=USAGE_TYPE_FIELDS, params={})
def list_usage_types(ctx, p):
    """Lists CloudStack's usage types (the ``type`` of listUsageRecords)."""
    rows = [{"id": number, "name": name, "description": description} for number, name, description in
            usage.UsageType.ALL]
    return len(rows), rows
