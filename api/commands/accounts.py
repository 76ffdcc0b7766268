"""Accounts: createAccount (the account and its first user), listAccounts, updateAccount,
disableAccount, enableAccount, lockAccount, deleteAccount.

Also the access rules the identity commands share: a root admin reaches every
domain and account; a domain admin reaches its domain, the domains below it and
their accounts, but never a root admin's account; a user reaches its own account.
Nobody disables, locks or deletes its own account or the default ones (system, admin).
A project's account (type 5) is never listed or changed here: projects have their commands.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from api.views.identity import ACCOUNT_FIELDS, account_view
from core.access import can_reach, domain_ids_under
from core.commands import ADMINS, ALL_ROLES, SUCCESS, P, api_command
from core.errors import InvalidParameterError, PermissionDenied
from core.jobs import job_handler
from core.model import (Account, AccountType, Domain, LoginSession, Project, ProjectAccount, ProjectMemberRole, Role,
                        RoleType, User, VirtualMachine)
from core.orchestration import identity, limits
from core.orchestration import vm as vm_ops
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


def account_type(ctx, p: dict) -> tuple[int, Role]:
    """The account type and role from ``roleid``, ``accounttype`` or ``roletype`` (431 when they
    disagree); without ``roleid`` the role is the default one of the type. Only a root admin
    gives roles of type Admin."""
    from core import roles

    by_type = by_role = role = None
    if "roleid" in p:
        role = ctx.get(Role, p["roleid"], "roleid", check_owner=False)
        if role.role_type == RoleType.ADMIN and not ctx.caller.is_root_admin:
            raise PermissionDenied("Only a root admin may give a role of type Admin")
        by_role = RoleType.ACCOUNT_TYPES[role.role_type]
    if "accounttype" in p:
        if p["accounttype"] not in AccountType.ROLE_TYPES:
            raise invalid(ctx, "accounttype", f"{p['accounttype']} is not 0 (user), 1 (root admin) or 2 (domain admin)")
        by_type = p["accounttype"]
    if "roletype" in p and role is None:
        spelled = {name.lower(): number for name, number in ROLE_TYPES.items()}
        by_role = spelled.get(p["roletype"].strip().lower())
        if by_role is None:
            raise invalid(ctx, "roletype", f"'{p['roletype']}' is not one of {', '.join(ROLE_TYPES)}")
    if by_type is None and by_role is None:
        raise invalid(ctx, "accounttype", "give roleid, accounttype or roletype")
    if by_type is not None and by_role is not None and by_type != by_role:
        raise invalid(ctx, "roleid" if role is not None else "roletype", "it disagrees with accounttype")
    kind = by_type if by_type is not None else by_role
    return kind, role or roles.role_for_account_type(ctx.session, kind)


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
    "accounttype": P.integer("0 user, 1 root admin, 2 domain admin (or give roleid or roletype)"),
    "roletype": P.string("User, Admin or DomainAdmin (or give roleid or accounttype)"),
    "roleid": P.uuid("the role of the account (listRoles); its type gives the account type"),
    "account": P.string("the account's name (default: the username)"),
    "domainid": P.uuid("the account's domain (default: the caller's)"),
    "networkdomain": P.string("the network domain of the account's networks"),
    "accountid": P.uuid("the ID to give the account (default: a new one)"),
})
def create_account(ctx, p):
    """Creates an account and its first user."""
    kind, role = account_type(ctx, p)
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
    account = Account(name=name, account_type=kind, domain_id=domain.id, network_domain=p.get("networkdomain"),
                      role_id=role.id)
    if "accountid" in p:
        account.uuid = p["accountid"]
    ctx.session.add(account)
    ctx.session.flush()
    limits.ensure_rows(ctx.session, account_id=account.id)
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
    query = select(Account).where(Account.removed.is_(None), Account.account_type != AccountType.PROJECT,
                                  account_filter(ctx, p, Account.id, Account.domain_id))
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


# -- changing and removing accounts -------------------------------------------------------------

ACCOUNT_ID_PARAMS = {
    "id": P.uuid("the ID of the account"),
    "account": P.string("the name of the account (with domainid)"),
    "domainid": P.uuid("the domain of the account named by account"),
}


def account_param(ctx, p: dict) -> Account:
    """The account named by ``id`` or by ``account`` + ``domainid``, checked with ``check_account``."""
    if "id" in p:
        account = ctx.get(Account, p["id"], "id", check_owner=False)
    elif "account" in p:
        domain = domain_param(ctx, p)
        account = ctx.session.scalar(select(Account).where(
            Account.name == p["account"].strip(), Account.domain_id == domain.id, Account.removed.is_(None)))
        if account is None:
            raise invalid(ctx, "account", f"domain {domain.name} has no account named {p['account']}")
    else:
        raise InvalidParameterError(f"Unable to execute API command {ctx.command.lower_name} due to missing "
                                    f"parameter id (or account with domainid)")
    if account.account_type == AccountType.PROJECT:
        raise invalid(ctx, "id", "the account of a project is changed through the project commands")
    return check_account(ctx, account)


def is_default_account(session, account: Account) -> bool:
    """The system and admin accounts a fresh installation starts with (their users are the default ones)."""
    return session.scalar(select(User.id).where(User.account_id == account.id, User.is_default.is_(True))
                          .limit(1)) is not None


def _changeable(ctx, account: Account, what: str) -> Account:
    if account.id == ctx.caller.account_id:
        raise PermissionDenied(f"An account may not {what} itself")
    if is_default_account(ctx.session, account):
        raise PermissionDenied(f"The default account {account.name} may not be {what}d")
    return account


def end_sessions(session, account: Account) -> None:
    users = select(User.id).where(User.account_id == account.id)
    session.execute(delete(LoginSession).where(LoginSession.user_id.in_(users)))


@api_command("updateAccount", response="account", roles=ADMINS, response_fields=ACCOUNT_FIELDS, params={
    **ACCOUNT_ID_PARAMS,
    "newname": P.string("the new name of the account"),
    "networkdomain": P.string("the network domain of the account's networks"),
    "roleid": P.uuid("the new role of the account (of the same type)"),
})
def update_account(ctx, p):
    """Renames an account, or changes its network domain or its role."""
    account = account_param(ctx, p)
    if "newname" in p:
        name = p["newname"].strip()
        if not name:
            raise invalid(ctx, "newname", "must not be empty")
        if name != account.name and ctx.session.scalar(select(Account.id).where(
                Account.name == name, Account.domain_id == account.domain_id, Account.removed.is_(None))):
            raise invalid(ctx, "newname", f"The account {name} already exists in the domain")
        account.name = name
    if "networkdomain" in p:
        account.network_domain = p["networkdomain"] or None
    if "roleid" in p:
        role = ctx.get(Role, p["roleid"], "roleid", check_owner=False)
        if RoleType.ACCOUNT_TYPES[role.role_type] != account.account_type:
            raise invalid(ctx, "roleid", f"role {role.name} is of type {role.role_type}, which is not the account's")
        if role.role_type == RoleType.ADMIN and not ctx.caller.is_root_admin:
            raise PermissionDenied("Only a root admin may give a role of type Admin")
        account.role_id = role.id
    ctx.event("ACCOUNT.UPDATE", f"Updated account {account.name}", account)
    ctx.session.flush()
    return account_view(ctx.session, account)


@api_command("disableAccount", response="account", is_async=True, roles=ADMINS, response_fields=ACCOUNT_FIELDS,
             params={**ACCOUNT_ID_PARAMS,
                     "lock": P.boolean("true: lock (users cannot sign in, VMs keep running); false: disable "
                                       "(users cannot sign in and the account's VMs are stopped)", required=True)})
def disable_account(ctx, p):
    """Locks or disables an account; its users' sessions end at once."""
    account = _changeable(ctx, account_param(ctx, p), "disable")
    account.state = "locked" if p["lock"] else "disabled"
    end_sessions(ctx.session, account)
    ctx.event("ACCOUNT.DISABLE", f"{'Locked' if p['lock'] else 'Disabled'} account {account.name}", account)
    return ctx.start_job("account.disable", {"account": account.uuid, "stop_vms": not p["lock"]}, instance=account,
                         instance_type="Account")


@job_handler("account.disable")
def disable_job(ctx):
    if ctx.params["stop_vms"]:
        with ctx.transaction() as session:
            account = session.scalar(select(Account).where(Account.uuid == ctx.params["account"]))
            running = list(session.scalars(select(VirtualMachine.uuid).where(
                VirtualMachine.account_id == account.id, VirtualMachine.removed.is_(None),
                VirtualMachine.state.in_(("Running", "Starting")))))
        for vm_uuid in running:
            vm_ops.stop(ctx.cloud, vm_uuid, forced=True)
    with ctx.transaction() as session:
        account = session.scalar(select(Account).where(Account.uuid == ctx.params["account"]))
        return {"account": account_view(session, account)}


@api_command("enableAccount", response="account", roles=ADMINS, response_fields=ACCOUNT_FIELDS,
             params=ACCOUNT_ID_PARAMS)
def enable_account(ctx, p):
    """Enables a disabled or locked account."""
    account = account_param(ctx, p)
    account.state = "enabled"
    ctx.event("ACCOUNT.ENABLE", f"Enabled account {account.name}", account)
    ctx.session.flush()
    return account_view(ctx.session, account)


@api_command("lockAccount", response="account", roles=ADMINS, response_fields=ACCOUNT_FIELDS, params={
    "account": P.string("the name of the account", required=True),
    "domainid": P.uuid("the domain of the account", required=True),
})
def lock_account(ctx, p):
    """Locks an account: its users cannot sign in or call the API; its VMs keep running."""
    account = _changeable(ctx, account_param(ctx, p), "lock")
    account.state = "locked"
    end_sessions(ctx.session, account)
    ctx.event("ACCOUNT.DISABLE", f"Locked account {account.name}", account)
    ctx.session.flush()
    return account_view(ctx.session, account)


@api_command("deleteAccount", response="success", is_async=True, roles=ADMINS,
             description="Deletes an account and everything it owns (its VMs are destroyed and expunged, its "
                         "templates deleted, ...), through the normal jobs.",
             params={"id": P.uuid("the ID of the account", required=True)})
def delete_account(ctx, p):
    account = _changeable(ctx, account_param(ctx, p), "delete")
    managed = ctx.session.scalars(
        select(Project.name).join(ProjectAccount, ProjectAccount.project_id == Project.id)
        .where(ProjectAccount.account_id == account.id, ProjectAccount.role == ProjectMemberRole.ADMIN,
               Project.removed.is_(None)).order_by(Project.name)).all()
    if managed:  # as CloudStack: its projects would be left without an admin
        raise InvalidParameterError(f"The account {account.name} manages project(s) {', '.join(managed)} and "
                                    "can't be removed")
    account.state = "disabled"  # nobody uses it while its resources go
    end_sessions(ctx.session, account)
    return ctx.start_job("account.delete", {"account": account.uuid}, instance=account, instance_type="Account")


@job_handler("account.delete")
def delete_job(ctx):
    identity.delete_account(ctx.cloud, ctx.params["account"])
    return SUCCESS


