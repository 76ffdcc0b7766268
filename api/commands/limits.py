"""Resource limits: listResourceLimits, updateResourceLimit, updateResourceCount.

The owner is the caller's account by default; ``account`` + ``domainid`` name another
account, ``projectid`` a project (its account), and ``domainid`` alone a domain. Users see
their own account's limits and their projects'; admins those of what they reach. A domain
admin changes the limits below its own domain, never its own account's or domain's. The
counting itself is ``core.orchestration.limits``.
"""

from __future__ import annotations

from sqlalchemy import select

from api.views.identity import (
    RESOURCE_COUNT_FIELDS,
    RESOURCE_LIMIT_FIELDS,
    resource_count_view,
    resource_limit_view,
)
from core.access import find_project
from core.commands import ADMINS, ALL_ROLES, P, api_command
from core.errors import InvalidParameterError, PermissionDenied
from core.model import Account, AccountType, Domain
from core.orchestration import limits
from core.orchestration.limits import ResourceType

from .accounts import check_account, check_domain
from .zones import invalid

TYPE_HELP = ("0 instance, 1 public IP, 2 volume, 3 snapshot, 4 template, 5 project, 6 network, 7 VPC, 8 CPU, "
             "9 memory (MiB), 10 primary storage (GiB), 11 secondary storage (GiB)")


def _types(ctx, p: dict) -> list[ResourceType]:
    if "resourcetype" in p:
        try:
            return [ResourceType(p["resourcetype"])]
        except ValueError:
            raise invalid(ctx, "resourcetype", f"{p['resourcetype']} is not a resource type ({TYPE_HELP})") from None
    if "resourcetypename" in p:
        for rtype in ResourceType:
            if rtype.api_name == p["resourcetypename"].strip().lower():
                return [rtype]
        raise invalid(ctx, "resourcetypename", f"'{p['resourcetypename']}' is not a resource type name")
    return list(ResourceType)


def _owner(ctx, p: dict) -> tuple[Account | None, Domain | None]:
    """(account, None) or (None, domain): what the request's limits are of."""
    if "projectid" in p:
        if "account" in p:
            raise InvalidParameterError("account and projectid cannot be given together")
        return find_project(ctx.session, ctx.caller, p["projectid"]).project_account, None
    if "account" in p:
        domain = check_domain(ctx, ctx.get(Domain, p["domainid"], "domainid")) if "domainid" in p else \
            ctx.session.get(Domain, ctx.caller.domain_id)
        account = ctx.session.scalar(select(Account).where(
            Account.name == p["account"].strip(), Account.domain_id == domain.id, Account.removed.is_(None),
            Account.account_type != AccountType.PROJECT))
        if account is None:
            raise invalid(ctx, "account", f"domain {domain.name} has no account named {p['account']}")
        return check_account(ctx, account), None
    if "domainid" in p:
        domain = check_domain(ctx, ctx.get(Domain, p["domainid"], "domainid"))
        if not (ctx.caller.is_root_admin or ctx.caller.is_domain_admin):
            raise PermissionDenied(f"Account {ctx.caller.account_name} may not see the limits of domain {domain.name}")
        return None, domain
    return ctx.session.get(Account, ctx.caller.account_id), None


def _limit(ctx, rtype, account, domain) -> int:
    return limits.account_limit(ctx.session, account, rtype) if account is not None else \
        limits.domain_limit(ctx.session, domain, rtype)


@api_command("listResourceLimits", response="resourcelimit", is_list=True, roles=ALL_ROLES,
             response_fields=RESOURCE_LIMIT_FIELDS, params={
                 "resourcetype": P.integer(f"the resource type: {TYPE_HELP}"),
                 "resourcetypename": P.string("the resource type name: user_vm, public_ip, volume, ..."),
             })
def list_resource_limits(ctx, p):
    """Lists the limits in force for an account, project or domain, one per resource type."""
    account, domain = _owner(ctx, p)
    rows = [resource_limit_view(ctx.session, rtype, _limit(ctx, rtype, account, domain), account=account,
                                domain=domain) for rtype in _types(ctx, p)]
    return len(rows), rows


@api_command("updateResourceLimit", response="resourcelimit", roles=ADMINS, response_fields=RESOURCE_LIMIT_FIELDS,
             params={
                 "resourcetype": P.integer(f"the resource type: {TYPE_HELP}", required=True),
                 "max": P.long("the maximum (-1 unlimited; MiB for memory, GiB for storage); default -1", minimum=-1),
                 "account": P.string("the account whose limit this is (with domainid)"),
                 "domainid": P.uuid("the domain whose limit this is (or that account's domain)"),
                 "projectid": P.uuid("the project whose limit this is"),
             })
def update_resource_limit(ctx, p):
    """Sets the limit of one resource type for an account, project or domain. An account's limit
    may not exceed its domain's, nor a domain's its parent's."""
    rtype = _types(ctx, p)[0]
    maximum = p.get("max", limits.UNLIMITED)
    if "account" not in p and "domainid" not in p and "projectid" not in p:
        raise InvalidParameterError("Unable to execute API command updateresourcelimit: give account with domainid, "
                                    "domainid, or projectid")
    account, domain = _owner(ctx, p)
    caller = ctx.caller
    if account is not None:
        if account.account_type == AccountType.ROOT_ADMIN:
            raise invalid(ctx, "account", "root admin accounts have no limits")
        if not caller.is_root_admin and account.id == caller.account_id:
            raise PermissionDenied("A domain admin may not change its own account's limits")
        ceiling = limits.domain_limit(ctx.session, ctx.session.get(Domain, account.domain_id), rtype)
        if ceiling != limits.UNLIMITED and (maximum == limits.UNLIMITED or maximum > ceiling):
            raise invalid(ctx, "max", f"the account's limit may not exceed its domain's ({ceiling})")
        limits.set_limit(ctx.session, rtype, maximum, account=account)
    else:
        if domain.parent_id is None:
            raise invalid(ctx, "domainid", "the ROOT domain has no limits")
        if not caller.is_root_admin and domain.id == caller.domain_id:
            raise PermissionDenied("A domain admin may not change its own domain's limits")
        ceiling = limits.domain_limit(ctx.session, ctx.session.get(Domain, domain.parent_id), rtype)
        if ceiling != limits.UNLIMITED and (maximum == limits.UNLIMITED or maximum > ceiling):
            raise invalid(ctx, "max", f"the domain's limit may not exceed its parent's ({ceiling})")
        limits.set_limit(ctx.session, rtype, maximum, domain=domain)
    ctx.event("RESOURCE.LIMIT.UPDATE", f"Set the {rtype.api_name} limit to {maximum}",
              account_id=account.id if account is not None else None,
              domain_id=account.domain_id if account is not None else domain.id)
    return resource_limit_view(ctx.session, rtype, maximum, account=account, domain=domain)


@api_command("updateResourceCount", response="resourcecount", is_list=True, list_params=False, roles=ADMINS,
             response_fields=RESOURCE_COUNT_FIELDS, params={
                 "domainid": P.uuid("the domain whose counts are recalculated (with its subdomains and accounts)",
                                    required=True),
                 "account": P.string("only this account of the domain"),
                 "projectid": P.uuid("only this project"),
                 "resourcetype": P.integer(f"only this resource type: {TYPE_HELP}"),
             })
def update_resource_count(ctx, p):
    """Recounts what accounts hold from the resources that exist, and the domains' totals from
    their accounts'; lists the new counts of the account (or domain) named."""
    types = _types(ctx, p)
    domain = check_domain(ctx, ctx.get(Domain, p["domainid"], "domainid"))
    account = None
    if "projectid" in p or "account" in p:
        account, _ = _owner(ctx, p)
    limits.recount(ctx.session, domain, account=account, types=types)
    rows = [resource_count_view(ctx.session, rtype,
                                limits.count_of(ctx.session, rtype, account=account, domain=None if account else domain),
                                account=account, domain=None if account else domain)
            for rtype in types]
    return len(rows), rows
