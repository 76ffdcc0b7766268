"""A limit holds exactly under concurrency: 50 deploys at once against a limit of 10, through a
real HTTP server, on the database under test (run it with STRATO_TEST_DB=postgresql and
=mariadb too: ``make test`` does)."""

from __future__ import annotations

import concurrent.futures
import json
import urllib.error
import urllib.parse
import urllib.request

from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, offering_id, sign


def _call(url: str, api_key: str, secret: str, **params) -> tuple[int, dict]:
    query = {"command": "deployVirtualMachine", "response": "json", "apiKey": api_key, **params}
    query["signature"] = sign(query, secret)
    try:
        with urllib.request.urlopen(f"{url}?{urllib.parse.urlencode(query)}", timeout=120) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_fifty_parallel_deploys_against_a_limit_of_ten_leave_exactly_ten(admin, app, cloud, live_server):
    zone = simulated_zone(cloud, hosts=4, cores=16, memory_mib=65536)
    account = admin("createAccount", username="racer", password="pw", email="r@example.com", firstname="R",
                    lastname="T", accounttype=0)["account"]
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    admin("updateResourceLimit", resourcetype=0, max=10, account="racer", domainid=account["domainid"])
    offering = offering_id(cloud)
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(lambda i: _call(live_server.url, keys["apikey"], keys["secretkey"],
                                                zoneid=zone["zone"], serviceofferingid=offering,
                                                templateid=zone["template"], name=f"race-{i}", startvm="false"),
                                range(50)))
    codes = sorted(status for status, _ in replies)
    assert codes.count(200) == 10 and codes.count(532) == 40, codes
    refused = [body["deployvirtualmachineresponse"]["errortext"] for status, body in replies if status == 532]
    assert all("'user_vm'" in text for text in refused)
    racer = ApiClient(app, keys["apikey"], keys["secretkey"])
    for status, body in replies:
        if status == 200:
            racer.wait(body["deployvirtualmachineresponse"])
    assert racer("listVirtualMachines")["count"] == 10
    assert racer("listVolumes")["count"] == 10, "no refused deploy left a volume"
    mine = racer("listAccounts")["account"][0]
    assert (mine["vmtotal"], mine["volumetotal"], mine["cputotal"]) == (10, 10, 10)
    recount = {row["resourcetypename"]: row["resourcecount"] for row in admin(
        "updateResourceCount", domainid=account["domainid"], account="racer")["resourcecount"]}
    assert recount["user_vm"] == 10 and recount["volume"] == 10, "the count is what exists"
    root = admin("listDomains", name="ROOT")["domain"][0]
    assert root["vmtotal"] == 10, "the domain's count moved with the account's"
