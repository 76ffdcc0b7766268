"""The request pipeline: methods, command lookup, roles, parameters, transactions, failures."""

from __future__ import annotations

import logging
import urllib.parse
import uuid

import pytest

from api.native import signing
from core.model import AccountType
from tests.api.test_native_support import (
    body_of, event_count, get, make_domain, make_user, module_fixtures, setting, signed,
)

cloud, app = module_fixtures()

UNAVAILABLE = "The API [{name}] does not exist or is not available for the account {account}."


def test_an_unknown_command_is_432_errorresponse(admin):
    response = admin.raw("listNothingAtAll")
    assert response.status_code == 432
    assert body_of(response) == ("errorresponse", {
        "uuidList": [], "errorcode": 432, "cserrorcode": 4390,
        "errortext": UNAVAILABLE.format(name="listNothingAtAll", account="admin")})
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"


def test_no_command_is_432(admin):
    params = signed(admin, "x")
    del params["command"]
    params["signature"] = signing.sign(params, admin.secret_key)
    response = get(admin, params)
    assert (response.status_code, body_of(response)[1]["errortext"]) == (432, "Invalid request, no command sent")


def test_command_names_are_found_in_any_case(admin):
    response = admin.raw("TESTecho", name="n")
    assert response.status_code == 200
    assert body_of(response)[0] == "testechoresponse"


def test_roles_decide_who_may_call_what(app, cloud, admin):
    make_domain(cloud, "eng")
    user = make_user(app, cloud, "ursula")
    domain_admin = make_user(app, cloud, "dora", account_type=AccountType.DOMAIN_ADMIN, domain_path="/eng/")
    assert admin.raw("testRootOnly").status_code == 200
    assert domain_admin.raw("testAdminsOnly").status_code == 200
    assert user.raw("testEcho", name="n").status_code == 200
    for client, command, account in [(user, "testRootOnly", "ursula"), (domain_admin, "testRootOnly", "dora"),
                                     (user, "testAdminsOnly", "ursula")]:
        response = client.raw(command)
        # the text an unknown command gets; the envelope is named after the command, as CloudStack's
        assert response.status_code == 432
        assert body_of(response) == (f"{command.lower()}response", {
            "uuidList": [], "errorcode": 432, "cserrorcode": 4390,
            "errortext": UNAVAILABLE.format(name=command, account=account)})


def test_a_missing_parameter_is_431_naming_it(admin):
    response = admin.raw("testEcho")
    assert response.status_code == 431
    assert body_of(response) == ("testechoresponse", {
        "uuidList": [], "errorcode": 431, "cserrorcode": 4350,
        "errortext": "Unable to execute API command testecho due to missing parameter name"})


@pytest.mark.parametrize("param,value", [("count", "many"), ("count", "0"), ("name", "x" * 21), ("flag", "perhaps"),
                                         ("ids", "not-a-uuid"), ("when", "yesterday"), ("details", "flat")])
def test_an_invalid_parameter_is_431_naming_it(admin, param, value):
    response = admin.raw("testEcho", **{"name": "n", param: value})
    assert response.status_code == 431
    text = body_of(response)[1]["errortext"]
    assert text.startswith(f"Unable to execute API command testecho due to invalid value for parameter {param}:")


def test_parameters_arrive_typed(admin):
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    echo = admin("testEcho", name="n", count="3", flag="TRUE", ids=",".join(ids), unknown="ignored",
                 **{"details[0].key": "a", "details[0].value": "b", "details[1].key": "c"})["echo"]
    assert echo["count"] == 3 and echo["flag"] is True and echo["ids"] == ids
    assert echo["details"] == [{"key": "a", "value": "b"}, {"key": "c"}]
    assert "unknown" not in echo and "apikey" not in echo and "signature" not in echo


def test_a_control_character_in_a_value_is_431(admin):
    response = admin.raw("testEcho", name="n", text="tab\there")
    assert response.status_code == 431
    assert body_of(response)[1]["errortext"] == (
        "Received value containing illegal ASCII non-printable characters for parameter text")
    assert admin.raw("testEcho", name="n", text="line\nbreak\r\n").status_code == 200


def test_get_and_post_give_the_same_answer(admin):
    assert admin.raw("testEcho", "GET", name="n", count=2).data == admin.raw("testEcho", "POST", name="n", count=2).data


def test_query_and_form_parameters_merge_and_the_query_wins(admin):
    params = signed(admin, "testEcho", name="from-query", count="2")
    query = {k: params[k] for k in ("command", "apiKey", "signature", "response", "name")}
    form = {"count": params["count"], "name": "from-form"}
    # the signature covers the merged parameters, in which name is the query's
    response = admin.http.post("/client/api?" + urllib.parse.urlencode(query), data=form)
    assert response.status_code == 200, response.data
    echo = body_of(response)[1]["echo"]
    assert (echo["name"], echo["count"]) == ("from-query", 2)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405_envelopes(app, method):
    response = app.test_client().open("/client/api?command=listApis&response=json", method=method)
    assert response.status_code == 405
    assert body_of(response)[0] == "listapisresponse"
    assert body_of(response)[1]["errorcode"] == 405
    xml = app.test_client().open("/client/api?command=listApis", method=method)
    assert xml.status_code == 405 and xml.data.startswith(b'<?xml version="1.0" encoding="UTF-8"?><listapisresponse')


def test_a_change_is_committed_with_its_success(admin, cloud):
    before = event_count(cloud)
    assert admin("testSuccess") == {"success": True}
    assert setting(cloud, "expunge.delay") == "11" and event_count(cloud) == before + 1


def test_a_bug_is_530_without_its_trace_and_changes_nothing(admin, cloud, caplog):
    before = setting(cloud, "expunge.delay"), event_count(cloud)
    with caplog.at_level(logging.ERROR, logger="api.native.dispatch"):
        response = admin.raw("testBoom")
    assert response.status_code == 530
    assert body_of(response) == ("testboomresponse", {
        "uuidList": [], "errorcode": 530, "cserrorcode": 4250,
        "errortext": "Internal error executing command, please contact your system administrator"})
    assert b"secret" not in response.data and b"Traceback" not in response.data
    assert (setting(cloud, "expunge.delay"), event_count(cloud)) == before
    assert "secret internals" in caplog.text and "Traceback" in caplog.text  # the log has it all


def test_a_strato_error_keeps_its_code_and_rolls_back(admin, cloud):
    before = setting(cloud, "expunge.delay"), event_count(cloud)
    response = admin.raw("testInUse")
    assert response.status_code == 536
    assert body_of(response)[1]["errortext"] == "the thing is in use"
    assert (setting(cloud, "expunge.delay"), event_count(cloud)) == before


def test_a_result_no_envelope_can_hold_is_530_and_rolls_back(admin, cloud):
    before = setting(cloud, "expunge.delay")
    response = admin.raw("testBadResult")
    assert response.status_code == 530
    assert setting(cloud, "expunge.delay") == before


def test_a_body_too_big_to_read_is_431_not_a_crash(admin):
    response = admin.http.post("/client/api?response=json&command=testEcho", data={"text": "x" * (9 * 1024 * 1024)})
    assert response.status_code == 431
    assert body_of(response)[1]["errortext"].startswith("Unable to read the request parameters")


def test_a_map_index_too_long_for_int_is_431(admin):
    """Regression: int() of a 5000-digit index raised ValueError and answered 530."""
    response = admin.raw("testEcho", name="n", **{"details[" + "1" * 5000 + "].key": "v"})
    assert body_of(response)[1]["errorcode"] == 431
