"""Domains: listDomains, createDomain.

As CloudStack: a root admin lists every domain; anyone else lists its own domain,
and a domain admin with ``listall=true`` also the domains below it. A new domain
goes under ``parentdomainid`` (default ROOT), which the caller must reach.
"""

from __future__ import annotations

from sqlalchemy import func, select

from api.views.identity import DOMAIN_FIELDS, domain_view
from core.commands import ADMINS, ALL_ROLES, P, api_command
from core.model import Domain

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
    ctx.event("DOMAIN.CREATE", f"Created domain {domain_view(ctx.session, domain)['path']}", domain)
    return domain_view(ctx.session, domain)
