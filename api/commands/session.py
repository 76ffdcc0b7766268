"""``login`` and ``logout``: the session commands (CloudStack's APIAuthenticators).

Both run without authentication (see ``api.native.dispatch``); their handlers get
an ``api.native.dispatch.RequestContext`` with ``caller`` None.
"""

from __future__ import annotations

from core.commands import ALL_ROLES, P, api_command
from core.errors import MethodNotAllowed

from api.native import sessions
from api.native.envelope import UNWRAPPED

LOGIN_FIELDS = {
    "username": "Username", "userid": "User ID", "domainid": "Domain ID that the user belongs to",
    "timeout": "the time period before the session has expired", "account": "the account name the user belongs to",
    "firstname": "first name of the user", "lastname": "last name of the user",
    "type": "the account type (admin, domain-admin, read-only-admin, user)", "timezone": "user time zone",
    "timezoneoffset": "user time zoneoffset", "registered": "Is user registered",
    "sessionkey": "Session key that can be passed in subsequent Query command calls",
    "is2faenabled": "Is two factor authentication enabled", "is2faverified": "Is two factor authentication verified",
}


@api_command("login", response=UNWRAPPED, roles=ALL_ROLES, response_fields=LOGIN_FIELDS,
             description="Logs a user into the cloud. A successful login returns a session key (and sets it as "
                         "a cookie) to pass as sessionkey in later calls until logout or the session expires.",
             params={
                 "username": P.string("Username", required=True),
                 "password": P.string("Password", required=True, max_length=1024),
                 "domain": P.string("Path of the domain that the user belongs to, e.g. domain=/com/cloud/internal. "
                                    "If no domain is passed in, the ROOT (/) domain is assumed.", max_length=1024),
                 "domainid": P.string("The id of the domain that the user belongs to. If both domain and domainId "
                                      "are passed in, domainId takes precedence."),
             })
def login(ctx, p):
    """Opens a session for the user; 405 unless POST, 531 for wrong credentials (as CloudStack)."""
    if ctx.http_method != "POST":
        raise MethodNotAllowed("Please use HTTP POST to authenticate using this API")
    timeout = ctx.cloud.settings.session_timeout_minutes
    domain = sessions.find_domain(ctx.session, p.get("domainid"), p.get("domain"))
    user = sessions.check_password(ctx.session, p["username"], p["password"], domain, ctx.cloud.config)
    row = sessions.open_session(ctx.session, user, timeout)
    # A login replaces the session the client came with, as a new servlet session does.
    sessions.end_session(ctx.session, ctx.login_session)
    ctx.cookies.extend(sessions.login_cookies(user, row, timeout))
    return sessions.login_response(user, row, timeout)


@api_command("logout", response=UNWRAPPED, roles=ALL_ROLES,
             response_fields={"description": "success if the logout was successful"},
             description="Logs out the user: ends the session named by sessionkey (or its cookie).")
def logout(ctx, p):
    """Ends the request's session if it has one; succeeds either way, as CloudStack."""
    sessions.end_session(ctx.session, ctx.login_session)
    ctx.cookies.extend(sessions.logout_cookies())
    return {"description": "success"}
