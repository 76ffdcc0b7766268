"""Envelope shapes, JSON and XML, as CloudStack's ApiResponseSerializer writes them."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET

import pytest

from api.native import envelope, signing
from api.native.envelope import JSON, UNWRAPPED, XML
from core.commands import SUCCESS, api_command
from core.errors import InvalidParameterError, UnsupportedError
from core.jobs import JobHandle
from tests.api.test_native_support import module_fixtures

cloud, app = module_fixtures()

list_zones = api_command("listZones", response="zone", is_list=True)(lambda ctx, p: None)
create_zone = api_command("createZone", response="zone")(lambda ctx, p: None)
delete_zone = api_command("deleteZone", response="success")(lambda ctx, p: None)
query_job = api_command("queryAsyncJobResult", response=UNWRAPPED)(lambda ctx, p: None)
deploy = api_command("deployVirtualMachine", response="virtualmachine", is_async=True)(lambda ctx, p: None)


def as_json(reply: envelope.Reply):
    assert reply.content_type == "application/json; charset=UTF-8"
    return json.loads(reply.body)


def as_xml(reply: envelope.Reply) -> ET.Element:
    assert reply.content_type == "text/xml; charset=UTF-8"
    assert reply.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(reply.body)
    assert root.get("cloud-stack-version") == "4.19.0.0"
    return root


ZONE = {"id": "z1", "name": "Zone 1", "tags": [], "removed": None}


def test_list():
    assert as_json(envelope.result(list_zones, (2, [ZONE, {"id": "z2"}]), JSON)) == {
        "listzonesresponse": {"count": 2, "zone": [{"id": "z1", "name": "Zone 1", "tags": []}, {"id": "z2"}]}}


def test_empty_list_is_an_empty_object():
    assert as_json(envelope.result(list_zones, (0, []), JSON)) == {"listzonesresponse": {}}
    assert list(as_xml(envelope.result(list_zones, (0, []), XML))) == []


def test_a_page_past_the_end_keeps_the_count():
    assert as_json(envelope.result(list_zones, (7, []), JSON)) == {"listzonesresponse": {"count": 7}}


def test_list_in_xml_repeats_the_object_element():
    root = as_xml(envelope.result(list_zones, (2, [ZONE, {"id": "z2"}]), XML))
    assert root.tag == "listzonesresponse"
    assert [child.tag for child in root] == ["count", "zone", "zone"]
    assert root.find("count").text == "2" and [z.find("id").text for z in root.findall("zone")] == ["z1", "z2"]


def test_object_is_wrapped_in_its_name():
    assert as_json(envelope.result(create_zone, ZONE, JSON)) == {
        "createzoneresponse": {"zone": {"id": "z1", "name": "Zone 1", "tags": []}}}
    assert as_xml(envelope.result(create_zone, ZONE, XML)).find("zone/name").text == "Zone 1"


def test_unwrapped_object_puts_fields_under_the_response():
    job = {"jobid": "j", "jobstatus": 1, "jobresult": {"zone": {"id": "z1"}}}
    assert as_json(envelope.result(query_job, job, JSON)) == {"queryasyncjobresultresponse": job}
    assert as_xml(envelope.result(query_job, job, XML)).find("jobresult/zone/id").text == "z1"


def test_success_is_a_boolean_as_since_cloudstack_4_11():
    assert as_json(envelope.result(delete_zone, SUCCESS, JSON)) == {"deletezoneresponse": {"success": True}}
    assert as_json(envelope.result(delete_zone, {"success": "true", "displaytext": "gone"}, JSON)) == {
        "deletezoneresponse": {"success": True, "displaytext": "gone"}}
    assert as_xml(envelope.result(delete_zone, SUCCESS, XML)).find("success").text == "true"


def test_async_answers_the_job_and_the_instance():
    assert as_json(envelope.result(deploy, JobHandle("j1", "vm1"), JSON)) == {
        "deployvirtualmachineresponse": {"id": "vm1", "jobid": "j1"}}
    assert as_json(envelope.result(deploy, JobHandle("j1"), JSON)) == {"deployvirtualmachineresponse": {"jobid": "j1"}}
    root = as_xml(envelope.result(deploy, JobHandle("j1", "vm1"), XML))
    assert [(c.tag, c.text) for c in root] == [("id", "vm1"), ("jobid", "j1")]


def test_error():
    reply = envelope.error(InvalidParameterError("bad <name> & \"so\" on"), "createzoneresponse", JSON)
    assert reply.status == 431
    assert as_json(reply) == {"createzoneresponse": {"uuidList": [], "errorcode": 431, "cserrorcode": 4350,
                                                     "errortext": 'bad <name> & "so" on'}}
    root = as_xml(envelope.error(InvalidParameterError("bad <name> & \"so\" on"), "createzoneresponse", XML))
    assert [(c.tag, c.text) for c in root] == [("errorcode", "431"), ("cserrorcode", "4350"),
                                               ("errortext", 'bad <name> & "so" on')]


def test_error_names():
    assert envelope.error_response_name(create_zone, InvalidParameterError("x")) == "createzoneresponse"
    # CloudStack: every error of a command that exists, 432 included, is named after the command
    assert envelope.error_response_name(create_zone, UnsupportedError("x")) == "createzoneresponse"
    assert envelope.error_response_name(None, InvalidParameterError("x")) == "errorresponse"


def test_values():
    plus_two = dt.timezone(dt.timedelta(hours=2))
    value = {"created": dt.datetime(2024, 1, 15, 10, 20, 30), "aware": dt.datetime(2024, 1, 15, 12, 20, 30,
                                                                                  tzinfo=plus_two),
             "flag": False, "n": 1.5, "text": "日本語 🎉", "nothing": None,
             "nested": {"nic": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "tags": ["a", "b"], "details": {"k": "v"}}}
    body = as_json(envelope.result(create_zone, value, JSON))["createzoneresponse"]["zone"]
    assert body["created"] == "2024-01-15T10:20:30+0000" and body["aware"] == "2024-01-15T10:20:30+0000"
    assert body["flag"] is False and "nothing" not in body and body["text"] == "日本語 🎉"
    assert "日本語".encode() in envelope.result(create_zone, value, JSON).body  # raw UTF-8, not \\u escapes
    zone = as_xml(envelope.result(create_zone, value, XML)).find("zone")
    assert zone.find("flag").text == "false" and zone.find("created").text == "2024-01-15T10:20:30+0000"
    assert [n.find("ip").text for n in zone.findall("nested/nic")] == ["10.0.0.1", "10.0.0.2"]
    assert [t.text for t in zone.findall("nested/tags")] == ["a", "b"]
    assert zone.find("nested/details/k").text == "v" and zone.find("nothing") is None


def test_xml_stays_well_formed_whatever_the_text():
    value = {"text": "ctrl\x01\x1f chars, <tags> & 'quotes'", "weird key!": 1, "9lives": 2}
    zone = as_xml(envelope.result(create_zone, value, XML)).find("zone")
    assert zone.find("text").text == "ctrl\ufffd\ufffd chars, <tags> & 'quotes'"
    assert zone.find("weird_key_").text == "1" and zone.find("_9lives").text == "2"


def test_results_that_break_the_conventions_are_type_errors():
    with pytest.raises(TypeError):
        envelope.result(list_zones, [ZONE], JSON)
    with pytest.raises(TypeError):
        envelope.result(create_zone, "zone", JSON)
    with pytest.raises(TypeError):
        envelope.result(create_zone, {"x": object()}, JSON)


def test_response_format():
    assert envelope.response_format("json") == envelope.response_format(" JSON ") == JSON
    assert envelope.response_format(None) == envelope.response_format("xml") == envelope.response_format("yaml") == XML


# -- through the app -----------------------------------------------------------------


def test_a_list_through_the_app(admin):
    assert admin("listTestThings") == {"count": 3, "thing": [{"id": "thing-1", "name": "Thing 1"},
                                                             {"id": "thing-2", "name": "Thing 2"},
                                                             {"id": "thing-3", "name": "Thing 3"}]}
    assert admin("listTestThings", page=2, pagesize=2) == {"count": 3, "thing": [{"id": "thing-3", "name": "Thing 3"}]}
    assert admin("listTestThings", none="true") == {}


def test_xml_is_the_default(admin):
    response = admin.raw("listTestThings", response="xml")
    root = ET.fromstring(response.data)
    assert response.headers["Content-Type"] == "text/xml; charset=UTF-8"
    assert root.tag == "listtestthingsresponse" and len(root.findall("thing")) == 3
    params = {"command": "testEcho", "name": "n", "apiKey": admin.api_key}
    params["signature"] = signing.sign(params, admin.secret_key)
    root = ET.fromstring(admin.http.get("/client/api", query_string=params).data)
    assert root.tag == "testechoresponse" and root.find("echo/nested/items/x").text == "1"


def test_errors_in_xml_through_the_app(admin):
    response = admin.raw("testEcho", response="xml")
    root = ET.fromstring(response.data)
    assert response.status_code == 431 and root.tag == "testechoresponse" and root.find("errorcode").text == "431"


def test_a_command_the_role_may_not_call_is_refused_under_its_own_name(app, cloud):
    from tests.api.test_native_support import make_user

    user = make_user(app, cloud, "urd")
    response = user.raw("testRootOnly")
    assert response.status_code == 432
    assert next(iter(response.get_json())) == "testrootonlyresponse"
    unknown = user.raw("testNoSuchCommand")
    assert (unknown.status_code, next(iter(unknown.get_json()))) == (432, "errorresponse")


def test_deploy_without_a_network_provider_is_534_under_deployvirtualmachineresponse(admin, cloud):
    import sqlalchemy as sa

    from core.model import Zone
    from tests.core.factories import simulated_zone
    from tests.helpers import offering_id

    ids = simulated_zone(cloud)
    with cloud.db.transaction() as session:  # an Advanced zone, and no network plugin enabled
        session.scalars(sa.select(Zone).where(Zone.uuid == ids["zone"])).one().network_type = "Advanced"
    response = admin.raw("deployVirtualMachine", zoneid=ids["zone"], templateid=ids["template"],
                         serviceofferingid=offering_id(cloud))
    name, body = next(iter(response.get_json().items()))
    assert (response.status_code, name, body["errorcode"], body["cserrorcode"]) == (
        534, "deployvirtualmachineresponse", 534, 4380)
    assert "no enabled network plugin provides it" in body["errortext"]
    assert "[plugins]" in body["errortext"], "it says how to fix it"
