"""Limits and usage of public IPs and networks (CloudStack resource types public_ip 1 and
network 6, usage type IP_ADDRESS 3), where no router has to run: 532 at the limit, counts
given back, project-owned resources counted against the project, exact under concurrency,
and an address's usage hours to the second.

The source-NAT address a running router takes, and deleteAccount removing everything of the
network side, are tested with real routers in tests/plugins/network_vr/test_account_cleanup.py.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
import sqlalchemy as sa

from core.model import ResourceCount, UsageEvent
from core.orchestration import usage
from tests.api.test_network_api import error, isolated_offering, network_of, settings, zone  # noqa: F401 (fixtures)
from tests.helpers import ApiClient, make_account, sign


@pytest.fixture
def alice(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "alice"))


def root_id(admin) -> str:
    return admin("listDomains", name="ROOT")["domain"][0]["id"]


def totals(client) -> tuple:
    mine = client("listAccounts")["account"][0]
    return mine["iptotal"], mine["networktotal"]


def test_public_ips_stop_at_the_limit_with_532_and_come_back_when_released(admin, alice, zone):
    admin("updateResourceLimit", resourcetype=1, max=2, account="alice", domainid=root_id(admin))
    network = network_of(alice, zone)
    first = alice.wait(alice("associateIpAddress", networkid=network["id"]))["ipaddress"]
    alice.wait(alice("associateIpAddress", networkid=network["id"], ipaddress="198.51.100.13"))
    exc = error(alice, "associateIpAddress", networkid=network["id"])
    assert exc.status == 532 and exc.body["cserrorcode"] == 4370
    assert exc.body["errortext"] == ("Maximum number of resources of type 'public_ip' for account name=alice in "
                                     f"domain id={root_id(admin)} has been exceeded.")
    assert error(alice, "associateIpAddress", networkid=network["id"], ipaddress="198.51.100.12").status == 532, \
        "a requested address counts too"
    assert alice("listPublicIpAddresses")["count"] == 2, "the refused acquisitions left no address taken"
    assert totals(alice) == (2, 1)
    alice.wait(alice("disassociateIpAddress", id=first["id"]))
    assert totals(alice) == (1, 1)
    alice.wait(alice("associateIpAddress", networkid=network["id"]))
    assert totals(alice) == (2, 1)


def test_addresses_of_a_range_dedicated_to_the_account_neither_count_nor_are_charged(admin, alice, cloud, zone):
    admin("createVlanIpRange", zoneid=zone["zone"], forvirtualnetwork=True, gateway="203.0.113.1",
          netmask="255.255.255.0", startip="203.0.113.5", endip="203.0.113.5", account="alice",
          domainid=root_id(admin))
    network = network_of(alice, zone)
    got = alice.wait(alice("associateIpAddress", networkid=network["id"]))["ipaddress"]
    assert got["ipaddress"] == "203.0.113.5", "the account's dedicated range comes first"
    assert totals(alice) == (0, 1)
    alice.wait(alice("disassociateIpAddress", id=got["id"]))
    with cloud.db.transaction() as session:
        assert session.scalars(sa.select(UsageEvent).where(UsageEvent.resource_uuid == got["id"])).all() == []


def test_networks_stop_at_the_limit_and_deleting_one_gives_it_back(admin, alice, zone):
    admin("updateResourceLimit", resourcetype=6, max=1, account="alice", domainid=root_id(admin))
    first = network_of(alice, zone, "one")
    exc = error(network_of, alice, zone, "two")
    assert exc.status == 532 and "type 'network' for account name=alice" in exc.body["errortext"]
    assert [n["name"] for n in alice("listNetworks")["network"]] == ["one"]
    alice.wait(alice("deleteNetwork", id=first["id"]))
    assert totals(alice) == (0, 0)
    network_of(alice, zone, "two")
    domain = admin("listDomains", id=root_id(admin))["domain"][0]
    assert domain["networktotal"] == 1, "the domain's count moved with the account's"


def test_a_projects_addresses_and_networks_count_against_the_project(admin, alice, zone):
    project = alice.wait(alice("createProject", name="lab"))["project"]
    admin("updateResourceLimit", resourcetype=1, max=1, projectid=project["id"])
    network = alice("createNetwork", name="labnet", zoneid=zone["zone"], networkofferingid=isolated_offering(alice),
                    projectid=project["id"])["network"]
    assert network["projectid"] == project["id"]
    ip = alice.wait(alice("associateIpAddress", networkid=network["id"], projectid=project["id"]))["ipaddress"]
    assert ip["projectid"] == project["id"]
    exc = error(alice, "associateIpAddress", networkid=network["id"], projectid=project["id"])
    assert exc.status == 532 and "for project name=lab" in exc.body["errortext"]
    assert totals(alice) == (0, 0), "the member's own account holds nothing"
    listed = alice("listProjects", id=project["id"])["project"][0]
    assert (listed["iptotal"], listed["networktotal"]) == (1, 1)


def test_update_resource_count_recounts_addresses_and_networks(admin, alice, cloud, zone):
    network = network_of(alice, zone)
    alice.wait(alice("associateIpAddress", networkid=network["id"]))
    with cloud.db.transaction() as session:
        session.execute(sa.update(ResourceCount).values(count=9))
    counts = {row["resourcetypename"]: row["resourcecount"] for row in admin(
        "updateResourceCount", domainid=root_id(admin), account="alice")["resourcecount"]}
    assert (counts["public_ip"], counts["network"]) == (1, 1)


def _call(url: str, keys: tuple[str, str], command: str, **params) -> tuple[int, dict]:
    query = {"command": command, "response": "json", "apiKey": keys[0], **params}
    query["signature"] = sign(query, keys[1])
    try:
        with urllib.request.urlopen(f"{url}?{urllib.parse.urlencode(query)}", timeout=120) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_limits_hold_under_concurrent_acquisitions_and_creations(admin, app, cloud, zone, live_server):
    from tests.helpers import user_keys

    admin("createVlanIpRange", zoneid=zone["zone"], forvirtualnetwork=True, gateway="198.51.100.1",
          netmask="255.255.255.0", startip="198.51.100.20", endip="198.51.100.60")
    make_account(cloud, "racer")
    keys = user_keys(cloud, "racer")
    racer = ApiClient(app, *keys)
    admin("updateResourceLimit", resourcetype=1, max=5, account="racer", domainid=root_id(admin))
    admin("updateResourceLimit", resourcetype=6, max=4, account="racer", domainid=root_id(admin))
    offering = isolated_offering(racer)
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        networks = list(pool.map(lambda i: _call(live_server.url, keys, "createNetwork", name=f"n{i}",
                                                 zoneid=zone["zone"], networkofferingid=offering), range(12)))
        ips = list(pool.map(lambda i: _call(live_server.url, keys, "associateIpAddress", zoneid=zone["zone"]),
                            range(20)))
    assert sorted(status for status, _ in networks) == [200] * 4 + [532] * 8
    assert sorted(status for status, _ in ips) == [200] * 5 + [532] * 15
    for status, body in ips:
        if status == 200:
            racer.wait(body["associateipaddressresponse"])
    assert racer("listNetworks")["count"] == 4 and racer("listPublicIpAddresses")["count"] == 5
    assert totals(racer) == (5, 4)


DAY = dt.datetime(2024, 3, 1)


def test_an_address_held_for_a_known_time_is_charged_that_time_to_the_second(admin, alice, cloud, zone,
                                                                             monkeypatch):
    network = network_of(alice, zone)
    monkeypatch.setattr(usage, "utcnow", lambda: DAY + dt.timedelta(hours=8, seconds=20))
    ip = alice.wait(alice("associateIpAddress", networkid=network["id"]))["ipaddress"]
    monkeypatch.setattr(usage, "utcnow", lambda: DAY + dt.timedelta(hours=9, minutes=15, seconds=50))
    alice.wait(alice("disassociateIpAddress", id=ip["id"]))
    monkeypatch.undo()  # the usage job makes records only of periods that have ended by now
    with cloud.db.transaction() as session:
        events = [(e.event_type, e.resource_type, e.resource_name, e.details) for e in session.scalars(
            sa.select(UsageEvent).where(UsageEvent.resource_uuid == ip["id"]).order_by(UsageEvent.id))]
    details = {"address": "198.51.100.10", "issourcenat": False}
    assert events == [("NET.IPASSIGN", "IpAddress", "198.51.100.10", details),
                      ("NET.IPRELEASE", "IpAddress", "198.51.100.10", details)], "one event each, no duplicate"
    admin("generateUsageRecords", startdate="2024-03-01", enddate="2024-03-01")
    record, = admin("listUsageRecords", startdate="2024-03-01", enddate="2024-03-01", type=3)["usagerecord"]
    # 08:00:20 -> 09:15:50 is 1 h 15 min 30 s = 4530 s
    assert round(float(record["rawusage"]) * 3600) == 4530
    assert (record["usageid"], record["account"], record["description"]) == (
        ip["id"], "alice", "IPAddress: 198.51.100.10")


def test_delete_account_removes_the_network_side_and_gives_every_count_back(admin, app, cloud, zone):
    from core.model import (Account, IpState, Network, NetworkRule, PublicIpAddress, RemoteAccessVpn, Router,
                            VpnUser)
    from tests.helpers import offering_id

    org = admin("createDomain", name="org")["domain"]
    account = admin("createAccount", username="leaver", password="pw", email="l@example.com", firstname="L",
                    lastname="T", accounttype=0, domainid=org["id"])["account"]
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    leaver = ApiClient(app, keys["apikey"], keys["secretkey"])
    network = network_of(leaver, zone)
    vm = leaver.wait(leaver("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                            templateid=zone["template"], networkids=network["id"], startvm=False))["virtualmachine"]
    forwarded, natted, vpn_ip = (leaver.wait(leaver("associateIpAddress", networkid=network["id"]))["ipaddress"]
                                 for _ in range(3))
    loose = leaver.wait(leaver("associateIpAddress", zoneid=zone["zone"]))["ipaddress"]
    leaver.wait(leaver("createPortForwardingRule", ipaddressid=forwarded["id"], protocol="tcp", publicport=22,
                       privateport=22, virtualmachineid=vm["id"]))
    leaver.wait(leaver("createFirewallRule", ipaddressid=natted["id"], protocol="tcp", startport=80, endport=80))
    leaver.wait(leaver("createEgressFirewallRule", networkid=network["id"], protocol="tcp", startport=25,
                       endport=25))
    leaver.wait(leaver("createLoadBalancerRule", publicipid=forwarded["id"], name="lb", algorithm="roundrobin",
                       publicport=80, privateport=80))
    leaver("enableStaticNat", ipaddressid=natted["id"], virtualmachineid=vm["id"])
    leaver.wait(leaver("createRemoteAccessVpn", publicipid=vpn_ip["id"]))
    leaver.wait(leaver("addVpnUser", username="u1", password="secret1"))
    assert totals(leaver) == (4, 1)

    admin.wait(admin("deleteAccount", id=account["id"]))

    with cloud.db.transaction() as session:
        account_id = session.scalars(sa.select(Account.id).where(Account.uuid == account["id"])).one()
        network_row = session.scalars(sa.select(Network).where(Network.uuid == network["id"])).one()
        assert network_row.removed is not None
        assert session.scalars(sa.select(NetworkRule).where(NetworkRule.network_id == network_row.id)).all() == []
        for model in (RemoteAccessVpn, VpnUser, Router):
            assert session.scalars(sa.select(model).where(model.account_id == account_id,
                                                          model.removed.is_(None))).all() == [], model
        addresses = session.scalars(sa.select(PublicIpAddress).where(PublicIpAddress.uuid.in_(
            [forwarded["id"], natted["id"], vpn_ip["id"], loose["id"]]))).all()
        assert {(a.state, a.account_id, a.network_id, a.vm_id) for a in addresses} == {(IpState.FREE, None, None,
                                                                                         None)}
        released = sorted(e.resource_uuid for e in session.scalars(sa.select(UsageEvent).where(
            UsageEvent.event_type == "NET.IPRELEASE", UsageEvent.account_id == account_id)))
        assert released == sorted([forwarded["id"], natted["id"], vpn_ip["id"], loose["id"]]), "usage closed"
    domain = admin("listDomains", id=org["id"])["domain"][0]
    assert (domain["iptotal"], domain["networktotal"], domain["vmtotal"]) == (0, 0, 0)
    assert admin("listPublicIpAddresses", listall=True) == {}
