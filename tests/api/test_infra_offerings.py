"""Offerings, OS types, global settings and events through the API."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.core.factories import zone_with_cluster
from tests.helpers import ApiClient, ApiError, make_account

GiB = 1024**3


@pytest.fixture
def user(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "bob"))


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kw)
    return info.value


def test_service_offering_create_list_update_delete(admin, user):
    created = admin("createServiceOffering", name="Large", cpunumber=4, cpuspeed=2000, memory=8192,
                    hosttags="gpu", tags="ssd,fast", offerha=True, rootdisksize=40)["serviceoffering"]
    assert (created["name"], created["displaytext"], created["cpunumber"], created["memory"]) == (
        "Large", "Large", 4, 8192)
    assert (created["hosttags"], created["tags"], created["offerha"], created["rootdisksize"]) == (
        "gpu", "ssd,fast", True, 40)
    assert created["iscustomized"] is False and created["storagetype"] == "shared"
    names = {o["name"] for o in user("listServiceOfferings")["serviceoffering"]}
    assert names == {"Small Instance", "Medium Instance", "Large"}, "users list the public offerings"
    updated = admin("updateServiceOffering", id=created["id"], name="XL", displaytext="Extra large",
                    hosttags="cpu", storagetags="nvme")["serviceoffering"]
    assert (updated["name"], updated["displaytext"], updated["hosttags"], updated["tags"]) == (
        "XL", "Extra large", "cpu", "nvme")
    assert admin("deleteServiceOffering", id=created["id"]) == {"success": True}
    assert admin("listServiceOfferings", id=created["id"]) == {}
    assert error(admin, "deleteServiceOffering", id=created["id"]).status == 431
    types = {e["type"] for e in admin("listEvents")["event"]}
    assert {"SERVICE.OFFERING.CREATE", "SERVICE.OFFERING.EDIT", "SERVICE.OFFERING.DELETE"} <= types


def test_service_offering_bad_input_and_user_refused(admin, user):
    for args, param in ((dict(cpunumber=0), "cpunumber"), (dict(memory="lots"), "memory"),
                        (dict(storagetype="tape"), "storagetype"), (dict(cpuspeed=None), "cpuspeed"),
                        (dict(domainid="2b6f0f4a-0000-4000-8000-000000000000"), "domainid")):
        base = dict(name="x", cpunumber=1, cpuspeed=500, memory=512)
        exc = error(admin, "createServiceOffering", **{**base, **args})
        assert exc.status == 431 and param in exc.body["errortext"], args
    assert error(user, "createServiceOffering", name="x", cpunumber=1, cpuspeed=500, memory=512).status == 432
    assert admin("listServiceOfferings")["count"] == 2


def test_domain_offerings_are_seen_only_in_their_domain(admin, app, cloud):
    child = admin("createDomain", name="sales")["domain"]
    admin("createServiceOffering", name="Sales only", cpunumber=1, cpuspeed=500, memory=512, domainid=child["id"])
    admin("createDiskOffering", name="Sales disk", disksize=1, domainid=child["id"])
    outsider = ApiClient.for_user(app, cloud, make_account(cloud, "out"))
    insider = ApiClient.for_user(app, cloud, make_account(cloud, "in", domain_path="/sales/"))
    assert "Sales only" not in {o["name"] for o in outsider("listServiceOfferings")["serviceoffering"]}
    assert "Sales only" in {o["name"] for o in insider("listServiceOfferings")["serviceoffering"]}
    assert "Sales disk" not in {o["name"] for o in outsider("listDiskOfferings")["diskoffering"]}
    listed = insider("listDiskOfferings", name="Sales disk")["diskoffering"][0]
    assert listed["domain"] == "sales" and listed["domainid"] == child["id"]


def test_disk_offering_create_list_update_delete(admin, user):
    fixed = admin("createDiskOffering", name="Huge", disksize=500, tags="ssd")["diskoffering"]
    assert (fixed["disksize"], fixed["iscustomized"], fixed["tags"]) == (500, False, "ssd")
    custom = admin("createDiskOffering", name="Any", customized=True)["diskoffering"]
    assert (custom["disksize"], custom["iscustomized"]) == (0, True)
    assert user("listDiskOfferings", name="Huge")["diskoffering"] == [fixed]
    updated = admin("updateDiskOffering", id=fixed["id"], displaytext="Half a TB", tags="hdd")["diskoffering"]
    assert (updated["displaytext"], updated["tags"]) == ("Half a TB", "hdd")
    assert admin("deleteDiskOffering", id=custom["id"]) == {"success": True}
    assert admin("listDiskOfferings", keyword="Any") == {}
    assert error(admin, "createDiskOffering", name="x").status == 431, "a fixed size needs disksize"
    assert error(admin, "createDiskOffering", name="x", customized=True, disksize=5).status == 431
    assert error(admin, "createDiskOffering", name="x", disksize=0).status == 431
    assert error(user, "deleteDiskOffering", id=fixed["id"]).status == 432


def test_os_types_and_categories(user):
    categories = user("listOsCategories")["oscategory"]
    assert {c["name"] for c in categories} >= {"Debian", "Ubuntu", "Windows"}
    debian = next(c for c in categories if c["name"] == "Debian")
    types = user("listOsTypes", oscategoryid=debian["id"])
    assert types["count"] == 2 and all(t["oscategoryname"] == "Debian" for t in types["ostype"])
    assert user("listOsTypes", description="Ubuntu 22")["ostype"][0]["description"] == "Ubuntu 22.04 LTS"
    assert user("listOsTypes", keyword="Windows")["count"] == 1
    assert error(user, "listOsTypes", oscategoryid="2b6f0f4a-0000-4000-8000-000000000000").status == 431


def test_configurations_list_and_update(admin, cloud, user):
    listed = admin("listConfigurations", name="page.size")["configuration"]
    assert [c["name"] for c in listed] == ["default.page.size"] and listed[0]["value"] == "500"
    assert admin("listConfigurations", category="alert")["count"] == 3
    updated = admin("updateConfiguration", name="default.page.size", value="100")["configuration"]
    assert (updated["value"], updated["defaultvalue"], updated["scope"]) == ("100", "500", "global")
    with cloud.db.transaction() as session:
        assert cloud.config.get(session, "default.page.size") == 100
    assert error(admin, "updateConfiguration", name="default.page.size", value="many").status == 431
    assert error(admin, "updateConfiguration", name="no.such.setting", value="1").status == 431
    assert error(user, "listConfigurations").status == 432
    assert "CONFIGURATION.VALUE.EDIT" in {e["type"] for e in admin("listEvents")["event"]}


def test_overprovisioning_per_cluster_and_pool(admin, cloud):
    with cloud.db.transaction() as session:
        _, _, cluster = zone_with_cluster(session)
        cluster_id = cluster.uuid
    scoped = admin("listConfigurations", clusterid=cluster_id)["configuration"]
    assert {c["name"]: c["value"] for c in scoped} == {"cpu.overprovisioning.factor": "1.0",
                                                       "mem.overprovisioning.factor": "1.0"}
    set_ = admin("updateConfiguration", name="cpu.overprovisioning.factor", value="2.5", clusterid=cluster_id)
    assert (set_["configuration"]["value"], set_["configuration"]["scope"]) == ("2.5", "cluster")
    assert admin("listClusters", id=cluster_id)["cluster"][0]["cpuovercommitratio"] == "2.5"
    assert admin("listConfigurations", name="cpu.overprovisioning.factor")["configuration"][0]["value"] == "1.0"
    exc = error(admin, "updateConfiguration", name="default.page.size", value="5", clusterid=cluster_id)
    assert exc.status == 431 and "per cluster" in exc.body["errortext"]
    assert error(admin, "updateConfiguration", name="cpu.overprovisioning.factor", value="0",
                 clusterid=cluster_id).status == 431
    assert error(admin, "listConfigurations", zoneid=cluster_id).status == 431


def test_events_filters_and_owner_rules(admin, user):
    admin("createServiceOffering", name="A", cpunumber=1, cpuspeed=500, memory=512)
    admin("createDiskOffering", name="B", disksize=1)
    events = admin("listEvents")["event"]
    assert [e["type"] for e in events[:2]] == ["DISK.OFFERING.CREATE", "SERVICE.OFFERING.CREATE"], "newest first"
    assert events[0]["username"] == "admin" and events[0]["account"] == "admin" and events[0]["level"] == "INFO"
    assert admin("listEvents", type="disk.offering.create")["count"] == 1
    assert admin("listEvents", keyword="offering A")["count"] == 1
    assert admin("listEvents", level="ERROR") == {}
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    assert admin("listEvents", startdate=today, enddate=today)["count"] == len(events)
    assert admin("listEvents", enddate="2000-01-01") == {}
    assert error(admin, "listEvents", level="LOUD").status == 431
    assert error(admin, "listEvents", startdate="yesterday").status == 431
    assert user("listEvents") == {}, "a user sees nothing of another account's events"
    assert user("listEvents", listall=True) == {}
    types = {t["name"] for t in user("listEventTypes")["eventtype"]}
    assert {"VM.CREATE", "ZONE.CREATE", "HOST.ADD", "MAINT.PREPARE"} <= types
