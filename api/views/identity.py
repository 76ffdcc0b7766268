"""Views of domains, accounts, users and API keys (CloudStack's DomainResponse,
AccountResponse, UserResponse, RegisterResponse).

Resource-limit and usage counters of AccountResponse (vmlimit, vmtotal, ...) are
left out until Strato keeps limits.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.model import Account, AccountType, Domain, User

from .common import compact, cs_date


def domain_path(domain: Domain) -> str:
    """CloudStack's printed path: ROOT, ROOT/child, ROOT/child/grandchild."""
    return "ROOT" + domain.path.rstrip("/") if domain.path != "/" else "ROOT"


DOMAIN_FIELDS = {
    "id": "the ID of the domain", "name": "the name of the domain", "level": "the level of the domain",
    "parentdomainid": "the domain ID of the parent domain", "parentdomainname": "the domain name of the parent domain",
    "haschild": "whether the domain has one or more sub-domains", "path": "the path of the domain",
    "state": "the state of the domain",
    "networkdomain": "the network domain",
    "created": "the date when this domain was created",
}


def domain_view(session: Session, domain: Domain) -> dict:
    parent = domain.parent
    has_child = session.scalar(select(Domain.id).where(Domain.parent_id == domain.id, Domain.removed.is_(None))
                               .limit(1)) is not None
    return compact({
        "id": domain.uuid, "name": domain.name, "level": domain.level,
        "parentdomainid": parent.uuid if parent else None, "parentdomainname": parent.name if parent else None,
        "haschild": has_child, "path": domain_path(domain), "state": domain.state,
        "networkdomain": domain.network_domain, "created": cs_date(domain.created),
    })


USER_FIELDS = {
    "id": "the user ID", "username": "the user name", "firstname": "the user firstname",
    "lastname": "the user lastname",
    "email": "the user email address",
    "created": "the date and time the user account was created",
    "state": "the user state", "account": "the account name of the user", "accountid": "the account ID of the user",
    "accounttype": "the account type of the user", "roletype": "the type of the role",
    "domainid": "the domain ID of the user", "domain": "the domain name of the user",
    "timezone": "the timezone user was created in", "isdefault": "true if user is default, false otherwise",
    "apikey": "the api key of the user",
}


def user_view(session: Session, user: User) -> dict:
    """The secret key is never listed: only ``getUserKeys`` and ``registerUserKeys`` show it."""
    account = user.account
    domain = session.get(Domain, user.domain_id)
    return compact({
        "id": user.uuid, "username": user.username, "firstname": user.firstname, "lastname": user.lastname,
        "email": user.email, "created": cs_date(user.created), "state": user.state, "account": account.name,
        "accountid": account.uuid, "accounttype": account.account_type, "roletype": account.role_type,
        "domainid": domain.uuid, "domain": domain.name, "timezone": user.timezone, "isdefault": user.is_default,
        "apikey": user.api_key,
    })


ACCOUNT_FIELDS = {
    "id": "the id of the account", "name": "the name of the account",
    "accounttype": "account type (admin, domain-admin, user)",
    "roletype": "the type of the role (Admin, DomainAdmin, User)",
    "domainid": "id of the Domain the account belongs to", "domain": "name of the Domain the account belongs to",
    "domainpath": "path of the Domain the account belongs to", "state": "the state of the account",
    "networkdomain": "the network domain", "created": "the date when this account was created",
    "isdefault": "true if account is default, false otherwise", "user": "the list of users associated with account",
}


def account_view(session: Session, account: Account) -> dict:
    domain = account.domain
    users = session.scalars(select(User).where(User.account_id == account.id, User.removed.is_(None))
                            .order_by(User.id)).all()
    return compact({
        "id": account.uuid, "name": account.name, "accounttype": account.account_type,
        "roletype": AccountType.ROLE_TYPES[account.account_type], "domainid": domain.uuid, "domain": domain.name,
        "domainpath": domain_path(domain), "state": account.state, "networkdomain": account.network_domain,
        "created": cs_date(account.created),
        # the two accounts every installation starts with
        "isdefault": account.name in ("system", "admin") and domain.parent_id is None,
        "user": [user_view(session, user) for user in users],
    })


USER_KEYS_FIELDS = {"apikey": "the api key of the registered user",
                    "secretkey": "the secret key of the registered user"}


def user_keys_view(user: User) -> dict:
    return {"apikey": user.api_key, "secretkey": user.secret_key}
