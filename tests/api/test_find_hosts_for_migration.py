"""findHostsForMigration (root admins): every other host a Running VM could live-migrate to,
flagged suitableformigration where it fits now; read-only (nothing is reserved)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, capacity_used, make_account, offering_id


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud, hosts=3)


@pytest.fixture
def tenant(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "mia"))


@pytest.fixture
def vm(tenant, cloud, zone):
    return tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                              templateid=zone["template"], name="web1"))["virtualmachine"]


def set_host(cloud, host_uuid, **values):
    from core.model import Host

    with cloud.db.transaction() as session:
        session.execute(sa.update(Host).where(Host.uuid == host_uuid).values(**values))


def test_lists_the_other_hosts_flagging_those_that_fit(admin, cloud, zone, vm):
    source = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    others = [h for h in zone["hosts"] if h != source]
    set_host(cloud, others[1], resource_state="Disabled")
    before = capacity_used(cloud)
    found = admin("findHostsForMigration", virtualmachineid=vm["id"])
    assert found["count"] == 2
    flags = {h["id"]: (h["suitableformigration"], h["requiresStorageMotion"]) for h in found["host"]}
    assert flags == {others[0]: (True, False), others[1]: (False, False)}
    assert [h["id"] for h in found["host"]] == others, "suitable hosts first"
    listed = found["host"][0]
    assert listed["name"] and listed["clusterid"] == zone["cluster"] and "memoryallocated" in listed
    assert capacity_used(cloud) == before, "nothing reserved"
    # what it calls suitable, migrateVirtualMachine takes
    admin.wait(admin("migrateVirtualMachine", virtualmachineid=vm["id"], hostid=others[0]))
    assert admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"] == others[0]


def test_a_host_without_room_is_not_suitable(admin, cloud, zone, vm):
    source = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    from core.model import Capacity, CapacityType, Host

    with cloud.db.transaction() as session:  # every other host's memory taken
        ids = session.scalars(sa.select(Host.id).where(Host.uuid != source)).all()
        session.execute(sa.update(Capacity).where(Capacity.host_id.in_(ids),
                                                  Capacity.capacity_type == CapacityType.MEMORY)
                        .values(used=Capacity.total))
    found = admin("findHostsForMigration", virtualmachineid=vm["id"])["host"]
    assert {h["id"]: h["suitableformigration"] for h in found} == {h: False for h in zone["hosts"] if h != source}


def test_keyword_and_paging(admin, zone, vm):
    source = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    names = sorted(admin("listHosts", id=h)["host"][0]["name"] for h in zone["hosts"] if h != source)
    page = admin("findHostsForMigration", virtualmachineid=vm["id"], page=2, pagesize=1)
    assert page["count"] == 2 and len(page["host"]) == 1
    assert [h["name"] for h in admin("findHostsForMigration", virtualmachineid=vm["id"],
                                     keyword=names[1])["host"]] == [names[1]]


def test_a_stopped_vm_is_431_and_users_may_not_call_it(admin, tenant, vm):
    with pytest.raises(ApiError) as denied:
        tenant("findHostsForMigration", virtualmachineid=vm["id"])
    assert denied.value.status == 432
    tenant.wait(tenant("stopVirtualMachine", id=vm["id"]))
    with pytest.raises(ApiError) as caught:
        admin("findHostsForMigration", virtualmachineid=vm["id"])
    assert caught.value.status == 431 and "not Running" in caught.value.body["errortext"]
