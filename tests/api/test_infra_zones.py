"""Zones, pods and clusters through the API: happy paths, bad input, deletes of
things in use, and what users may (not) see or do."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.model import Account, Network, Zone, utcnow
from tests.helpers import ApiClient, ApiError, make_account

MISSING = "2b6f0f4a-0000-4000-8000-000000000000"


@pytest.fixture
def user(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "bob"))


def zone(admin, name="z1", **kw):
    return admin("createZone", name=name, networktype="Basic", dns1="8.8.8.8", internaldns1="10.0.0.2", **kw)["zone"]


def pod(admin, zone_id, name="p1", **kw):
    args = dict(gateway="10.1.0.1", netmask="255.255.255.0", startip="10.1.0.10", endip="10.1.0.100")
    args.update(kw)
    return admin("createPod", zoneid=zone_id, name=name, **args)["pod"]


def cluster(admin, zone_id, pod_id, name="c1", **kw):
    args = dict(hypervisor="Simulator", clustertype="CloudManaged")
    args.update(kw)
    answer = admin("addCluster", zoneid=zone_id, podid=pod_id, clustername=name, **args)
    assert answer["count"] == 1
    return answer["cluster"][0]


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kw)
    return info.value


# -- zones --------------------------------------------------------------------------


def test_zone_create_list_update_delete(admin):
    created = zone(admin, dns2="1.1.1.1", guestcidraddress="10.1.1.0/24", domain="cloud.example")
    assert created["name"] == "z1" and created["networktype"] == "Basic"
    assert created["dns1"] == "8.8.8.8" and created["internaldns1"] == "10.0.0.2"
    assert created["allocationstate"] == "Enabled" and created["guestcidraddress"] == "10.1.1.0/24"
    listed = admin("listZones", id=created["id"])
    assert listed["count"] == 1 and listed["zone"][0] == created
    updated = admin("updateZone", id=created["id"], name="z1b", allocationstate="Disabled", dns1="9.9.9.9")["zone"]
    assert (updated["name"], updated["allocationstate"], updated["dns1"]) == ("z1b", "Disabled", "9.9.9.9")
    assert admin("listZones", name="z1b")["count"] == 1 and admin("listZones", keyword="1b")["count"] == 1
    assert admin("deleteZone", id=created["id"]) == {"success": True}
    assert admin("listZones") == {}
    assert zone(admin, name="z1b")["name"] == "z1b", "a deleted zone's name can be taken again"
    types = {e["type"] for e in admin("listEvents")["event"]}
    assert {"ZONE.CREATE", "ZONE.EDIT", "ZONE.DELETE"} <= types


def test_zone_bad_values_are_431_naming_the_parameter(admin):
    base = dict(name="z", networktype="Basic", dns1="8.8.8.8", internaldns1="10.0.0.2")
    for args, param in ((dict(networktype="Fancy"), "networktype"), (dict(dns1="8.8.8"), "dns1"),
                        (dict(internaldns1="nope"), "internaldns1"),
                        (dict(guestcidraddress="10.1.1.0/40"), "guestcidraddress"),
                        (dict(allocationstate="Maybe"), "allocationstate")):
        exc = error(admin, "createZone", **{**base, **args})
        assert exc.status == 431 and param in exc.body["errortext"], args
    assert admin("listZones") == {}, "nothing half-made"


def test_zone_duplicate_name_missing_param_and_unknown_id(admin):
    zone(admin)
    assert error(zone, admin).status == 431
    exc = error(admin, "createZone", name="z2", networktype="Basic", internaldns1="10.0.0.2")
    assert exc.status == 431 and "dns1" in exc.body["errortext"]
    assert error(admin, "updateZone", id=MISSING).status == 431
    assert error(admin, "deleteZone", id="not-a-uuid").status == 431


def test_zone_in_use_cannot_be_deleted_and_its_guest_network_goes_with_it(admin, cloud):
    z = zone(admin)
    p = pod(admin, z["id"])
    exc = error(admin, "deleteZone", id=z["id"])
    assert exc.status == 536 and "pods" in exc.body["errortext"]
    admin("deletePod", id=p["id"])
    with cloud.db.transaction() as session:
        zone_row = session.scalar(sa.select(Zone).where(Zone.uuid == z["id"]))
        admin_account = session.scalar(sa.select(Account).where(Account.name == "admin"))
        for owner in (None, admin_account):
            session.add(Network(name="n", zone_id=zone_row.id, cidr="10.1.0.0/24", account_id=owner and owner.id,
                                guest_type="Isolated" if owner else "Shared"))
    assert "networks" in error(admin, "deleteZone", id=z["id"]).body["errortext"]
    with cloud.db.transaction() as session:
        session.execute(sa.update(Network).where(Network.account_id.is_not(None)).values(removed=utcnow()))
    assert admin("deleteZone", id=z["id"]) == {"success": True}
    with cloud.db.transaction() as session:
        assert session.scalar(sa.select(Network.id).where(Network.removed.is_(None))) is None


def test_users_list_enabled_zones_without_dns_and_cannot_create(admin, user):
    enabled = zone(admin, name="open")
    zone(admin, name="closed", allocationstate="Disabled")
    listed = user("listZones")
    assert listed["count"] == 1 and listed["zone"][0]["id"] == enabled["id"]
    assert "dns1" not in listed["zone"][0] and "internaldns1" not in listed["zone"][0]
    assert user("listZones", available=True)["count"] == 1
    assert admin("listZones")["count"] == 2 and admin("listZones", available=True)["count"] == 1
    for command, args in (("createZone", dict(name="x", networktype="Basic", dns1="8.8.8.8", internaldns1="1.1.1.1")),
                          ("deleteZone", dict(id=enabled["id"])), ("listPods", {}), ("listHosts", {})):
        assert error(user, command, **args).status == 432, command


# -- pods ---------------------------------------------------------------------------


def test_pod_create_list_update_delete(admin):
    z = zone(admin)
    created = pod(admin, z["id"])
    assert created["zoneid"] == z["id"] and created["zonename"] == "z1"
    assert created["startip"] == ["10.1.0.10"] and created["endip"] == ["10.1.0.100"]
    assert created["ipranges"][0]["startip"] == "10.1.0.10"
    assert admin("listPods", zoneid=z["id"])["pod"] == [created]
    updated = admin("updatePod", id=created["id"], name="p1b", endip="10.1.0.50", allocationstate="Disabled")["pod"]
    assert (updated["name"], updated["endip"], updated["allocationstate"]) == ("p1b", ["10.1.0.50"], "Disabled")
    assert admin("deletePod", id=created["id"]) == {"success": True}
    assert admin("listPods") == {}


def test_pod_bad_ranges_are_431(admin):
    z = zone(admin)
    for args, param in ((dict(gateway="10.1.0"), "gateway"), (dict(netmask="255.0.255.0"), "netmask"),
                        (dict(startip="10.2.0.10"), "startip"), (dict(endip="10.1.0.5"), "endip"),
                        (dict(startip="10.1.0.1", endip="10.1.0.5", gateway="10.1.0.3"), "gateway")):
        exc = error(pod, admin, z["id"], **args)
        assert exc.status == 431 and param in exc.body["errortext"], args
    assert admin("listPods") == {}


def test_pod_duplicate_name_overlap_unknown_zone_and_in_use(admin):
    z = zone(admin)
    p = pod(admin, z["id"])
    assert error(pod, admin, z["id"], startip="10.1.0.200", endip="10.1.0.210").status == 431  # same name
    exc = error(pod, admin, z["id"], name="p2", startip="10.1.0.90", endip="10.1.0.120")
    assert exc.status == 431 and "overlaps" in exc.body["errortext"]
    assert error(pod, admin, MISSING, name="p3").status == 431
    cluster(admin, z["id"], p["id"])
    exc = error(admin, "deletePod", id=p["id"])
    assert exc.status == 536 and "clusters" in exc.body["errortext"]


# -- clusters -----------------------------------------------------------------------


def test_cluster_add_list_update_delete(admin):
    z = zone(admin)
    p = pod(admin, z["id"])
    created = cluster(admin, z["id"], p["id"], hypervisor="simulator")
    assert created["hypervisortype"] == "Simulator", "the hypervisor is spelled as CloudStack spells it"
    assert (created["cpuovercommitratio"], created["memoryovercommitratio"]) == ("1.0", "1.0")
    assert admin("listClusters", podid=p["id"])["cluster"] == [created]
    assert admin("listClusters", hypervisor="KVM") == {}
    updated = admin("updateCluster", id=created["id"], clustername="c1b", allocationstate="Disabled",
                    cpuovercommitratio=4, memoryovercommitratio="1.5")["cluster"]
    assert (updated["name"], updated["allocationstate"]) == ("c1b", "Disabled")
    assert (updated["cpuovercommitratio"], updated["memoryovercommitratio"]) == ("4.0", "1.5")
    assert admin("deleteCluster", id=created["id"]) == {"success": True}
    assert admin("listClusters") == {}


def test_cluster_ratios_start_at_the_global_factors(admin):
    admin("updateConfiguration", name="cpu.overprovisioning.factor", value="3")
    z = zone(admin)
    created = cluster(admin, z["id"], pod(admin, z["id"])["id"])
    assert created["cpuovercommitratio"] == "3.0"


def test_cluster_bad_input(admin):
    z = zone(admin)
    p = pod(admin, z["id"])
    other = zone(admin, name="z2")
    exc = error(cluster, admin, z["id"], p["id"], hypervisor="Xen")
    assert exc.status == 431 and "hypervisor" in exc.body["errortext"] and "Simulator" in exc.body["errortext"]
    assert "clustertype" in error(cluster, admin, z["id"], p["id"], clustertype="Weird").body["errortext"]
    assert "podid" in error(cluster, admin, other["id"], p["id"]).body["errortext"]
    assert error(cluster, admin, z["id"], p["id"], cpuovercommitratio=0).status == 431
    cluster(admin, z["id"], p["id"])
    assert error(cluster, admin, z["id"], p["id"]).status == 431, "duplicate name in the pod"
    assert admin("listClusters")["count"] == 1
