"""Who is calling, and what they may see and touch.

CloudStack's rules: a root admin reaches everything; a domain admin reaches
what belongs to its domain and the domains below it; a user reaches what its
own account owns. Plugins may add rules through the ``strato_check_access`` hook.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import PermissionDenied
from .model import Account, AccountType, Domain, User


@dataclasses.dataclass(frozen=True)
class Caller:
    user_id: int
    user_uuid: str
    username: str
    account_id: int
    account_uuid: str
    account_name: str
    account_type: int
    domain_id: int
    domain_uuid: str
    domain_name: str
    domain_path: str

    @classmethod
    def of(cls, user: User) -> Caller:
        account, domain = user.account, user.account.domain
        return cls(user.id, user.uuid, user.username, account.id, account.uuid, account.name,
                   account.account_type, domain.id, domain.uuid, domain.name, domain.path)

    @classmethod
    def load(cls, session: Session, user_id: int) -> Caller:
        return cls.of(session.get(User, user_id))

    @property
    def role_type(self) -> str:
        return AccountType.ROLE_TYPES[self.account_type]

    @property
    def is_root_admin(self) -> bool:
        return self.account_type == AccountType.ROOT_ADMIN

    @property
    def is_domain_admin(self) -> bool:
        return self.account_type == AccountType.DOMAIN_ADMIN


def domain_ids_under(session: Session, path: str) -> list[int]:
    """Ids of the domain at ``path`` and every domain below it."""
    return list(session.scalars(select(Domain.id).where(Domain.path.startswith(path))))


def can_reach(session: Session, caller: Caller, account_id: int | None, domain_id: int | None) -> bool:
    """May ``caller`` act on a resource owned by this account in this domain?"""
    if caller.is_root_admin:
        return True
    if account_id is None and domain_id is None:  # not owned: zone-wide resources, public offerings
        return True
    if caller.is_domain_admin:
        return domain_id in domain_ids_under(session, caller.domain_path)
    return account_id == caller.account_id


def check_owner(session: Session, caller: Caller, resource, plugins=None, command: str = "") -> None:
    """Raise 531 unless ``caller`` may act on ``resource`` (a row with account_id/domain_id)."""
    if plugins is not None:
        verdict = plugins.check_access(caller, command, resource)
        if verdict is not None:
            if not verdict:
                raise PermissionDenied(f"Account {caller.account_name} may not access {_describe(resource)}")
            return
    if not can_reach(session, caller, getattr(resource, "account_id", None), getattr(resource, "domain_id", None)):
        raise PermissionDenied(f"Account {caller.account_name} may not access {_describe(resource)}")


def _describe(resource) -> str:
    return f"{type(resource).__name__} {getattr(resource, 'uuid', '')}".strip()


def owner_filter(session: Session, caller: Caller, model, params: dict):
    """The WHERE clause a list command applies: CloudStack's listall/account/domainid/isrecursive rules.

    Without ``listall`` (and without ``account``/``domainid``) every caller sees only its own
    account's resources, as CloudStack does.
    """
    account_col, domain_col = model.account_id, model.domain_id
    domain_uuid, account_name = params.get("domainid"), params.get("account")
    if domain_uuid or account_name:
        domain = _domain_for(session, caller, domain_uuid)
        if account_name:
            account = session.scalar(select(Account).where(
                Account.name == account_name, Account.domain_id == domain.id, Account.removed.is_(None)))
            if account is None or not can_reach(session, caller, account.id, account.domain_id):
                raise PermissionDenied(f"Account {caller.account_name} may not list resources of account "
                                       f"{account_name} in domain {domain.name}")
            return account_col == account.id
        if params.get("isrecursive"):
            return domain_col.in_(domain_ids_under(session, domain.path))
        return domain_col == domain.id
    if not params.get("listall"):
        return account_col == caller.account_id
    if caller.is_root_admin:
        return True
    if caller.is_domain_admin:
        return domain_col.in_(domain_ids_under(session, caller.domain_path))
    return account_col == caller.account_id


def _domain_for(session: Session, caller: Caller, domain_uuid: str | None) -> Domain:
    from .errors import InvalidParameterError

    if domain_uuid is None:
        return session.get(Domain, caller.domain_id)
    domain = session.scalar(select(Domain).where(Domain.uuid == domain_uuid, Domain.removed.is_(None)))
    if domain is None:
        raise InvalidParameterError(f"Unable to find domain with id {domain_uuid}")
    if not (caller.is_root_admin or domain.path.startswith(caller.domain_path) and caller.is_domain_admin
            or (domain.id == caller.domain_id)):
        raise PermissionDenied(f"Account {caller.account_name} may not list resources of domain {domain.name}")
    return domain


__all__ = ["Caller", "can_reach", "check_owner", "owner_filter", "domain_ids_under"]
