"""login, the session key, logout, expiry: the flows cmk and browsers use."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
import sqlalchemy as sa

from api.native import sessions
from core.model import LoginSession, utcnow
from tests.api.test_native_support import body_of, make_domain, make_user, module_fixtures, set_state

cloud, app = module_fixtures()

FAILED = "Failed to authenticate user {user} in domain {domain}; please provide valid credentials"


def login(client, **params):
    return client.post("/client/api", data={"command": "login", "response": "json", **params})


def call(client, sessionkey, command="testEcho", **params):
    return client.get("/client/api", query_string={"command": command, "response": "json",
                                                   "sessionkey": sessionkey, **params})


def root_uuid(cloud) -> str:
    from core.model import Domain

    with cloud.db.transaction() as session:
        return session.scalar(sa.select(Domain.uuid).where(Domain.path == "/"))


def test_login_answers_loginresponse_and_sets_the_cookies(app, cloud):
    client = app.test_client()
    response = login(client, username="admin", password="password")
    assert response.status_code == 200
    key, body = body_of(response)
    assert key == "loginresponse"
    assert body["username"] == "admin" and body["account"] == "admin" and body["type"] == "1"
    assert body["timeout"] == cloud.settings.session_timeout_minutes * 60
    assert body["domainid"] == root_uuid(cloud)
    assert {"userid", "firstname", "lastname", "registered", "sessionkey"} <= set(body)
    cookies = {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}
    assert {"sessionkey", "JSESSIONID", "userid", "account", "domainid", "role", "username"} <= set(cookies)
    assert f"sessionkey={body['sessionkey']};" in cookies["sessionkey"] and "HttpOnly" in cookies["sessionkey"]
    assert "HttpOnly" in cookies["JSESSIONID"] and "HttpOnly" not in cookies["userid"]
    with cloud.db.transaction() as session:
        row = session.scalars(sa.select(LoginSession).where(LoginSession.session_key == body["sessionkey"])).one()
        expected = utcnow() + dt.timedelta(minutes=cloud.settings.session_timeout_minutes)
        assert abs((row.expires - expected).total_seconds()) < 5


def test_the_session_key_authenticates_later_calls(app):
    client = app.test_client()
    key = body_of(login(client, username="admin", password="password"))[1]["sessionkey"]
    response = call(client, key, name="n")  # the test client sends the cookies back, as a browser
    assert response.status_code == 200
    assert body_of(response)[1]["echo"]["caller"] == "admin"
    fresh = app.test_client()  # cmk-like: only the parameter
    assert call(fresh, key, name="n").status_code == 200


def test_a_cookie_alone_does_not_authenticate(app):
    client = app.test_client()
    login(client, username="admin", password="password")
    response = client.get("/client/api", query_string={"command": "testEcho", "name": "n", "response": "json"})
    assert response.status_code == 401


def test_a_cookie_of_another_session_is_refused(app):
    first, second = app.test_client(), app.test_client()
    login(first, username="admin", password="password")
    other_key = body_of(login(second, username="admin", password="password"))[1]["sessionkey"]
    response = call(first, other_key, name="n")  # first's cookies name a different session
    assert response.status_code == 401
    assert body_of(response)[1]["errortext"] == "unable to verify user credentials"


@pytest.mark.parametrize("username,password", [("admin", "wrong"), ("nobody", "password"), ("system", "!")])
def test_wrong_credentials_are_refused_as_cloudstack_does(app, cloud, username, password):
    # CloudStack's DefaultLoginAPIAuthenticatorCmd answers ACCOUNT_ERROR (531), not 401.
    response = login(app.test_client(), username=username, password=password)
    assert response.status_code == 531
    assert body_of(response) == ("loginresponse", {
        "uuidList": [], "errorcode": 531, "cserrorcode": 4365,
        "errortext": FAILED.format(user=username, domain=root_uuid(cloud))})
    assert "Set-Cookie" not in response.headers


def test_login_by_get_is_refused(app):
    response = app.test_client().get("/client/api", query_string={
        "command": "login", "username": "admin", "password": "password", "response": "json"})
    assert response.status_code == 405
    assert body_of(response)[1]["errortext"] == "Please use HTTP POST to authenticate using this API"


def test_login_without_password_names_the_parameter(app):
    response = login(app.test_client(), username="admin")
    assert response.status_code == 431
    assert "missing parameter password" in body_of(response)[1]["errortext"]


def test_login_in_a_child_domain_by_path(app, cloud):
    make_domain(cloud, "eng")
    make_user(app, cloud, "bob", domain_path="/eng/", password="pw")
    for domain in ["/eng/", "eng", "/eng", "ROOT/eng", "/ROOT/eng/"]:
        assert login(app.test_client(), username="bob", password="pw", domain=domain).status_code == 200, domain
    assert login(app.test_client(), username="bob", password="pw").status_code == 531  # not in ROOT


def test_login_by_domain_id(app, cloud):
    ops = make_domain(cloud, "ops")
    make_user(app, cloud, "otto", domain_path="/ops/", password="pw")
    assert login(app.test_client(), username="otto", password="pw", domainId=ops).status_code == 200
    bad = login(app.test_client(), username="otto", password="pw", domainid="not-a-domain")
    assert (bad.status_code, body_of(bad)[1]["errortext"]) == (
        401, "Invalid domain id entered, please enter a valid one")
    missing = login(app.test_client(), username="otto", password="pw", domain="/nowhere/")
    assert (missing.status_code, body_of(missing)[1]["errortext"]) == (
        531, "Unable to find the domain from the path /nowhere/")


def test_login_of_a_disabled_user_is_refused(app, cloud):
    make_user(app, cloud, "carol", password="pw")
    set_state(cloud, username="carol", state="disabled")
    assert login(app.test_client(), username="carol", password="pw").status_code == 531


def test_a_disabled_users_session_stops_working(app, cloud):
    make_user(app, cloud, "dave", password="pw")
    client = app.test_client()
    key = body_of(login(client, username="dave", password="pw"))[1]["sessionkey"]
    assert call(client, key, name="n").status_code == 200
    set_state(cloud, account="dave", state="disabled")
    assert call(client, key, name="n").status_code == 401


def test_an_expired_session_is_refused(app, cloud):
    client = app.test_client()
    key = body_of(login(client, username="admin", password="password"))[1]["sessionkey"]
    with cloud.db.transaction() as session:
        session.execute(sa.update(LoginSession).where(LoginSession.session_key == key)
                        .values(expires=utcnow() - dt.timedelta(seconds=1)))
    response = call(client, key, name="n")
    assert (response.status_code, body_of(response)[0]) == (401, "testechoresponse")


def test_use_moves_the_expiry(app, cloud):
    client = app.test_client()
    key = body_of(login(client, username="admin", password="password"))[1]["sessionkey"]
    soon = utcnow() + dt.timedelta(minutes=2)
    with cloud.db.transaction() as session:
        session.execute(sa.update(LoginSession).where(LoginSession.session_key == key).values(expires=soon))
    assert call(client, key, name="n").status_code == 200
    with cloud.db.transaction() as session:
        moved = session.scalar(sa.select(LoginSession.expires).where(LoginSession.session_key == key))
        assert moved > soon + dt.timedelta(minutes=10)


def test_logout_ends_the_session_and_clears_the_cookies(app, cloud):
    client = app.test_client()
    key = body_of(login(client, username="admin", password="password"))[1]["sessionkey"]
    response = client.get("/client/api", query_string={"command": "logout", "response": "json", "sessionkey": key})
    assert response.status_code == 200
    assert body_of(response) == ("logoutresponse", {"description": "success"})
    cleared = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("sessionkey=")]
    assert cleared and "Max-Age=0" in cleared[0]
    assert call(app.test_client(), key, name="n").status_code == 401
    with cloud.db.transaction() as session:
        assert session.scalar(sa.select(LoginSession.id).where(LoginSession.session_key == key)) is None


def test_logout_without_a_session_still_succeeds(app):
    response = app.test_client().get("/client/api", query_string={"command": "logout", "response": "json"})
    assert (response.status_code, body_of(response)[1]) == (200, {"description": "success"})


def test_a_second_login_replaces_the_first_sessions_of_that_client(app, cloud):
    client = app.test_client()
    first = body_of(login(client, username="admin", password="password"))[1]["sessionkey"]
    second = body_of(login(client, username="admin", password="password"))[1]["sessionkey"]
    assert call(app.test_client(), first, name="n").status_code == 401
    assert call(app.test_client(), second, name="n").status_code == 200


def test_login_in_xml(app):
    response = app.test_client().post("/client/api", data={"command": "login", "username": "admin",
                                                           "password": "password"})
    root = ET.fromstring(response.data)
    assert root.tag == "loginresponse" and root.find("sessionkey").text and root.find("username").text == "admin"


def test_session_helpers():
    assert sessions.normalise_path(None) == "/"
    assert sessions.normalise_path("ROOT") == "/"
    assert sessions.normalise_path("a/b") == "/a/b/"
    assert sessions.jsessionid("k") == sessions.jsessionid("k") != sessions.jsessionid("l")


@pytest.mark.parametrize("param", ["sessionkey", "apiKey"])
def test_a_key_with_a_control_character_is_401_on_every_database(app, param):
    # PostgreSQL refuses a NUL in a query: the lookup must not reach the database (it answered 530)
    client = app.test_client()
    query = {"command": "listApis", "response": "json", param: "abc\x00def", "signature": "x"}
    response = client.get("/client/api", query_string=query)
    assert response.status_code == 401, response.data
