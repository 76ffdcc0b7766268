"""Request signatures, signed exactly as each real client signs them.

cs and libcloud sign with their own code (``cs.client.CloudStack._sign``,
``CloudStackConnection._make_signature``); cmk's Go signer is rewritten here from
its source (``url.QueryEscape``, ``sort.Strings``), and CloudStack's server-side
string from ``java.net.URLEncoder``'s rules, independently of ``api.native.signing``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import urllib.parse

import pytest
from cs.client import CloudStack
from libcloud.common.cloudstack import CloudStackConnection

from api.native import signing
from tests.api.test_native_support import body_of, get, make_user, module_fixtures, set_state, signed

cloud, app = module_fixtures()

TRICKY_VALUES = [
    "plain",
    "two words",
    "star*and*more",
    "brackets[0].x",
    "plus+sign",
    "tilde~here",
    "ümlaut and 日本語 and emoji 🎉",
    "a&b=c%d/e?f#g",
    "",
]


def _hmac(query: str, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), query.lower().encode(), hashlib.sha1).digest()).decode()


def _go_query_escape(text: str) -> str:
    """Go's url.QueryEscape: unreserved bytes stay, a space becomes '+', the rest %XX."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char.isascii() and (char.isalnum() or char in "-_.~"):
            out.append(char)
        elif char == " ":
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def cmk_signature(params: dict[str, str], secret: str) -> str:
    """cmk's cmd/network.go: sort.Strings(keys), QueryEscape(value), lowercase, '+' -> '%20'."""
    query = "&".join(f"{k}={_go_query_escape(params[k])}" for k in sorted(params, key=lambda k: k.encode()))
    return _hmac(query.lower().replace("+", "%20"), secret)


def _java_url_encode(text: str) -> str:
    """java.net.URLEncoder.encode(text, UTF-8): a-zA-Z0-9 . - * _ stay, space '+', the rest %XX."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char.isascii() and (char.isalnum() or char in ".-*_"):
            out.append(char)
        elif char == " ":
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def cloudstack_signature(params: dict[str, str], secret: str) -> str:
    """ApiServer.verifyRequest's own string: names as sent and sorted, URLEncoder values, '+' -> %20."""
    query = "&".join(f"{k}={_java_url_encode(params[k]).replace('+', '%20')}" for k in sorted(params))
    return _hmac(query, secret)


def cs_signature(params: dict[str, str], secret: str) -> str:
    signable = dict(params)
    CloudStack(endpoint="http://unused", key="unused", secret=secret)._sign(signable)
    return signable["signature"]


def libcloud_signature(params: dict[str, str], secret: str) -> str:
    connection = CloudStackConnection(user_id="unused", key=secret)
    return connection._make_signature(dict(params)).decode()


SIGNERS = {"cs": cs_signature, "libcloud": libcloud_signature, "cmk": cmk_signature,
           "cloudstack": cloudstack_signature}


def _call(client, signer, method: str = "GET", **extra):
    params = {"command": "testEcho", "response": "json", "apiKey": client.api_key, **extra}
    params["signature"] = SIGNERS[signer](params, client.secret_key)
    if method == "GET":
        return get(client, params)
    return client.http.post("/client/api", data=params)


@pytest.mark.parametrize("signer", sorted(SIGNERS))
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_each_clients_signature_is_accepted_for_tricky_values(admin, signer, method):
    for value in TRICKY_VALUES:
        response = _call(admin, signer, method, name="n", text=value)
        assert response.status_code == 200, (value, response.data)
        assert body_of(response)[1]["echo"]["text" if value else "name"] == (value or "n")


def test_the_variants_really_differ_on_tricky_values():
    """Without this, accepting each variant would prove nothing."""
    params = {"command": "testEcho", "apiKey": "k", "Text": "a*b ~[0]", "name": "x"}
    strings = signing.canonical_strings(params)
    assert len(set(strings.values())) == 4
    assert {name: signing.compute(query, "s") for name, query in strings.items()} == {
        name: signer(params, "s") for name, signer in SIGNERS.items()}


def test_mixed_case_names_sort_as_each_client_sorts_them(admin):
    # "Zeta" sorts before "alpha" for cs and cmk (code points), after it for libcloud (lowercased).
    for signer in SIGNERS:
        response = _call(admin, signer, name="n", Zeta="1", alpha="2")
        assert response.status_code == 200, (signer, response.data)


def test_a_signature_whose_plus_arrived_as_a_space_still_verifies(admin):
    for _ in range(20):  # find a signature holding a '+'
        params = signed(admin, "testEcho", name="n", text=f"x{_}")
        if "+" in params["signature"]:
            break
    assert "+" in params["signature"]
    query = "&".join(f"{k}={urllib.parse.quote(v, safe='+')}" for k, v in params.items())
    assert admin.http.get("/client/api?" + query).status_code == 200


# -- version 3 -------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["+0000", "Z", "+00:00"])
def test_v3_with_future_expiry_is_accepted(admin, zone):
    expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)).strftime(f"%Y-%m-%dT%H:%M:%S{zone}")
    response = get(admin, signed(admin, "testEcho", name="n", expires=expires))
    assert response.status_code == 200, response.data


@pytest.mark.parametrize("expires", [
    (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S+0000"),
    "2030-01-01 10:00:00",      # no zone
    "tomorrow",
    "2030-13-01T10:00:00+0000",  # no such month
])
def test_v3_with_past_or_malformed_expiry_is_refused(admin, expires):
    response = get(admin, signed(admin, "testEcho", name="n", expires=expires))
    assert response.status_code == 401
    assert body_of(response) == ("testechoresponse", {
        "uuidList": [], "errorcode": 401, "cserrorcode": 4290,
        "errortext": "unable to verify user credentials and/or request signature"})


def test_v3_without_expires_is_refused(admin):
    params = {"command": "testEcho", "name": "n", "response": "json", "apiKey": admin.api_key,
              "signatureVersion": "3"}
    params["signature"] = cs_signature(params, admin.secret_key)
    assert get(admin, params).status_code == 401


def test_expires_without_v3_is_just_a_signed_parameter(admin):
    params = {"command": "testEcho", "name": "n", "response": "json", "apiKey": admin.api_key,
              "expires": "2000-01-01T00:00:00+0000"}
    params["signature"] = cs_signature(params, admin.secret_key)
    assert get(admin, params).status_code == 200


# -- refusals ----------------------------------------------------------------------------


def test_wrong_secret_is_refused(admin):
    params = {"command": "testEcho", "name": "n", "response": "json", "apiKey": admin.api_key}
    params["signature"] = cs_signature(params, "not-the-secret")
    assert get(admin, params).status_code == 401


def test_unknown_api_key_is_refused(admin):
    params = {"command": "testEcho", "name": "n", "response": "json", "apiKey": "no-such-key"}
    params["signature"] = cs_signature(params, admin.secret_key)
    assert get(admin, params).status_code == 401


def test_a_parameter_changed_after_signing_is_refused(admin):
    params = signed(admin, "testEcho", name="n")
    params["name"] = "m"
    assert get(admin, params).status_code == 401


@pytest.mark.parametrize("drop", ["apiKey", "signature"])
def test_missing_key_or_signature_is_refused(admin, drop):
    params = signed(admin, "testEcho", name="n")
    del params[drop]
    assert get(admin, params).status_code == 401


def test_no_credentials_at_all_is_refused_naming_the_command_or_errorresponse(app):
    client = app.test_client()
    known = client.get("/client/api", query_string={"command": "listApis", "response": "json"})
    unknown = client.get("/client/api", query_string={"command": "noSuchThing", "response": "json"})
    assert (known.status_code, body_of(known)[0]) == (401, "listapisresponse")
    assert (unknown.status_code, body_of(unknown)[0]) == (401, "errorresponse")


def test_disabled_user_or_account_is_refused(app, cloud):
    alice = make_user(app, cloud, "alice")
    assert get(alice, signed(alice, "testEcho", name="n")).status_code == 200
    set_state(cloud, username="alice", state="disabled")
    assert get(alice, signed(alice, "testEcho", name="n")).status_code == 401
    set_state(cloud, username="alice", state="enabled")
    set_state(cloud, account="alice", state="locked")
    assert get(alice, signed(alice, "testEcho", name="n")).status_code == 401


# -- the pure functions ------------------------------------------------------------------


def test_verify_names_the_matching_variant():
    params = {"command": "x", "apiKey": "k", "v": "a b*"}
    for variant in signing.VARIANTS:
        assert signing.verify(params, "s", signing.sign(params, "s", variant)) is not None
    assert signing.verify(params, "s", "bm90IGl0") is None
    assert signing.verify(params, "s", "ünicode-garbage") is None


def test_parse_expires():
    assert signing.parse_expires("2024-01-15T10:20:30+0000") == dt.datetime(2024, 1, 15, 10, 20, 30,
                                                                            tzinfo=dt.timezone.utc)
    assert signing.parse_expires("2024-01-15T10:20:30.250Z").microsecond == 250000
    assert signing.parse_expires("2024-01-15T12:20:30+0200").astimezone(dt.timezone.utc).hour == 10
    assert signing.parse_expires("2024-01-15T10:20:30") is None
