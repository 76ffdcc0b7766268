"""Login sessions: password login, the session key clients send back, logout.

A session is a ``login_session`` row. ``login`` makes one and answers with its
``sessionkey`` (also set as a cookie, with JSESSIONID and the cookies CloudStack's
UI reads); later calls carry ``sessionkey`` as a parameter. The parameter is
required: a cookie alone does not authenticate, since a browser sends cookies to
any page that asks (CloudStack's reason for the key, bug 5483). When the
``sessionkey`` or ``JSESSIONID`` cookie comes too, it must belong to the same session.

A session lives ``Settings.session_timeout_minutes`` after its last use.

Failed logins are counted per user; after ``incorrect.login.attempts.allowed`` in a
row the user is disabled (CloudStack's lock-out), except the default users (admin,
system), whose failures are only logged. A good login resets the count.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import logging
import secrets

from sqlalchemy import delete, event, select, update
from sqlalchemy.orm import Session

from core.access import Caller
from core.errors import AuthenticationError, PermissionDenied
from core.model import Domain, LoginSession, User, utcnow
from core.passwords import hash_password, verify_password

log = logging.getLogger(__name__)

#: commands that run before (and without) authentication, as CloudStack's APIAuthenticators
AUTHENTICATORS = frozenset({"login", "logout"})

SESSION_COOKIE = "sessionkey"
JSESSIONID = "JSESSIONID"
COOKIE_PATH = "/client"
#: cookies the login sets besides the two above (CloudStack's UI reads them)
INFO_COOKIES = ("userid", "account", "domainid", "role", "username", "timezone", "userfullname")

# Refreshing the expiry on every call would write on every call; once a minute is enough.
_REFRESH_AFTER = dt.timedelta(minutes=1)


@functools.cache
def _dummy_hash() -> str:
    """Checked when the user does not exist, so a wrong name takes as long as a wrong password."""
    return hash_password(secrets.token_hex(8))


def is_enabled(user: User) -> bool:
    """May this user act at all: user and account enabled, neither removed."""
    account = user.account
    return (user.removed is None and account.removed is None
            and (user.state or "").lower() == "enabled" and (account.state or "").lower() == "enabled")


# -- login -------------------------------------------------------------------


def find_domain(session: Session, domain_id: str | None, path: str | None) -> Domain:
    """The login domain: ``domainId`` (uuid or number) first, then the ``domain`` path, else ROOT.

    Paths are CloudStack's (``/``, ``/child/``, ``child/grandchild``); a leading
    ``ROOT`` is also understood (``ROOT/child``). Raises 401 for a malformed
    domainId and 531 for a domain that does not exist, as CloudStack's login does.
    """
    if domain_id:
        text = domain_id.strip()
        live = select(Domain).where(Domain.removed.is_(None))
        domain = session.scalar(live.where(Domain.uuid == text))
        if domain is None:
            if not (text.isascii() and text.isdigit() and len(text) < 19):
                raise AuthenticationError("Invalid domain id entered, please enter a valid one")
            domain = session.scalar(live.where(Domain.id == int(text)))
        if domain is None:
            raise PermissionDenied(f"Unable to find the domain from the id {text}")
        return domain
    normalised = normalise_path(path)
    domain = session.scalar(select(Domain).where(Domain.path == normalised, Domain.removed.is_(None)))
    if domain is None:
        raise PermissionDenied(f"Unable to find the domain from the path {normalised}")
    return domain


def normalise_path(path: str | None) -> str:
    """``child/x`` -> ``/child/x/``; ``ROOT``, ``/ROOT/child`` -> ``/``, ``/child/``; nothing -> ``/``."""
    parts = [part for part in (path or "").strip().split("/") if part]
    if parts and parts[0].upper() == "ROOT":
        parts = parts[1:]
    return "/" + "".join(f"{part}/" for part in parts)


def check_password(session: Session, username: str, password: str, domain: Domain, config=None) -> User:
    """The enabled user with these credentials in ``domain``; 531 otherwise (CloudStack's ACCOUNT_ERROR).

    The message is the same whatever was wrong, so it does not tell which users exist.
    A wrong password of an enabled user counts as a failed attempt even though the
    command's transaction rolls back (it is written once the rollback is done);
    ``config`` (the cloud's ``GlobalConfig``) gives the number allowed.
    """
    user = session.scalar(select(User).where(User.username == username, User.domain_id == domain.id,
                                             User.removed.is_(None)))
    valid = verify_password(password, user.password_hash if user is not None else _dummy_hash())
    if user is None or not valid or not is_enabled(user):
        log.info("login of %r in domain %s refused", username, domain.path)
        if user is not None and not valid and is_enabled(user) and config is not None:
            _count_failure_after_rollback(session, user.id, config.get(session, "incorrect.login.attempts.allowed"),
                                          exempt=user.is_default)
        raise PermissionDenied(f"Failed to authenticate user {username} in domain {domain.uuid}; "
                               f"please provide valid credentials")
    if user.login_attempts:
        user.login_attempts = 0
    return user


def _count_failure_after_rollback(session: Session, user_id: int, allowed: int, *, exempt: bool) -> None:
    """Once ``session``'s transaction has rolled back, add one failed attempt to the user in a
    transaction of its own, disabling the user when that reaches ``allowed`` (unless ``exempt``)."""
    engine = session.get_bind()

    def count(_session, *_args) -> None:
        with Session(engine) as own, own.begin():
            own.execute(update(User).where(User.id == user_id).values(login_attempts=User.login_attempts + 1))
            attempts, username = own.execute(select(User.login_attempts, User.username)
                                             .where(User.id == user_id)).one()
            if attempts >= allowed > 0 and not exempt:
                own.execute(update(User).where(User.id == user_id, User.state == "enabled").values(state="disabled"))
                log.warning("user %s has been disabled after %d failed login attempts; an admin can enable it "
                            "with enableUser", username, attempts)
            elif attempts >= allowed > 0:
                log.warning("%d failed login attempts in a row for the default user %s", attempts, username)

    event.listen(session, "after_rollback", count, once=True)


def open_session(session: Session, user: User, timeout_minutes: int) -> LoginSession:
    """A new session for ``user``; sessions of anyone that have expired go at the same time."""
    now = utcnow()
    session.execute(delete(LoginSession).where(LoginSession.expires <= now))
    row = LoginSession(session_key=secrets.token_urlsafe(20), user_id=user.id, created=now,
                       expires=now + dt.timedelta(minutes=timeout_minutes))
    session.add(row)
    session.flush()
    return row


def login_response(user: User, row: LoginSession, timeout_minutes: int) -> dict:
    """CloudStack's LoginCmdResponse fields."""
    account = user.account
    return {
        "username": user.username, "userid": user.uuid, "domainid": account.domain.uuid,
        "timeout": timeout_minutes * 60, "account": account.name, "firstname": user.firstname,
        "lastname": user.lastname, "type": str(account.account_type), "timezone": user.timezone,
        "timezoneoffset": _offset_hours(user.timezone), "registered": "false",
        "sessionkey": row.session_key, "is2faenabled": "false", "is2faverified": "true",
    }


def login_cookies(user: User, row: LoginSession, timeout_minutes: int) -> list[tuple[str, str | None, dict]]:
    """The cookies a login sets: the session's own (HttpOnly) and CloudStack's UI cookies."""
    account = user.account
    age = {"max_age": timeout_minutes * 60, "path": COOKIE_PATH, "samesite": "Lax"}
    secret = {**age, "httponly": True}
    info = {
        "userid": user.uuid, "account": account.name, "domainid": account.domain.uuid,
        "role": account.role_type, "username": user.username, "timezone": user.timezone,
        "userfullname": f"{user.firstname} {user.lastname}".strip(),
    }
    return [(SESSION_COOKIE, row.session_key, secret), (JSESSIONID, jsessionid(row.session_key), secret),
            *((name, info[name], age) for name in INFO_COOKIES if info[name])]


def logout_cookies() -> list[tuple[str, str | None, dict]]:
    return [(name, None, {"path": COOKIE_PATH}) for name in (SESSION_COOKIE, JSESSIONID, *INFO_COOKIES)]


def jsessionid(session_key: str) -> str:
    """The JSESSIONID cookie of a session: derived from the key, so it can be checked without storing it."""
    return hashlib.sha256(f"jsessionid:{session_key}".encode()).hexdigest()[:32].upper()


def _offset_hours(timezone: str | None) -> str | None:
    if not timezone:
        return None
    try:
        from zoneinfo import ZoneInfo

        offset = dt.datetime.now(ZoneInfo(timezone)).utcoffset() or dt.timedelta()
    except (ValueError, KeyError, OSError):  # an unknown zone name: CloudStack's TimeZone falls back to GMT
        offset = dt.timedelta()
    return str(offset.total_seconds() / 3600)


# -- later calls -------------------------------------------------------------


def find_session(session: Session, key: str | None, cookies: dict[str, str]) -> LoginSession | None:
    """The live session named by ``key`` (the parameter) and not contradicted by the cookies, else None."""
    if not key or not key.isprintable():  # a control character names no session (and PostgreSQL refuses NUL)
        return None
    cookie_key, cookie_id = cookies.get(SESSION_COOKIE), cookies.get(JSESSIONID)
    if cookie_key is not None and not hmac.compare_digest(cookie_key.encode(), key.encode()):
        return None
    row = session.scalar(select(LoginSession).where(LoginSession.session_key == key))
    if row is None or row.expires <= utcnow():
        return None
    if cookie_id is not None and not hmac.compare_digest(cookie_id.encode(), jsessionid(row.session_key).encode()):
        return None
    return row


def authenticate(session: Session, key: str | None, cookies: dict[str, str], timeout_minutes: int) -> \
        tuple[Caller, LoginSession]:
    """The caller of a session-authenticated request; 401 when the session is unknown, expired
    or its user disabled. A live session's expiry moves ``timeout_minutes`` past now."""
    row = find_session(session, key, cookies)
    user = session.get(User, row.user_id) if row is not None else None
    if row is None or user is None or not is_enabled(user):
        raise AuthenticationError("unable to verify user credentials")
    now = utcnow()
    expires = now + dt.timedelta(minutes=timeout_minutes)
    if expires - row.expires >= _REFRESH_AFTER:
        row.expires = expires
    return Caller.of(user), row


def end_session(session: Session, row: LoginSession | None) -> None:
    if row is not None:
        session.execute(delete(LoginSession).where(LoginSession.id == row.id))

