"""Random requests: whatever comes in, out goes a well-formed envelope with a CloudStack code.

Command names, parameter names and values are drawn at random (unicode, control
characters, empty, huge), sent signed and unsigned, by GET and POST, as JSON and
XML. A 530 would mean a bug somewhere behind the API; it is reported as a failure
too, with the request that caused it.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.native import signing
from tests.api.test_native_support import app  # noqa: F401

CODES = {200, 401, 405, 429, 431, 432, 531, 532, 533, 534, 535, 536, 537}

known_commands = st.sampled_from(["listApis", "queryAsyncJobResult", "listAsyncJobs", "listCapabilities",
                                  "testEcho", "listTestThings", "login", "logout", "LISTAPIS"])
param_names = st.one_of(
    st.sampled_from(["jobid", "name", "page", "pagesize", "listall", "keyword", "startdate", "count", "flag",
                     "ids", "details[0].key", "details[99999999999999999999].key", "when", "text", "username",
                     "password", "domain", "domainid", "signatureVersion", "expires", "sessionkey"]),
    st.text(min_size=1, max_size=30),
)
values = st.one_of(
    st.text(max_size=60),
    st.text(max_size=8).map(lambda text: text * 3000),  # huge
    st.just(""),
    st.sampled_from(["0", "-1", "1" * 5000, "true", "2024-01-15T10:20:30+0000",
                     "00000000-0000-0000-0000-000000000000"]),
)
requests = st.fixed_dictionaries({
    "command": st.one_of(known_commands, st.text(max_size=40)),
    "params": st.dictionaries(param_names, values, max_size=6),
    "signed": st.booleans(),
    "method": st.sampled_from(["GET", "POST"]),
    "response": st.sampled_from(["json", "xml", None]),
})


def _check_json(response, request):
    body = json.loads(response.data)
    assert isinstance(body, dict) and len(body) == 1, body
    (name, value), = body.items()
    assert name.endswith("response") and isinstance(value, dict)
    if response.status_code != 200:
        assert value["errorcode"] == response.status_code and isinstance(value["cserrorcode"], int)
        assert isinstance(value["errortext"], str) and value["uuidList"] == []


def _check_xml(response, request):
    root = ET.fromstring(response.data)  # raises when not well-formed
    assert root.tag.endswith("response") and root.get("cloud-stack-version") == "4.19.0.0"
    if response.status_code != 200:
        assert root.find("errorcode").text == str(response.status_code)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(request=requests)
def test_any_request_gets_a_well_formed_envelope(admin, request):
    params = {k: v for k, v in request["params"].items() if k.lower() not in ("signature", "apikey", "response")}
    params["command"] = request["command"]
    if request["response"]:
        params["response"] = request["response"]
    if request["signed"]:
        params["apiKey"] = admin.api_key
        params["signature"] = signing.sign(params, admin.secret_key, "cs")
    if request["method"] == "GET":
        response = admin.http.get("/client/api", query_string=params)
    else:
        response = admin.http.post("/client/api", data=params)
    assert response.status_code in CODES, (response.status_code, response.data[:300], request)
    assert b"Traceback" not in response.data and b'File "' not in response.data
    if request["response"] == "json":
        assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
        _check_json(response, request)
    else:
        assert response.headers["Content-Type"] == "text/xml; charset=UTF-8"
        _check_xml(response, request)
