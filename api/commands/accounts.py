"""Accounts: createAccount (the account and its first user), listAccounts.

Also the access rules the identity commands share: a root admin reaches every
domain and account; a domain admin reaches its domain, the domains below it and
their accounts, but never a root admin's account; a user reaches its own account.
"""

from __future__ import annotations

from sqlalchemy import select

from api.views.identity import ACCOUNT_FIELDS, account_view
from core.access import can_reach, domain_ids_under
from core.commands import ADMINS, ALL_ROLES, P, api_command
from core.errors import PermissionDenied, UnsupportedError
from core.model import Account, AccountType, Domain, User
from core.passwords import hash_password

from .zones import invalid

ROLE_TYPES = {"User": AccountType.USER, "Admin": AccountType.ROOT_ADMIN, "DomainAdmin": AccountType.DOMAIN_ADMIN}


# -- access helpers the identity commands share ----------------------------------


def check_domain(ctx, domain: Domain) -> Domain:
    """531 unless the caller may act in ``domain`` (its own, or below it for a domain admin)."""
    caller = ctx.caller
    if caller.is_root_admin or domain.id == caller.domain_id:
        return domain
    if caller.is_domain_admin and domain.path.startswith(caller.domain_path):
        return domain
    raise PermissionDenied(f"Account {caller.account_name} may not act in domain {domain.name}")


def domain_param(ctx, p: dict, param: str = "domainid") -> Domain:
    """The domain ``param`` names (checked with ``check_domain``), or the caller's own."""
    domain = ctx.get(Domain, p[param], param) if param in p else ctx.session.get(Domain, ctx.caller.domain_id)
    return check_domain(ctx, domain)


def check_account(ctx, account: Account) -> Account:
    """531 unless the caller may act on ``account``."""
    caller = ctx.caller
    reachable = can_reach(ctx.session, caller, account.id, account.domain_id)
    if reachable and account.is_root_admin and not caller.is_root_admin:
        reachable = False  # a domain admin in ROOT still may not touch the root admins
    if not reachable:
        raise PermissionDenied(f"Account {caller.account_name} may not access account {account.name}")
    return account


def account_filter(ctx, p: dict, account_column, domain_column):
    """The WHERE clause listAccounts and listUsers apply. Users see their own account.
    Admins see the accounts of ``domainid`` (and below it with ``isrecursive``), or
    without it every account they reach."""
    caller = ctx.caller
    if not (caller.is_root_admin or caller.is_domain_admin):
        return account_column == caller.account_id
    if "domainid" in p:
        domain = check_domain(ctx, ctx.get(Domain, p["domainid"], "domainid"))
        if p.get("isrecursive"):
            return domain_column.in_(domain_ids_under(ctx.session, domain.path))
        return domain_column == domain.id
    if caller.is_root_admin:
        return domain_column.is_not(None)
    return domain_column.in_(domain_ids_under(ctx.session, caller.domain_path))


def account_type(ctx, p: dict) -> int:
    """The account type from ``accounttype`` or ``roletype`` (they must agree when both are given)."""
    if "roleid" in p:
        raise UnsupportedError("Strato has no roles yet: give accounttype (0 user, 1 root admin, "
                               "2 domain admin) or roletype (User, Admin, DomainAdmin) instead of roleid")
    by_type = by_role = None
    if "accounttype" in p:
        if p["accounttype"] not in AccountType.ROLE_TYPES:
            raise invalid(ctx, "accounttype", f"{p['accounttype']} is not 0 (user), 1 (root admin) or 2 (domain admin)")
        by_type = p["accounttype"]
    if "roletype" in p:
        spelled = {name.lower(): number for name, number in ROLE_TYPES.items()}
        by_role = spelled.get(p["roletype"].strip().lower())
        if by_role is None:
            raise invalid(ctx, "roletype", f"'{p['roletype']}' is not one of {', '.join(ROLE_TYPES)}")
    if by_type is None and by_role is None:
        raise invalid(ctx, "accounttype", "give accounttype or roletype")
    if by_type is not None and by_role is not None and by_type != by_role:
        raise invalid(ctx, "roletype", "roletype and accounttype disagree")
    return by_type if by_type is not None else by_role


def new_user(ctx, account: Account, p: dict) -> User:
    """Add a user to ``account`` from createAccount/createUser parameters; 431 for a
    username taken in the domain or a user id already in use."""
    username = p["username"].strip()
    if ctx.session.scalar(select(User.id).where(User.username == username, User.domain_id == account.domain_id,
                                                User.removed.is_(None))):
        raise invalid(ctx, "username", f"A user with username {username} already exists in the domain")
    if "userid" in p and ctx.session.scalar(select(User.id).where(User.uuid == p["userid"])):
        raise invalid(ctx, "userid", f"A user with id {p['userid']} already exists")
    if not p["password"]:
        raise invalid(ctx, "password", "must not be empty")
    user = User(username=username, password_hash=hash_password(p["password"]), firstname=p["firstname"].strip(),
                lastname=p["lastname"].strip(), email=p["email"].strip(), timezone=p.get("timezone"),
                account_id=account.id, domain_id=account.domain_id)
    if "userid" in p:
        user.uuid = p["userid"]
    ctx.session.add(user)
    ctx.session.flush()
    return user


USER_PARAMS = {
    "username": P.string("the user's login name, unique in the domain", required=True),
    "password": P.string("the user's password (sent as clear text, stored hashed)", required=True),
    "firstname": P.string("the user's first name", required=True),
    "lastname": P.string("the user's last name", required=True),
    "email": P.string("the user's email address", required=True),
    "timezone": P.string("the user's time zone", max_length=64),
    "userid": P.uuid("the ID to give the user (default: a new one)"),
}


# -- commands ---------------------------------------------------------------------


@api_command("createAccount", response="account", roles=ADMINS, response_fields=ACCOUNT_FIELDS, params={
    **USER_PARAMS,
    "accounttype": P.integer("0 user, 1 root admin, 2 domain admin (or give roletype)"),
    "roletype": P.string("User, Admin or DomainAdmin (or give accounttype)"),
    "roleid": P.uuid("not supported yet: Strato has no roles; give accounttype or roletype"),
    "account": P.string("the account's name (default: the username)"),
    "domainid": P.uuid("the account's domain (default: the caller's)"),
    "networkdomain": P.string("the network domain of the account's networks"),
    "accountid": P.uuid("the ID to give the account (default: a new one)"),
})
def create_account(ctx, p):
    """Creates an account and its first user."""
    kind = account_type(ctx, p)
    domain = domain_param(ctx, p)
    if kind == AccountType.ROOT_ADMIN and not ctx.caller.is_root_admin:
        raise PermissionDenied("Only a root admin may create root admin accounts")
    if kind == AccountType.ROOT_ADMIN and domain.parent_id is not None:
        raise invalid(ctx, "domainid", "root admin accounts belong to the ROOT domain")
    name = (p.get("account") or p["username"]).strip()
    if ctx.session.scalar(select(Account.id).where(Account.name == name, Account.domain_id == domain.id,
                                                   Account.removed.is_(None))):
        raise invalid(ctx, "account", f"The account {name} already exists in domain {domain.name}")
    if "accountid" in p and ctx.session.scalar(select(Account.id).where(Account.uuid == p["accountid"])):
        raise invalid(ctx, "accountid", f"An account with id {p['accountid']} already exists")
    account = Account(name=name, account_type=kind, domain_id=domain.id, network_domain=p.get("networkdomain"))
    if "accountid" in p:
        account.uuid = p["accountid"]
    ctx.session.add(account)
    ctx.session.flush()
    user = new_user(ctx, account, p)
    ctx.event("ACCOUNT.CREATE", f"Created account {account.name} in domain {domain.name}", account)
    ctx.event("USER.CREATE", f"Created user {user.username} of account {account.name}", user)
    return account_view(ctx.session, account)


@api_command("listAccounts", response="account", is_list=True, roles=ALL_ROLES, response_fields=ACCOUNT_FIELDS,
             params={
                 "id": P.uuid("the ID of the account"),
                 "name": P.string("the name of the account"),
                 "accounttype": P.integer("0 user, 1 root admin, 2 domain admin"),
                 "state": P.string("the state of the accounts, e.g. enabled"),
             })
def list_accounts(ctx, p):
    """Lists accounts: a user sees its own; admins the accounts they reach."""
    query = select(Account).where(Account.removed.is_(None), account_filter(ctx, p, Account.id, Account.domain_id))
    if "id" in p:
        query = query.where(Account.uuid == p["id"])
    if "name" in p:
        query = query.where(Account.name == p["name"])
    if "accounttype" in p:
        query = query.where(Account.account_type == p["accounttype"])
    if "state" in p:
        query = query.where(Account.state == p["state"].strip().lower())
    total, accounts = ctx.page(query, name_column=Account.name, order_by=Account.id)
    return total, [account_view(ctx.session, account) for account in accounts]
