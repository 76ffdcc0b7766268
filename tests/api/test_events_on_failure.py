"""A failed async job leaves an ERROR event of its command's event type for the resource's
owner (CloudStack's "Error while starting Vm. ..."), and tenants' events name no host."""

from __future__ import annotations

import pytest

from api.commands import builtin_commands
from core.jobs import FAILURE_EVENTS
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, make_account, offering_id


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud, hosts=2)


@pytest.fixture
def tenant(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "faye"))


def deploy(tenant, cloud, zone, **kw):
    return tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                              templateid=zone["template"], name="web1", **kw))["virtualmachine"]


def test_a_failed_start_leaves_an_error_event_for_the_owner(admin, tenant, cloud, zone):
    vm = deploy(tenant, cloud, zone, startvm=False)
    for host in zone["hosts"]:  # on every host: a start tries each
        admin("configureSimulator", hostid=host, name="start", value="disk on fire")
    with pytest.raises(ApiError) as caught:
        tenant.wait(tenant("startVirtualMachine", id=vm["id"]))
    assert caught.value.status == 534
    [event] = tenant("listEvents", level="ERROR")["event"]
    assert (event["type"], event["level"], event["account"]) == ("VM.START", "ERROR", "faye")
    assert event["description"].startswith(f"Error while starting Vm. VirtualMachine Id: {vm['id']}.")
    assert "disk on fire" in event["description"]
    assert admin("listEvents", level="ERROR") == {}, "the owner's event, not the admin's"


def test_a_job_that_succeeds_leaves_no_error_event(tenant, cloud, zone):
    deploy(tenant, cloud, zone)
    assert tenant("listEvents", level="ERROR") == {}


def test_work_that_records_its_own_error_event_gets_no_second_one(tenant, cloud, zone):
    # no host at all in the zone: the first deploy's own "Deploying VM ... failed" (VM.CREATE) is the one
    admin_hosts = zone["hosts"]
    with cloud.db.transaction() as session:
        import sqlalchemy as sa

        from core.model import Host
        for host in session.scalars(sa.select(Host).where(Host.uuid.in_(admin_hosts))):
            host.resource_state = "Disabled"
    with pytest.raises(ApiError):
        deploy(tenant, cloud, zone)
    events = tenant("listEvents", level="ERROR")["event"]
    assert [e["type"] for e in events] == ["VM.CREATE"]


def test_every_async_command_has_its_failure_event_type():
    async_commands = {c.name for c in builtin_commands() if c.is_async}
    assert async_commands - set(FAILURE_EVENTS) == set()


def test_the_owner_is_not_told_which_host_runs_the_vm(admin, tenant, cloud, zone):
    vm = deploy(tenant, cloud, zone)
    host = admin("listHosts", id=zone["hosts"][0])["host"][0]["name"]
    descriptions = [e["description"] for e in tenant("listEvents")["event"]]
    assert f"Started VM {vm['name']}" in descriptions
    assert not [d for d in descriptions if host in d], descriptions


def test_an_admins_failed_migration_tells_the_owner_no_host(admin, tenant, cloud, zone):
    vm = deploy(tenant, cloud, zone)
    source = admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    target = next(h for h in zone["hosts"] if h != source)
    admin("configureSimulator", hostid=source, name="migrate", value="link down")
    with pytest.raises(ApiError) as caught:
        admin.wait(admin("migrateVirtualMachine", virtualmachineid=vm["id"], hostid=target))
    names = [admin("listHosts", id=h)["host"][0]["name"] for h in zone["hosts"]]
    assert any(name in caught.value.body["errortext"] for name in names), "the admin's job result names them"
    [event] = tenant("listEvents", level="ERROR")["event"]
    assert event["type"] == "VM.MIGRATE" and event["description"] == (
        f"Error while migrating Vm. VirtualMachine Id: {vm['id']}")


def test_a_job_whose_worker_died_leaves_an_error_event_too(tenant, cloud, zone):
    import datetime as dt

    from core.model import AsyncJob, VirtualMachine, utcnow

    vm = deploy(tenant, cloud, zone, startvm=False)
    with cloud.db.transaction() as session:
        row = session.query(VirtualMachine).filter(VirtualMachine.uuid == vm["id"]).one()
        session.add(AsyncJob(command="startVirtualMachine", handler="vm.start", params={"vm": vm["id"]},
                             account_id=row.account_id, instance_type="VirtualMachine", instance_uuid=vm["id"],
                             executor="a-worker-that-died", heartbeat=utcnow() - dt.timedelta(hours=1)))
    assert len(cloud.jobs.recover(startup=False)) == 1
    [event] = tenant("listEvents", level="ERROR")["event"]
    assert event["type"] == "VM.START" and "The job was interrupted" in event["description"]
