"""Users: createUser, listUsers, updateUser, disableUser, enableUser, lockUser, deleteUser,
registerUserKeys, getUserKeys.

A user may list itself and the other users of its account, change its own details and
password (giving the current one), and read or renew its own account's keys; admins act
on the users of the accounts they reach. Nobody disables, locks or deletes itself or the
default users. Passwords are hashed at once and never written to events or logs.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from api.views.identity import USER_FIELDS, USER_KEYS_FIELDS, user_keys_view, user_view
from core.commands import ADMINS, ALL_ROLES, SUCCESS, P, api_command
from core.errors import PermissionDenied
from core.jobs import job_handler
from core.model import Account, AccountType, LoginSession, User, utcnow
from core.passwords import hash_password, new_key, verify_password

from .accounts import USER_PARAMS, account_filter, check_account, domain_param, new_user
from .zones import invalid


@api_command("createUser", response="user", roles=ADMINS, response_fields=USER_FIELDS, params={
    **USER_PARAMS,
    "account": P.string("the account the user joins", required=True),
    "domainid": P.uuid("the account's domain (default: the caller's)"),
})
def create_user(ctx, p):
    """Creates a user in an existing account."""
    domain = domain_param(ctx, p)
    account = ctx.session.scalar(select(Account).where(
        Account.name == p["account"].strip(), Account.domain_id == domain.id, Account.removed.is_(None),
        Account.account_type != AccountType.PROJECT))
    if account is None:
        raise invalid(ctx, "account", f"domain {domain.name} has no account named {p['account']}")
    check_account(ctx, account)
    user = new_user(ctx, account, p)
    ctx.event("USER.CREATE", f"Created user {user.username} of account {account.name}", user)
    return user_view(ctx.session, user)


@api_command("listUsers", response="user", is_list=True, roles=ALL_ROLES, response_fields=USER_FIELDS, params={
    "id": P.uuid("the ID of the user"),
    "username": P.string("the username"),
    "accounttype": P.integer("0 user, 1 root admin, 2 domain admin"),
    "state": P.string("the state of the users, e.g. enabled"),
})
def list_users(ctx, p):
    """Lists users: a user sees its own account's; admins those of the accounts they reach.
    With ``account`` (and ``domainid``), only that account's users."""
    query = (select(User).join(Account, Account.id == User.account_id)
             .where(User.removed.is_(None), account_filter(ctx, p, User.account_id, User.domain_id)))
    if "account" in p:
        domain = domain_param(ctx, p)
        query = query.where(Account.name == p["account"].strip(), Account.domain_id == domain.id)
    if "id" in p:
        query = query.where(User.uuid == p["id"])
    if "username" in p:
        query = query.where(User.username == p["username"])
    if "accounttype" in p:
        query = query.where(Account.account_type == p["accounttype"])
    if "state" in p:
        query = query.where(User.state == p["state"].strip().lower())
    total, users = ctx.page(query, name_column=User.username, order_by=User.id)
    return total, [user_view(ctx.session, user) for user in users]


@api_command("registerUserKeys", response="userkeys", roles=ALL_ROLES, response_fields=USER_KEYS_FIELDS, params={
    "id": P.uuid("the ID of the user", required=True),
})
def register_user_keys(ctx, p):
    """Gives the user a new API key and secret key; the old ones stop working."""
    user = _user(ctx, p)
    user.api_key, user.secret_key = new_key(), new_key()
    ctx.event("REGISTER.USER.KEY", f"Registered new API keys for user {user.username}", user)
    return user_keys_view(user)


@api_command("getUserKeys", response="userkeys", roles=ALL_ROLES, response_fields=USER_KEYS_FIELDS, params={
    "id": P.uuid("the ID of the user", required=True),
})
def get_user_keys(ctx, p):
    """The user's API key and secret key (none until registerUserKeys)."""
    user = _user(ctx, p)
    return {k: v for k, v in user_keys_view(user).items() if v is not None}


def _user(ctx, p: dict) -> User:
    user = ctx.get(User, p["id"], "id")
    check_account(ctx, user.account)
    return user


def _changeable(ctx, user: User, what: str) -> User:
    if user.id == ctx.caller.user_id:
        raise PermissionDenied(f"A user may not {what} itself")
    if user.is_default:
        raise PermissionDenied(f"The default user {user.username} may not be {what}d")
    return user


def _end_sessions(ctx, user: User) -> None:
    ctx.session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))


@api_command("updateUser", response="user", roles=ALL_ROLES, response_fields=USER_FIELDS, params={
    "id": P.uuid("the ID of the user", required=True),
    "username": P.string("the new login name, unique in the domain"),
    "password": P.string("the new password (sent as clear text, stored hashed)"),
    "currentpassword": P.string("the user's current password: required when a user changes its own password"),
    "firstname": P.string("the first name"), "lastname": P.string("the last name"),
    "email": P.string("the email address"), "timezone": P.string("the time zone", max_length=64),
    "userapikey": P.string("the API key to give the user (with usersecretkey)"),
    "usersecretkey": P.string("the secret key to give the user (with userapikey)"),
})
def update_user(ctx, p):
    """Updates a user's details, password or keys. A user (not an admin) updates only itself."""
    user = _user(ctx, p)
    if ctx.caller.role_type == "User" and user.id != ctx.caller.user_id:
        raise PermissionDenied(f"User {ctx.caller.username} may only update itself")
    if "username" in p and p["username"].strip() != user.username:
        username = p["username"].strip()
        if not username or ctx.session.scalar(select(User.id).where(
                User.username == username, User.domain_id == user.domain_id, User.removed.is_(None))):
            raise invalid(ctx, "username", f"A user with username {username} already exists in the domain")
        user.username = username
    if "password" in p:
        if not p["password"]:
            raise invalid(ctx, "password", "must not be empty")
        admin = ctx.caller.is_root_admin or (ctx.caller.is_domain_admin and user.id != ctx.caller.user_id)
        if not admin and not verify_password(p.get("currentpassword") or "", user.password_hash):
            raise invalid(ctx, "currentpassword", "the current password is required, and must be right, to set a "
                                                  "new password")
        user.password_hash = hash_password(p["password"])
    for param, attr in (("firstname", "firstname"), ("lastname", "lastname"), ("email", "email"),
                        ("timezone", "timezone")):
        if param in p:
            setattr(user, attr, p[param].strip())
    if ("userapikey" in p) != ("usersecretkey" in p):
        raise invalid(ctx, "userapikey", "userapikey and usersecretkey go together")
    if "userapikey" in p:
        if ctx.session.scalar(select(User.id).where(User.api_key == p["userapikey"], User.id != user.id)):
            raise invalid(ctx, "userapikey", "the API key is in use")
        user.api_key, user.secret_key = p["userapikey"], p["usersecretkey"]
    ctx.event("USER.UPDATE", f"Updated user {user.username}", user)
    ctx.session.flush()
    return user_view(ctx.session, user)


@api_command("disableUser", response="user", is_async=True, roles=ADMINS, response_fields=USER_FIELDS,
             params={"id": P.uuid("the ID of the user", required=True)})
def disable_user(ctx, p):
    """Disables a user: it cannot sign in or call the API; its sessions end (in the job)."""
    user = _changeable(ctx, _user(ctx, p), "disable")
    return ctx.start_job("user.disable", {"user": user.uuid}, instance=user, instance_type="User")


@job_handler("user.disable")
def disable_user_job(ctx):
    from core.events import record

    with ctx.transaction() as session:
        user = session.scalar(select(User).where(User.uuid == ctx.params["user"]))
        user.state = "disabled"
        session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        record(session, "USER.DISABLE", f"Disabled user {user.username}", caller=ctx.caller, resource=user,
               plugins=ctx.cloud.plugins)
        return {"user": user_view(session, user)}


@api_command("enableUser", response="user", roles=ADMINS, response_fields=USER_FIELDS,
             params={"id": P.uuid("the ID of the user", required=True)})
def enable_user(ctx, p):
    """Enables a disabled or locked user (also one disabled after failed logins)."""
    user = _user(ctx, p)
    user.state, user.login_attempts = "enabled", 0
    ctx.event("USER.ENABLE", f"Enabled user {user.username}", user)
    ctx.session.flush()
    return user_view(ctx.session, user)


@api_command("lockUser", response="user", roles=ADMINS, response_fields=USER_FIELDS,
             params={"id": P.uuid("the ID of the user", required=True)})
def lock_user(ctx, p):
    """Locks a user: it cannot sign in or call the API until enabled again."""
    user = _changeable(ctx, _user(ctx, p), "lock")
    user.state = "locked"
    _end_sessions(ctx, user)
    ctx.event("USER.LOCK", f"Locked user {user.username}", user)
    ctx.session.flush()
    return user_view(ctx.session, user)


@api_command("deleteUser", response="success", roles=ADMINS,
             params={"id": P.uuid("the ID of the user", required=True)})
def delete_user(ctx, p):
    """Deletes a user (its account and the account's resources stay); its keys and sessions end."""
    user = _changeable(ctx, _user(ctx, p), "delete")
    _end_sessions(ctx, user)
    from core.orchestration.identity import forget_user

    forget_user(ctx.session, user)  # its own project memberships (addUserToProject) and invitations
    user.removed, user.removed_marker, user.api_key, user.secret_key = utcnow(), user.id, None, None
    ctx.event("USER.DELETE", f"Deleted user {user.username}", user)
    return SUCCESS
