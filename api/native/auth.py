"""Who sent a request: a login session, or an API key and its signature.

A request carrying ``sessionkey`` is judged by its session alone (``sessions``);
any other needs ``apiKey`` and ``signature`` (``signing``), and with
``signatureVersion=3`` an ``expires`` still in the future. The key must belong to
a user that, with its account, is enabled and not removed.

Refusals are 401 with CloudStack's two texts: "unable to verify user credentials"
for a session, "unable to verify user credentials and/or request signature" for
everything else, so a client learns nothing about which part was wrong; the
reason goes to the log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access import Caller
from core.errors import AuthenticationError
from core.model import LoginSession, User

from . import sessions, signing
from .request import ApiRequest

log = logging.getLogger(__name__)

REFUSED = "unable to verify user credentials and/or request signature"


@dataclasses.dataclass(frozen=True)
class Identity:
    caller: Caller
    #: the session the request came with, None for a signed request
    login_session: LoginSession | None = None


def authenticate(session: Session, request: ApiRequest, session_timeout_minutes: int,
                 now: dt.datetime | None = None) -> Identity:
    """The identity of ``request``; raises ``AuthenticationError`` (401) when it has none."""
    key = request.get("sessionkey")
    if key is not None:
        caller, row = sessions.authenticate(session, key, request.cookies, session_timeout_minutes)
        return Identity(caller, row)
    return _by_signature(session, request, now or dt.datetime.now(dt.timezone.utc))


def _by_signature(session: Session, request: ApiRequest, now: dt.datetime) -> Identity:
    api_key, signature = request.get("apiKey"), request.get("signature")
    if not api_key or not signature:
        raise _refuse("no session key, api key or signature")
    problem = signing.expires_problem(request.params, now)
    if problem:
        raise _refuse(problem)
    # a control character is in no key (updateUser refuses them; PostgreSQL refuses NUL in a query)
    user = session.scalar(select(User).where(User.api_key == api_key, User.removed.is_(None))) \
        if api_key.isprintable() else None
    if user is None or not user.secret_key:
        raise _refuse("the api key belongs to no user")
    if not sessions.is_enabled(user):
        raise _refuse(f"user {user.username} or its account is disabled")
    variant = signing.verify(request.params, user.secret_key, signature)
    if variant is None:
        raise _refuse(f"the signature of user {user.username}'s request does not match")
    log.debug("request of %s signed as %s signs", user.username, variant)
    return Identity(Caller.of(user))


def _refuse(reason: str) -> AuthenticationError:
    log.info("request refused: %s", reason)
    return AuthenticationError(REFUSED)
