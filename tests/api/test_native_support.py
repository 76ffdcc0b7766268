"""What the native API tests share: a plugin of test commands, users of each role, raw signed calls.

The plugin is registered the way a real one is (``cloud.plugins.register``) before
the app is made, so its commands go through the whole pipeline like any other.
The tests at the bottom check the command table's own rules.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import types
import urllib.parse

import pytest
import sqlalchemy as sa

from api.app import create_app
from api.native import signing
from core import hookimpl
from core.commands import ADMINS, ALL_ROLES, ROOT_ONLY, SUCCESS, P, api_command
from core.errors import ConfigurationError, InsufficientCapacityError, ResourceInUseError
from core.jobs import job_handler
from core.model import Account, AccountType, Configuration, Domain, Event, User
from core.passwords import hash_password, new_key
from tests.helpers import ApiClient

# -- the test commands ---------------------------------------------------------


def _touch(ctx, value: str) -> None:
    """A change the test can look for afterwards: a setting and an event."""
    ctx.cloud.config.set(ctx.session, "expunge.delay", value)
    ctx.event("TEST.TOUCH", f"touched {value}")


@api_command("testEcho", response="echo", roles=ALL_ROLES, response_fields={"name": "the name given"},
             description="Echoes its typed parameters",
             params={"name": P.string("a name", required=True, max_length=20), "count": P.integer("a count", minimum=1),
                     "flag": P.boolean("a flag"), "when": P.date("a date"), "ids": P.list("ids", item=P.uuid()),
                     "details": P.map("details"), "text": P.text("free text")})
def echo(ctx, p):
    return {**{k: v for k, v in p.items() if k != "when"}, "when": p.get("when"), "nothing": None,
            "caller": ctx.caller.username,
            "nested": {"a": 1, "items": [{"x": 1}, {"x": 2}], "tags": ["t1", "t2"], "empty": []}}


THINGS = [{"id": f"thing-{i}", "name": f"Thing {i}"} for i in range(1, 4)]


@api_command("listTestThings", response="thing", is_list=True, roles=ALL_ROLES, description="Lists three things",
             params={"none": P.boolean("list nothing")})
def list_things(ctx, p):
    if p.get("none"):
        return 0, []
    size, page = p.get("pagesize") or 500, p.get("page") or 1
    return len(THINGS), THINGS[(page - 1) * size:page * size]


@api_command("testSuccess", response="success", roles=ALL_ROLES, description="Succeeds")
def succeed(ctx, p):
    _touch(ctx, "11")
    return SUCCESS


@api_command("testRootOnly", response="success", roles=ROOT_ONLY, description="Only root admins")
def root_only(ctx, p):
    return SUCCESS


@api_command("testAdminsOnly", response="success", roles=ADMINS, description="Only admins")
def admins_only(ctx, p):
    return SUCCESS


@api_command("testBoom", response="success", roles=ALL_ROLES, description="Changes something, then has a bug")
def boom(ctx, p):
    _touch(ctx, "12")
    raise RuntimeError("secret internals at /etc/strato/db.password")


@api_command("testInUse", response="success", roles=ALL_ROLES, description="Changes something, then refuses")
def in_use(ctx, p):
    _touch(ctx, "13")
    raise ResourceInUseError("the thing is in use")


@api_command("testBadResult", response="thing", roles=ALL_ROLES, description="Returns what no envelope can hold")
def bad_result(ctx, p):
    _touch(ctx, "14")
    return {"value": object()}


@api_command("testAsync", response="echo", is_async=True, roles=ALL_ROLES, description="Echoes, later",
             params={"text": P.string("what to echo"), "fail": P.boolean("fail the job"),
                     "instance": P.uuid("the instance the job is about")})
def async_echo(ctx, p):
    instance = types.SimpleNamespace(uuid=p["instance"]) if p.get("instance") else None
    return ctx.start_job("api-tests.echo", {"text": p.get("text", ""), "fail": p.get("fail", False)},
                         instance=instance, instance_type="VirtualMachine" if instance else None)


@job_handler("api-tests.echo")
def _echo_job(job):
    if job.params.get("fail"):
        raise InsufficientCapacityError("no host has room for the echo")
    return {"echo": {"text": job.params["text"]}}


class CommandsPlugin:
    """The plugin: one hook implementation handing over the commands above."""

    @hookimpl
    def strato_api_commands(self):
        return [echo, list_things, succeed, root_only, admins_only, boom, in_use, bad_result, async_echo]


def app_with_test_commands(cloud):
    cloud.plugins.register(CommandsPlugin(), "api-tests")
    return create_app(cloud)


@pytest.fixture
def app(cloud):
    """Overrides conftest's ``app``: the same app, with the test commands' plugin registered first."""
    return app_with_test_commands(cloud)


def module_fixtures():
    """``cloud`` and ``app`` fixtures shared by all tests of a module (import both into it).

    For modules whose tests do not depend on each other's data: a cloud takes most
    of a second to make, a request a few milliseconds. The cloud is made as
    conftest's ``cloud`` makes it.
    """

    @pytest.fixture(scope="module")
    def cloud(db_backend, tmp_path_factory):
        from core.cloud import Cloud
        from core.config import Settings

        settings = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=db_backend.fresh())
        shared = Cloud(settings, migrate=False)
        shared.start()
        yield shared
        shared.close()

    @pytest.fixture(scope="module")
    def app(cloud):
        return app_with_test_commands(cloud)

    return cloud, app


# -- users -----------------------------------------------------------------------


def make_domain(cloud, name: str, parent_path: str = "/") -> str:
    """A domain below the one at ``parent_path``; returns its uuid."""
    with cloud.db.transaction() as session:
        parent = session.scalars(sa.select(Domain).where(Domain.path == parent_path)).one()
        domain = Domain(name=name, parent_id=parent.id, path=f"{parent_path}{name}/", level=parent.level + 1)
        session.add(domain)
        session.flush()
        return domain.uuid


def make_user(app, cloud, username: str, *, account_type: int = AccountType.USER, domain_path: str = "/",
              password: str = "secret", account: str | None = None, with_keys: bool = True) -> ApiClient | None:
    """An enabled account (named ``account`` or after the user) with one user; its signed client."""
    with cloud.db.transaction() as session:
        domain = session.scalars(sa.select(Domain).where(Domain.path == domain_path)).one()
        owner = session.scalars(sa.select(Account).where(Account.name == (account or username),
                                                         Account.domain_id == domain.id)).one_or_none()
        if owner is None:
            owner = Account(name=account or username, account_type=account_type, domain_id=domain.id)
            session.add(owner)
            session.flush()
        user = User(username=username, password_hash=hash_password(password), account_id=owner.id,
                    domain_id=domain.id, firstname=username.title(), lastname="Tester",
                    api_key=new_key() if with_keys else None, secret_key=new_key() if with_keys else None)
        session.add(user)
        session.flush()
        keys = user.api_key, user.secret_key
    return ApiClient(app, *keys) if with_keys else None


def set_state(cloud, *, username: str | None = None, account: str | None = None, state: str) -> None:
    with cloud.db.transaction() as session:
        if username:
            session.execute(sa.update(User).where(User.username == username).values(state=state))
        if account:
            session.execute(sa.update(Account).where(Account.name == account).values(state=state))


def setting(cloud, name: str) -> str:
    with cloud.db.transaction() as session:
        return session.get(Configuration, name).value


def event_count(cloud) -> int:
    with cloud.db.transaction() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Event))


# -- raw calls -------------------------------------------------------------------


def signed(client: ApiClient, command: str, *, variant: str = "cs", v3: dt.timedelta | None = None,
           expires: str | None = None, response: str | None = "json", **params) -> dict[str, str]:
    """The parameters of a call signed the way ``variant``'s client signs, optionally version 3."""
    query = {"command": command, "apiKey": client.api_key, **{k: str(v) for k, v in params.items()}}
    if response is not None:
        query["response"] = response
    if v3 is not None or expires is not None:
        query["signatureVersion"] = "3"
        query["expires"] = expires or (dt.datetime.now(dt.timezone.utc) + v3).strftime("%Y-%m-%dT%H:%M:%S%z")
    query["signature"] = signing.sign(query, client.secret_key, variant)
    return query


def get(client: ApiClient, params: dict[str, str]):
    """A GET with the parameters encoded as a browser or ``requests`` would."""
    return client.http.get("/client/api?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote))


def body_of(response) -> tuple[str, dict]:
    """The one top-level key of a JSON envelope and its value."""
    (key, value), = json.loads(response.data).items()
    return key, value


def wait_for_job(client: ApiClient, job_id: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = client("queryAsyncJobResult", jobid=job_id)
        if result["jobstatus"] != 0:
            return result
        time.sleep(0.02)
    raise TimeoutError(job_id)


# -- the command table -------------------------------------------------------------


def test_plugin_commands_join_the_table(admin):
    names = {api["name"] for api in admin("listApis")["api"]}
    assert {"testEcho", "listTestThings", "login", "logout", "listApis", "queryAsyncJobResult"} <= names


def test_a_plugin_command_clashing_with_a_builtin_stops_creation(cloud):
    clash = api_command("LISTAPIS", response="api", description="a second listApis")(lambda ctx, p: SUCCESS)

    class Clashing:
        @hookimpl
        def strato_api_commands(self):
            return [clash]

    cloud.plugins.register(Clashing(), "clashing")
    with pytest.raises(ConfigurationError, match="LISTAPIS.*clashes with 'listApis'"):
        create_app(cloud)


def test_the_same_command_from_two_places_is_one_command(cloud):
    class Twice:
        @hookimpl
        def strato_api_commands(self):
            return [echo, echo]

    cloud.plugins.register(Twice(), "twice")
    app = create_app(cloud)
    assert app.extensions["strato"]["commands"].find("testecho") is echo
