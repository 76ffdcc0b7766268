"""Domains: listDomains, listDomainChildren, createDomain, updateDomain, deleteDomain.

As CloudStack: a root admin lists every domain; anyone else lists its own domain,
and a domain admin with ``listall=true`` also the domains below it. A new domain
goes under ``parentdomainid`` (default ROOT), which the caller must reach. A domain
admin changes the domains below its own, never its own or ROOT.
"""

from __future__ import annotations

from sqlalchemy import func, select

from api.views.identity import DOMAIN_FIELDS, domain_view
from core.commands import ADMINS, ALL_ROLES, SUCCESS, P, api_command
from core.errors import PermissionDenied
from core.jobs import job_handler
from core.model import Domain
from core.orchestration import identity, limits

from .accounts import check_domain
from .zones import invalid


@api_command("listDomains", response="domain", is_list=True, roles=ALL_ROLES, response_fields=DOMAIN_FIELDS, params={
    "id": P.uuid("the ID of the domain"),
    "name": P.string("the name of the domain"),
    "level": P.integer("the level of the domains (ROOT is 0)", minimum=0),
})
def list_domains(ctx, p):
    """Lists domains."""
    caller = ctx.caller
    query = select(Domain).where(Domain.removed.is_(None))
    if "id" in p:
        query = query.where(Domain.id == check_domain(ctx, ctx.get(Domain, p["id"], "id")).id)
    elif not caller.is_root_admin:
        if caller.is_domain_admin and p.get("listall"):
            query = query.where(Domain.path.startswith(caller.domain_path))
        else:
            query = query.where(Domain.id == caller.domain_id)
    if "name" in p:
        query = query.where(Domain.name == p["name"])
    if "level" in p:
        query = query.where(Domain.level == p["level"])
    total, domains = ctx.page(query, name_column=Domain.name, order_by=Domain.path)
    return total, [domain_view(ctx.session, domain) for domain in domains]


@api_command("createDomain", response="domain", roles=ADMINS, response_fields=DOMAIN_FIELDS, params={
    "name": P.string("the name of the domain", required=True),
    "parentdomainid": P.uuid("the parent domain (default: ROOT)"),
    "networkdomain": P.string("the network domain of the domain's networks"),
    "domainid": P.uuid("the ID to give the domain (default: a new one)"),
})
def create_domain(ctx, p):
    """Creates a domain under a parent the caller reaches."""
    if "parentdomainid" in p:
        parent = ctx.get(Domain, p["parentdomainid"], "parentdomainid")
    else:
        parent = ctx.session.scalar(select(Domain).where(Domain.parent_id.is_(None)))
    check_domain(ctx, parent)
    name = p["name"].strip()
    if not name or "/" in name:
        raise invalid(ctx, "name", "a domain name must be non-empty and contain no '/'")
    if ctx.session.scalar(select(Domain.id).where(Domain.parent_id == parent.id, Domain.removed.is_(None),
                                                  func.lower(Domain.name) == name.lower())):
        raise invalid(ctx, "name", f"A domain named {name} already exists under {parent.name}")
    if "domainid" in p and ctx.session.scalar(select(Domain.id).where(Domain.uuid == p["domainid"])):
        raise invalid(ctx, "domainid", f"A domain with id {p['domainid']} already exists")
    domain = Domain(name=name, parent_id=parent.id, path=f"{parent.path}{name}/", level=parent.level + 1,
                    network_domain=p.get("networkdomain"))
    if "domainid" in p:
        domain.uuid = p["domainid"]
    ctx.session.add(domain)
    ctx.session.flush()
    limits.ensure_rows(ctx.session, domain_id=domain.id)
    ctx.event("DOMAIN.CREATE", f"Created domain {domain_view(ctx.session, domain)['path']}", domain)
    return domain_view(ctx.session, domain)


@api_command("listDomainChildren", response="domain", is_list=True, roles=ADMINS, response_fields=DOMAIN_FIELDS,
             params={"id": P.uuid("the domain whose children are listed (default: the caller's)"),
                     "name": P.string("the name of the child domains"),
                     "isrecursive": P.boolean("also the children's children, all the way down")})
def list_domain_children(ctx, p):
    """Lists the domains below a domain."""
    parent = check_domain(ctx, ctx.get(Domain, p["id"], "id") if "id" in p
                          else ctx.session.get(Domain, ctx.caller.domain_id))
    query = select(Domain).where(Domain.removed.is_(None))
    if p.get("isrecursive"):
        query = query.where(Domain.path.startswith(parent.path), Domain.id != parent.id)
    else:
        query = query.where(Domain.parent_id == parent.id)
    if "name" in p:
        query = query.where(Domain.name == p["name"])
    total, domains = ctx.page(query, name_column=Domain.name, order_by=Domain.path)
    return total, [domain_view(ctx.session, domain) for domain in domains]


def _below_caller(ctx, domain: Domain, what: str) -> Domain:
    check_domain(ctx, domain)
    if domain.parent_id is None:
        raise PermissionDenied(f"The ROOT domain may not be {what}d")
    if not ctx.caller.is_root_admin and domain.id == ctx.caller.domain_id:
        raise PermissionDenied(f"A domain admin may not {what} its own domain")
    return domain


@api_command("updateDomain", response="domain", roles=ADMINS, response_fields=DOMAIN_FIELDS, params={
    "id": P.uuid("the ID of the domain", required=True),
    "name": P.string("the new name of the domain"),
    "networkdomain": P.string("the network domain of the domain's networks"),
})
def update_domain(ctx, p):
    """Renames a domain (the paths below it follow) or changes its network domain."""
    domain = _below_caller(ctx, ctx.get(Domain, p["id"], "id"), "update")
    if "name" in p and p["name"].strip() != domain.name:
        name = p["name"].strip()
        if not name or "/" in name:
            raise invalid(ctx, "name", "a domain name must be non-empty and contain no '/'")
        if ctx.session.scalar(select(Domain.id).where(Domain.parent_id == domain.parent_id, Domain.removed.is_(None),
                                                      func.lower(Domain.name) == name.lower(), Domain.id != domain.id)):
            raise invalid(ctx, "name", f"A domain named {name} already exists there")
        old_path = domain.path
        new_path = f"{domain.parent.path}{name}/"
        for each in ctx.session.scalars(select(Domain).where(Domain.path.startswith(old_path))):
            each.path = new_path + each.path[len(old_path):]
        domain.name = name
    if "networkdomain" in p:
        domain.network_domain = p["networkdomain"] or None
    ctx.session.flush()
    ctx.event("DOMAIN.UPDATE", f"Updated domain {domain_view(ctx.session, domain)['path']}", domain)
    return domain_view(ctx.session, domain)


@api_command("deleteDomain", response="success", is_async=True, roles=ADMINS,
             description="Deletes a domain; with cleanup, also every domain below it and every account in them "
                         "(with everything they own).",
             params={"id": P.uuid("the ID of the domain", required=True),
                     "cleanup": P.boolean("true: delete the domain's subdomains and accounts too")})
def delete_domain(ctx, p):
    domain = _below_caller(ctx, ctx.get(Domain, p["id"], "id"), "delete")
    cleanup = p.get("cleanup", False)
    if not cleanup:
        identity.check_empty(ctx.session, domain)  # 536 now rather than in the job
    return ctx.start_job("domain.delete", {"domain": domain.uuid, "cleanup": cleanup}, instance=domain,
                         instance_type="Domain")


@job_handler("domain.delete")
def delete_job(ctx):
    identity.delete_domain(ctx.cloud, ctx.params["domain"], cleanup=ctx.params["cleanup"])
    return SUCCESS
