"""Primary storage pools and image stores through the API on the simulator's storage."""

from __future__ import annotations

import pytest

from tests.core.factories import simulated_zone, zone_with_cluster
from tests.helpers import ApiClient, ApiError, capacity_used, make_account, offering_id

GiB = 1024**3
STORAGE_ALLOCATED = 3


@pytest.fixture
def where(cloud):
    with cloud.db.transaction() as session:
        zone, pod, cluster = zone_with_cluster(session)
        return {"zone": zone.uuid, "pod": pod.uuid, "cluster": cluster.uuid}


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kw)
    return info.value


def create_pool(admin, where, name="p1", url="sim://p1?capacity=100", **kw):
    args = dict(zoneid=where["zone"], podid=where["pod"], clusterid=where["cluster"])
    args.update(kw)
    return admin("createStoragePool", name=name, url=url, **{k: v for k, v in args.items() if v is not None})[
        "storagepool"]


def test_pool_create_list_update_delete(admin, cloud, where):
    pool = create_pool(admin, where, tags="ssd,fast", provider="DefaultPrimary")
    assert (pool["name"], pool["state"], pool["scope"], pool["provider"]) == ("p1", "Up", "CLUSTER", "simulator")
    assert pool["disksizetotal"] == 100 * GiB and pool["disksizeallocated"] == 0 and pool["disksizeused"] == 0
    assert (pool["tags"], pool["overprovisionfactor"], pool["hypervisor"]) == ("ssd,fast", "2.0", "Simulator")
    assert pool["clusterid"] == where["cluster"] and pool["type"] == "Simulator"
    assert capacity_used(cloud) == {(STORAGE_ALLOCATED, pool["id"]): 0}, "the pool's capacity row"
    assert admin("listStoragePools", id=pool["id"])["storagepool"] == [pool]
    assert admin("listStoragePools", clusterid=where["cluster"], scope="cluster")["count"] == 1
    updated = admin("updateStoragePool", id=pool["id"], tags="slow", capacitybytes=50 * GiB)["storagepool"]
    assert (updated["tags"], updated["disksizetotal"]) == ("slow", 50 * GiB)
    assert admin("updateStoragePool", id=pool["id"], enabled=False)["storagepool"]["state"] == "Disabled"
    assert admin("updateStoragePool", id=pool["id"], enabled=True)["storagepool"]["state"] == "Up"
    assert admin("deleteStoragePool", id=pool["id"]) == {"success": True}
    assert admin("listStoragePools") == {} and capacity_used(cloud) == {}
    types = {e["type"] for e in admin("listEvents")["event"]}
    assert {"STORAGE.POOL.CREATE", "UPDATE.PS", "DISABLE.PS", "ENABLE.PS", "STORAGE.POOL.DELETE"} <= types


def test_zone_wide_pool_needs_a_hypervisor(admin, where):
    exc = error(create_pool, admin, where, scope="ZONE", podid=None, clusterid=None)
    assert exc.status == 431 and "hypervisor" in exc.body["errortext"]
    pool = create_pool(admin, where, scope="zone", podid=None, clusterid=None, hypervisor="simulator")
    assert (pool["scope"], pool["hypervisor"]) == ("ZONE", "Simulator") and "clusterid" not in pool


def test_pool_bad_input_adds_nothing(admin, cloud, where):
    for args, param in ((dict(url="nfs://server/export"), "nfs"), (dict(provider="NetApp"), "provider"),
                        (dict(url="sim://p1?capacity=zero"), "capacity"), (dict(scope="REGION"), "scope"),
                        (dict(capacitybytes=200 * GiB), "capacitybytes"),
                        (dict(clusterid="2b6f0f4a-0000-4000-8000-000000000000"), "clusterid")):
        exc = error(create_pool, admin, where, **args)
        assert exc.status == 431 and param in exc.body["errortext"], args
    assert admin("listStoragePools") == {} and capacity_used(cloud) == {}
    create_pool(admin, where)
    assert "already" in error(create_pool, admin, where, name="again").body["errortext"]


def test_pool_with_volumes_cannot_be_deleted_nor_enter_maintenance(admin, app, cloud):
    zone = simulated_zone(cloud, hosts=1)
    tenant = ApiClient.for_user(app, cloud, make_account(cloud, "alice"))
    vm = tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                            templateid=zone["template"]))["virtualmachine"]
    pool = admin("listStoragePools", id=zone["pool"])["storagepool"][0]
    assert pool["disksizeallocated"] == 2 * GiB, "the root volume's space is allocated on it"
    exc = error(admin, "deleteStoragePool", id=zone["pool"])
    assert exc.status == 536 and "volume" in exc.body["errortext"]
    exc = error(admin.wait, admin("enableStorageMaintenance", id=zone["pool"]))
    assert exc.status == 536 and "stop them" in exc.body["errortext"]
    assert admin("listStoragePools")["storagepool"][0]["state"] == "ErrorInMaintenance"
    assert admin.wait(admin("cancelStorageMaintenance", id=zone["pool"]))["storagepool"]["state"] == "Up"
    tenant.wait(tenant("stopVirtualMachine", id=vm["id"]))
    assert admin.wait(admin("enableStorageMaintenance", id=zone["pool"]))["storagepool"]["state"] == "Maintenance"
    exc = error(tenant.wait, tenant("deployVirtualMachine", zoneid=zone["zone"], templateid=zone["template"],
                                    serviceofferingid=offering_id(cloud)))
    assert exc.status == 533, "a pool in maintenance takes no new volume"
    assert error(admin, "updateStoragePool", id=zone["pool"], enabled=True).status == 431
    assert error(admin, "enableStorageMaintenance", id=zone["pool"]).status == 431
    assert admin.wait(admin("cancelStorageMaintenance", id=zone["pool"]))["storagepool"]["state"] == "Up"
    assert error(admin, "cancelStorageMaintenance", id=zone["pool"]).status == 431


def test_image_store_add_list_delete(admin, cloud, where):
    store = admin("addImageStore", name="images", url="sim://images?capacity=50", provider="Simulator",
                  zoneid=where["zone"])["imagestore"]
    assert (store["name"], store["providername"], store["protocol"], store["scope"]) == (
        "images", "simulator", "sim", "ZONE")
    assert store["zoneid"] == where["zone"] and store["disksizetotal"] == 50 * GiB
    assert admin("listImageStores", provider="simulator")["imagestore"] == [store]
    assert admin("listImageStores", protocol="nfs") == {}
    region = admin("addImageStore", url="sim://everywhere", provider="simulator")["imagestore"]
    assert region["scope"] == "REGION" and region["name"] == "sim://everywhere"
    assert admin("deleteImageStore", id=store["id"]) == {"success": True}
    assert admin("listImageStores")["count"] == 1


def test_image_store_bad_input_and_in_use(admin, cloud):
    zone = simulated_zone(cloud, hosts=1)
    exc = error(admin, "addImageStore", url="sim://x", provider="S3")
    assert exc.status == 431 and "provider" in exc.body["errortext"]
    assert error(admin, "addImageStore", url="nfs://server/x", provider="simulator").status == 431
    assert error(admin, "addImageStore", url="sim://x", provider="simulator",
                 zoneid="2b6f0f4a-0000-4000-8000-000000000000").status == 431
    store = admin("listImageStores")["imagestore"][0]
    exc = error(admin, "deleteImageStore", id=store["id"])
    assert exc.status == 536 and "template" in exc.body["errortext"]
    assert "already" in error(admin, "addImageStore", url="sim://store0", provider="simulator").body["errortext"]
    assert zone["zone"] == store["zoneid"]
