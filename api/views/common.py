"""Helpers every view uses."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.model import Account, AccountType, Domain, Project


def cs_date(value: dt.datetime | None) -> str | None:
    """CloudStack's date format: 2024-01-15T10:20:30+0000 (stored values are naive UTC)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S+0000") if value else None


def compact(data: dict) -> dict:
    """Leave out None values, as CloudStack does."""
    return {k: v for k, v in data.items() if v is not None}


def owner_fields(session: Session, account_id: int | None, domain_id: int | None) -> dict:
    """account, accountid, domain, domainid (and domainpath) of an owned resource.

    Memoised per session: a list of 500 VMs of one account looks its owner up once
    (the session's identity map is weak, so it would not keep the rows for us).
    """
    cache = session.info.setdefault("owner_fields", {})
    key = (account_id, domain_id)
    if key not in cache:
        cache[key] = _owner_fields(session, account_id, domain_id)
    return dict(cache[key])


def _owner_fields(session: Session, account_id: int | None, domain_id: int | None) -> dict:
    fields: dict = {}
    if account_id is not None:
        account = session.get(Account, account_id)
        if account.account_type == AccountType.PROJECT:  # CloudStack shows the project instead
            project = session.scalar(select(Project).where(Project.project_account_id == account.id))
            fields.update(project=project.name, projectid=project.uuid)
        else:
            fields.update(account=account.name, accountid=account.uuid)
    if domain_id is not None:
        domain = session.get(Domain, domain_id)
        fields.update(domain=domain.name, domainid=domain.uuid, domainpath=_domain_path(domain))
    return fields


def _domain_path(domain: Domain) -> str:
    return "ROOT" + domain.path.rstrip("/") if domain.path != "/" else "ROOT"


OWNER_FIELDS = {
    "account": "the account owning the resource",
    "project": "the project owning the resource", "projectid": "the id of the project owning the resource",
    "accountid": "the id of the account owning the resource",
    "domain": "the domain of the owning account",
    "domainid": "the id of the domain of the owning account",
    "domainpath": "the path of the domain of the owning account",
}
