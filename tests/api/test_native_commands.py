"""listApis, listCapabilities, queryAsyncJobResult and listAsyncJobs."""

from __future__ import annotations

import datetime as dt
import re
import uuid
import xml.etree.ElementTree as ET

import pytest
import sqlalchemy as sa

from core.model import Account, AsyncJob, AccountType, User, Zone
from tests.api.test_native_support import app, make_domain, make_user, wait_for_job  # noqa: F401
from tests.helpers import ApiError

CS_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$")


# -- listApis ------------------------------------------------------------------------


def test_list_apis_describes_each_command_for_cmk(admin):
    apis = {api["name"]: api for api in admin("listApis")["api"]}
    echo = apis["testEcho"]
    assert echo["description"] == "Echoes its typed parameters" and echo["isasync"] is False
    params = {p["name"]: p for p in echo["params"]}
    assert params["name"] == {"name": "name", "description": "a name", "type": "string", "length": 20,
                              "required": True, "since": "4.0.0", "related": ""}
    assert {k: params[k]["type"] for k in ("count", "flag", "ids", "details", "when")} == {
        "count": "integer", "flag": "boolean", "ids": "list", "details": "map", "when": "date"}
    assert params["count"]["required"] is False
    assert echo["response"] == [{"name": "name", "description": "the name given", "type": "string"}]
    assert apis["testAsync"]["isasync"] is True
    assert {p["name"] for p in apis["listAsyncJobs"]["params"]} >= {"page", "pagesize", "listall", "startdate"}
    jobid = next(p for p in apis["queryAsyncJobResult"]["params"] if p["name"] == "jobid")
    assert (jobid["type"], jobid["required"]) == ("uuid", True)


def test_list_apis_shows_only_what_the_caller_may_call(app, cloud, admin):
    user = make_user(app, cloud, "ursula")
    admin_names = {api["name"] for api in admin("listApis")["api"]}
    user_names = {api["name"] for api in user("listApis")["api"]}
    assert "testRootOnly" in admin_names and "testRootOnly" not in user_names
    assert "testEcho" in user_names and user_names < admin_names
    assert user("listApis")["count"] == len(user_names)


def test_list_apis_by_name_keyword_and_page(admin):
    assert [api["name"] for api in admin("listApis", name="TESTECHO")["api"]] == ["testEcho"]
    assert admin("listApis", name="noSuchApi") == {}
    assert {api["name"] for api in admin("listApis", keyword="asyncjob")["api"]} == {"listAsyncJobs",
                                                                                    "queryAsyncJobResult"}
    everything = admin("listApis")
    page = admin("listApis", page=2, pagesize=3)
    assert page["count"] == everything["count"] and page["api"] == everything["api"][3:6]


# -- listCapabilities ------------------------------------------------------------------


def test_list_capabilities(app, cloud, admin):
    capability = make_user(app, cloud, "ursula")("listCapabilities")["capability"]
    assert capability["cloudstackversion"] == "4.19.0.0"
    for field in ("apilimitinterval", "apilimitmax", "allowusercreateprojects", "customdiskofferingmaxsize",
                  "securitygroupsenabled", "userpublictemplateenabled", "kvmsnapshotenabled",
                  "regionsecondaryenabled"):
        assert field in capability
    assert capability["securitygroupsenabled"] is False
    with cloud.db.transaction() as session:
        session.add(Zone(name="sg", security_groups_enabled=True))
    assert admin("listCapabilities")["capability"]["securitygroupsenabled"] is True


# -- queryAsyncJobResult ------------------------------------------------------------------


def _ids(cloud, username):
    with cloud.db.transaction() as session:
        user = session.scalars(sa.select(User).where(User.username == username)).one()
        return user.uuid, user.account.uuid


def test_a_finished_job(admin, cloud):
    started = admin("testAsync", text="hello")
    assert set(started) == {"jobid"}
    result = wait_for_job(admin, started["jobid"])
    user_id, account_id = _ids(cloud, "admin")
    assert result["jobstatus"] == 1 and result["jobresultcode"] == 0 and result["jobprocstatus"] == 0
    assert result["jobresulttype"] == "object" and result["jobresult"] == {"echo": {"text": "hello"}}
    assert (result["userid"], result["accountid"], result["account"]) == (user_id, account_id, "admin")
    assert result["cmd"] == "testAsync" and result["jobid"] == started["jobid"]
    assert CS_DATE.match(result["created"]) and CS_DATE.match(result["completed"])


def test_a_job_about_an_instance_answers_its_id(admin):
    vm = str(uuid.uuid4())
    started = admin("testAsync", text="x", instance=vm)
    assert started["id"] == vm
    result = wait_for_job(admin, started["jobid"])
    assert (result["jobinstancetype"], result["jobinstanceid"]) == ("VirtualMachine", vm)


def test_a_failed_job(admin):
    result = wait_for_job(admin, admin("testAsync", fail="true")["jobid"])
    assert result["jobstatus"] == 2 and result["jobresultcode"] == 533
    assert result["jobresult"] == {"errorcode": 533, "errortext": "no host has room for the echo"}


def test_a_pending_job_has_no_result_yet(admin, cloud):
    with cloud.db.transaction() as session:
        account = session.scalars(sa.select(Account).where(Account.name == "admin")).one()
        job = AsyncJob(command="deployVirtualMachine", handler="nothing", params={}, account_id=account.id)
        session.add(job)
        session.flush()
        job_id = job.uuid
    result = admin("queryAsyncJobResult", jobid=job_id)
    assert result["jobstatus"] == 0 and "jobresult" not in result and "completed" not in result


def test_an_unknown_job_is_431(admin):
    with pytest.raises(ApiError) as failure:
        admin("queryAsyncJobResult", jobid=str(uuid.uuid4()))
    assert failure.value.status == 431 and failure.value.body["errortext"].startswith("Unable to find a job by id")


def test_who_may_query_whose_job(app, cloud, admin):
    make_domain(cloud, "eng")
    make_domain(cloud, "ops")
    alice = make_user(app, cloud, "alice", domain_path="/eng/")
    bob = make_user(app, cloud, "bob", domain_path="/eng/")
    eng_admin = make_user(app, cloud, "erin", account_type=AccountType.DOMAIN_ADMIN, domain_path="/eng/")
    ops_admin = make_user(app, cloud, "oscar", account_type=AccountType.DOMAIN_ADMIN, domain_path="/ops/")
    job = alice("testAsync", text="mine")["jobid"]
    wait_for_job(alice, job)
    for client in (admin, eng_admin):
        assert client("queryAsyncJobResult", jobid=job)["jobstatus"] == 1
    for client, account in ((bob, "bob"), (ops_admin, "oscar")):
        with pytest.raises(ApiError) as refused:
            client("queryAsyncJobResult", jobid=job)
        assert refused.value.status == 531
        assert refused.value.body["errortext"] == f"Account {account} is not authorized to query job id:{job}"


def test_query_in_xml(admin):
    job = admin("testAsync", text="x")["jobid"]
    wait_for_job(admin, job)
    root = ET.fromstring(admin.raw("queryAsyncJobResult", response="xml", jobid=job).data)
    assert root.tag == "queryasyncjobresultresponse" and root.find("jobresult/echo/text").text == "x"


# -- listAsyncJobs ------------------------------------------------------------------------


def test_list_async_jobs_follows_the_listing_rules(app, cloud, admin):
    make_domain(cloud, "eng")
    alice = make_user(app, cloud, "alice", domain_path="/eng/")
    eng_admin = make_user(app, cloud, "erin", account_type=AccountType.DOMAIN_ADMIN, domain_path="/eng/")
    jobs = {"alice": alice("testAsync", text="a")["jobid"], "admin": admin("testAsync", text="b")["jobid"]}
    cloud.jobs.join()

    def listed(client, **params):
        return [job["jobid"] for job in client("listAsyncJobs", **params).get("asyncjobs", [])]

    assert listed(alice) == [jobs["alice"]] and listed(alice, listall="true") == [jobs["alice"]]
    assert listed(admin) == [jobs["admin"]]
    assert set(listed(admin, listall="true")) == set(jobs.values())
    assert listed(eng_admin) == [] and listed(eng_admin, listall="true") == [jobs["alice"]]
    everything = admin("listAsyncJobs", listall="true")
    assert everything["count"] == 2 and everything["asyncjobs"][0]["jobstatus"] == 1


def test_list_async_jobs_since_a_date(admin, cloud):
    job = admin("testAsync", text="a")["jobid"]
    cloud.jobs.join()
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    assert [j["jobid"] for j in admin("listAsyncJobs", startdate=past)["asyncjobs"]] == [job]
    assert admin("listAsyncJobs", startdate=future) == {}
