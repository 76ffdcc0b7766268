"""Breaker findings: migrateVirtualMachine on simulated hosts, instance.name.

Each test fails today and should pass once fixed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, capacity_used, make_account, offering_id

CPU, MEMORY = 1, 0


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud, hosts=2)


@pytest.fixture
def tenant(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "mover"))


def test_migrating_to_a_host_that_is_down_fails_and_the_vm_stays(admin, tenant, cloud, zone):
    """configureSimulator hostid=<h> state=Down, then migrateVirtualMachine virtualmachineid=<vm> hostid=<h>:
    Strato answers success and the VM is "Running" on the dead host (its capacity moved there; the next
    stop answers 534 "simulated host ... is down"). The simulator's migrate checks only the source host.
    CloudStack refuses (the destination must be Up; the migration fails and the VM stays Running on
    its source). Expected: an error (not 530), the VM Running on its source, capacity unchanged."""
    vm = tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                            templateid=zone["template"], name="mover"))["virtualmachine"]
    source = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    target = next(h for h in zone["hosts"] if h != source)
    before = capacity_used(cloud)
    admin("configureSimulator", hostid=target, state="Down")
    with pytest.raises(ApiError) as caught:
        admin.wait(admin("migrateVirtualMachine", virtualmachineid=vm["id"], hostid=target))
    assert caught.value.status != 530, caught.value.body
    listed = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]
    assert (listed["state"], listed["hostid"]) == ("Running", source)
    assert capacity_used(cloud) == before


def test_an_instance_name_too_long_for_the_column_is_refused(admin, tenant, cloud, zone):
    """updateConfiguration name=instance.name value=<250 characters> is accepted; afterwards every
    deployVirtualMachine builds "i-<account>-<vm>-<value>" (over 255 characters) for a 255-character
    column: 530 "Internal error" on PostgreSQL/MariaDB, an over-long instance name stored on SQLite.
    Expected: updateConfiguration refuses the value with 431 (or deploys keep working with an
    instance name that fits)."""
    from core.model import VirtualMachine

    try:
        admin("updateConfiguration", name="instance.name", value="z" * 250)
    except ApiError as exc:
        assert exc.status == 431, exc.body
        return
    vm = tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                            templateid=zone["template"], startvm=False))["virtualmachine"]
    with cloud.db.transaction() as session:
        name = session.scalars(sa.select(VirtualMachine.instance_name).where(VirtualMachine.uuid == vm["id"])).one()
    assert len(name) <= 255
