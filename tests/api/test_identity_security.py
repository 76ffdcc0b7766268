"""Security of the identity layer: login lock-out, the per-account API rate limit, constant-time
signature checks, and secrets kept out of what a real server logs."""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from api.native import signing, throttle
from tests.helpers import ApiClient, ApiError, sign


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kw)
    return info.value


def new_user(admin, app, username, password="right", **kw) -> ApiClient:
    account = admin("createAccount", username=username, password=password, email=f"{username}@example.com",
                    firstname=username, lastname="T", accounttype=0, **kw)["account"]
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    return ApiClient(app, keys["apikey"], keys["secretkey"])


def login(app, username, password):
    return app.test_client().post("/client/api", data={"command": "login", "username": username,
                                                       "password": password, "response": "json"})


def test_repeated_failed_logins_disable_the_user_until_an_admin_enables_it(admin, app):
    admin("updateConfiguration", name="incorrect.login.attempts.allowed", value="3")
    new_user(admin, app, "nina")
    assert login(app, "nina", "wrong").status_code == 531
    assert login(app, "nina", "right").status_code == 200, "a good login resets the count"
    for _ in range(3):
        assert login(app, "nina", "wrong").status_code == 531
    user = admin("listUsers", username="nina")["user"][0]
    assert user["state"] == "disabled"
    reply = login(app, "nina", "right")
    assert reply.status_code == 531, "locked out even with the right password"
    assert "Failed to authenticate user nina" in reply.get_json()["loginresponse"]["errortext"]
    admin("enableUser", id=user["id"])
    assert login(app, "nina", "right").status_code == 200
    assert login(app, "nina", "wrong").status_code == 531
    assert admin("listUsers", username="nina")["user"][0]["state"] == "enabled", "the count started again"


def test_the_default_admin_is_never_locked_out(admin, app):
    admin("updateConfiguration", name="incorrect.login.attempts.allowed", value="2")
    for _ in range(4):
        assert login(app, "admin", "guess").status_code == 531
    assert login(app, "admin", "password").status_code == 200


def test_the_api_rate_limit_answers_429_per_account(admin, app):
    olga = new_user(admin, app, "olga")
    pete = new_user(admin, app, "pete")
    for name, value in (("api.throttling.enabled", "true"), ("api.throttling.max", "3"),
                        ("api.throttling.interval", "60")):
        admin("updateConfiguration", name=name, value=value)
    for _ in range(3):
        olga("listZones")
    exc = error(olga, "listZones")
    assert exc.status == 429 and "api limit" in exc.body["errortext"] and exc.body["cserrorcode"] == 4545
    assert pete("listZones") == {}, "another account has its own window"
    for _ in range(10):
        admin("listZones")  # root admins are not throttled
    assert admin("listCapabilities")["capability"]["apilimitmax"] == 3


def test_a_throttle_window_ends_after_its_interval():
    now = [100.0]
    gate = throttle.Throttle(clock=lambda: now[0])
    rate = throttle.Rate(True, 2, 2)

    class Caller:
        account_id, is_root_admin = 7, False

    gate.check(Caller, rate)
    gate.check(Caller, rate)
    with pytest.raises(Exception) as info:
        gate.check(Caller, rate)
    assert getattr(info.value, "errorcode", None) == 429 and "retry after 2000 ms" in info.value.message
    now[0] += 2
    gate.check(Caller, rate)
    gate.check(Caller, throttle.Rate(False, 0, 0))  # off: never counted


def test_signatures_are_compared_in_constant_time(admin, monkeypatch):
    seen = []
    real = signing.hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", spy)
    admin("listZones")
    assert seen, "every signature variant goes through hmac.compare_digest"
    params = {"command": "listZones", "apiKey": admin.api_key, "response": "json"}
    assert signing.verify(params, admin.secret_key, "not-the-signature") is None


def test_a_real_server_logs_no_secrets(cloud, admin, caplog):
    from api.server import build_server

    server = build_server(cloud, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    secret = "Very-Secret-Pa55word"
    try:
        caplog.set_level(logging.DEBUG)
        params = {"command": "createAccount", "response": "json", "apiKey": admin.api_key, "username": "quinn",
                  "password": secret, "email": "q@example.com", "firstname": "Q", "lastname": "T",
                  "accounttype": "0"}
        params["signature"] = sign(params, admin.secret_key)
        url = f"http://127.0.0.1:{server.server_port}/client/api?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.status == 200
        login = urllib.parse.urlencode({"command": "login", "username": "quinn", "password": secret,
                                        "response": "json"}).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/client/api", login, timeout=10) as reply:
            key = reply.headers.get("Set-Cookie")
            assert reply.status == 200 and key
    finally:
        server.shutdown()
        thread.join(5)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "createAccount" in logged or "/client/api" in logged, "the requests were logged"
    assert secret not in logged and params["signature"] not in logged and admin.api_key not in logged
