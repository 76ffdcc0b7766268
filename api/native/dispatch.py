"""The native API's request pipeline: from an HTTP request to its envelope.

In order, as CloudStack's ApiServlet and ApiServer:

1. the method: GET or POST (HEAD as GET); anything else is 405;
2. ``login`` and ``logout`` run without authentication (``sessions.AUTHENTICATORS``);
3. any other request is authenticated (``auth``): 401 when it cannot be; then the
   account's API rate (``throttle``, CloudStack's api.throttling.*): 429 beyond it;
4. the command must exist and the caller's role must allow it (``core.roles``: the
   role's rules, else the command's ``roles``); otherwise 432 with CloudStack's text for a
   command that does not exist or is not available to the account (the same text for
   both; as CloudStack, the envelope is ``errorresponse`` only for a command that does not
   exist, ``<command>response`` for every error of a command that does);
5. no parameter value may hold an ASCII control character (431, as CloudStack);
6. ``command.validate`` types the parameters (431 naming the parameter);
7. the handler runs, and its envelope is built, inside one ``cloud.db.transaction()``:
   whatever it raises rolls the whole change back. A unique key taken by a concurrent
   request in the meantime runs the command once more, so its own checks answer (431).

A ``StratoError`` becomes its own error envelope; any other exception is logged
with its stack trace and answered as 530 with a message that reveals nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import flask
from sqlalchemy.exc import IntegrityError

from core import roles
from core.access import Caller
from core.commands import ALL_PROJECTS, ApiCommand, CommandContext
from core.db import is_unique_violation
from core.errors import InternalError, InvalidParameterError, MethodNotAllowed, StratoError, UnsupportedError
from core.model import LoginSession

from . import auth, envelope, sessions, throttle
from .request import ApiRequest
from .table import CommandTable

log = logging.getLogger(__name__)

ALLOWED_METHODS = ("GET", "POST", "HEAD")
INTERNAL_ERROR_TEXT = "Internal error executing command, please contact your system administrator"


class RequestContext(CommandContext):
    """The ``CommandContext`` the native API gives handlers, with what only the API knows.

    ``commands`` is the command table (``listApis``), ``login_session`` the session the
    request came with (None for signed and anonymous requests), ``http_method`` the
    request's method, and ``cookies`` what the handler wants set on the reply, as
    ``(name, value, options)`` for ``flask.Response.set_cookie``; a value of None deletes.
    """

    def __init__(self, cloud, session, caller: Caller | None, command: ApiCommand, params: dict[str, Any], *,
                 commands: CommandTable, login_session: LoginSession | None, http_method: str):
        super().__init__(cloud, session, caller, command, params)
        self.commands = commands
        self.login_session = login_session
        self.http_method = http_method
        self.cookies: list[tuple[str, str | None, dict]] = []


class Dispatcher:
    """Answers requests for one cloud with one command table. Safe to share between threads."""

    def __init__(self, cloud, commands: CommandTable):
        self.cloud = cloud
        self.commands = commands
        self.throttle = throttle.Throttle()

    def __call__(self, http_request: flask.Request) -> flask.Response:
        started = time.monotonic()
        fmt = envelope.response_format(http_request.args.get("response"))
        request = command = None
        try:
            request = ApiRequest.from_flask(http_request)
            fmt = request.format
            command = self.commands.find(request.command)
            reply = self._answer(request, command)
        except StratoError as exc:
            reply = envelope.error(exc, envelope.error_response_name(command, exc), fmt)
        except Exception:  # a bug: the trace goes to the log, never to the client
            log.exception("internal error answering %r", request.command if request else None)
            exc = InternalError(INTERNAL_ERROR_TEXT)
            reply = envelope.error(exc, envelope.error_response_name(command, exc), fmt)
        log.info("%s %r -> %d (%.0f ms)", http_request.method, request.command if request else None, reply.status,
                 (time.monotonic() - started) * 1000)
        return _to_flask(reply)

    def _answer(self, request: ApiRequest, command: ApiCommand | None) -> envelope.Reply:
        if request.method not in ALLOWED_METHODS:
            raise MethodNotAllowed(f"HTTP method {request.method} is not supported by this URL; use GET or POST")
        if command is not None and command.lower_name in sessions.AUTHENTICATORS:
            return self._run(request, command, None, self._login_session_of(request))
        with self.cloud.db.transaction() as session:
            identity = auth.authenticate(session, request, self.cloud.settings.session_timeout_minutes)
            rate = throttle.settings(session, self.cloud.config)
            allowed = command is not None and roles.may_call(session, identity.caller, command)
        caller = identity.caller
        self.throttle.check(caller, rate)
        if not request.command:
            raise UnsupportedError("Invalid request, no command sent")
        if not allowed:
            raise UnsupportedError(f"The API [{request.command}] does not exist or is not available "
                                   f"for the account {caller.account_name}.")
        bad = request.control_character_param()
        if bad is not None:
            raise InvalidParameterError(
                f"Received value containing illegal ASCII non-printable characters for parameter {bad}")
        return self._run(request, command, caller, identity.login_session)

    def _run(self, request: ApiRequest, command: ApiCommand, caller: Caller | None,
             login_session: LoginSession | None) -> envelope.Reply:
        params = command.validate(request.command_params())
        try:
            return self._run_once(request, command, caller, login_session, params)
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            # A unique key a concurrent request took between this one's checks and its insert (the
            # checks could not see that uncommitted row): run once more, and the command's own
            # checks answer as they do for a sequential duplicate (431 naming what is taken).
            log.info("%s hit a unique key taken concurrently; running it again", command.name)
            return self._run_once(request, command, caller, login_session, params)

    def _run_once(self, request: ApiRequest, command: ApiCommand, caller: Caller | None,
                  login_session: LoginSession | None, params: dict[str, Any]) -> envelope.Reply:
        with self.cloud.db.transaction() as session:
            ctx = RequestContext(self.cloud, session, caller, command, params, commands=self.commands,
                                 login_session=login_session, http_method=request.method)
            # Acting in a project: its project role (-1, every project: owner_filter leaves out the denying ones).
            if params.get("projectid") not in (None, "", ALL_PROJECTS) and caller is not None:
                roles.check_project_role(session, caller, command.name, project_uuid=str(params["projectid"]))
            value = command.handler(ctx, params)
            # Built before the commit: a result that cannot be serialised rolls the change back.
            reply = envelope.result(command, value, request.format)
        reply.cookies.extend(ctx.cookies)
        return reply

    def _login_session_of(self, request: ApiRequest) -> LoginSession | None:
        """The live session a login/logout request names, by parameter or cookie (both only end it)."""
        key = request.get("sessionkey") or request.cookies.get(sessions.SESSION_COOKIE)
        with self.cloud.db.transaction() as session:
            return sessions.find_session(session, key, request.cookies)


def _to_flask(reply: envelope.Reply) -> flask.Response:
    response = flask.Response(reply.body, status=reply.status, content_type=reply.content_type)
    for name, value, options in reply.cookies:
        if value is None:
            response.delete_cookie(name, **options)
        else:
            response.set_cookie(name, value, **options)
    return response
