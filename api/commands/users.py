"""Users: createUser, listUsers, registerUserKeys, getUserKeys.

A user may list itself and the other users of its account, and read or renew
its own account's keys; admins act on the users of the accounts they reach.
"""

from __future__ import annotations

from sqlalchemy import select

from api.views.identity import USER_FIELDS, USER_KEYS_FIELDS, user_keys_view, user_view
from core.commands import ADMINS, ALL_ROLES, P, api_command
from core.model import Account, User
from core.passwords import new_key

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
        Account.name == p["account"].strip(), Account.domain_id == domain.id, Account.removed.is_(None)))
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
