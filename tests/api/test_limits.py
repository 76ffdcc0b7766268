"""Resource limits and counts: listResourceLimits, updateResourceLimit, updateResourceCount,
error 532 at the limit of an account, a domain or a project, and counts given back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, offering_id


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kw)
    return info.value


def new_account(admin, app, username, **kw) -> tuple[ApiClient, dict]:
    account = admin("createAccount", username=username, password="pw", email=f"{username}@example.com",
                    firstname=username, lastname="T", accounttype=kw.pop("accounttype", 0), **kw)["account"]
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    return ApiClient(app, keys["apikey"], keys["secretkey"]), account


def deploy(client, cloud, zone, offering="Small Instance", **kw):
    return client("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud, offering),
                  templateid=zone["template"], **kw)


def limits_of(client, **kw) -> dict:
    return {row["resourcetypename"]: row["max"] for row in client("listResourceLimits", **kw)["resourcelimit"]}


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud)


def test_accounts_start_with_the_global_defaults(admin, app):
    user, _ = new_account(admin, app, "ann")
    assert limits_of(user) == {"user_vm": 20, "public_ip": 20, "volume": 20, "snapshot": 20, "template": 20,
                               "project": 10, "network": 20, "vpc": 20, "cpu": 40, "memory": 40960,
                               "primary_storage": 200, "secondary_storage": 400}
    assert limits_of(admin)["user_vm"] == -1, "root admins have no limits"
    admin("updateConfiguration", name="max.account.user.vms", value="7")
    assert limits_of(user, resourcetype=0) == {"user_vm": 7}
    assert limits_of(user, resourcetypename="cpu") == {"cpu": 40}
    assert error(user, "listResourceLimits", resourcetype=42).status == 431
    assert error(user, "updateResourceLimit", resourcetype=0, max=100, account="ann",
                 domainid=admin("listDomains")["domain"][0]["id"]).status == 432


def test_the_vm_limit_refuses_with_532_and_expunge_gives_it_back(admin, app, cloud, zone):
    user, account = new_account(admin, app, "bob")
    admin("updateResourceLimit", resourcetype=0, max=2, account="bob", domainid=account["domainid"])
    first = user.wait(deploy(user, cloud, zone))["virtualmachine"]
    user.wait(deploy(user, cloud, zone))
    exc = error(deploy, user, cloud, zone)
    assert exc.status == 532 and exc.body["cserrorcode"] == 4370
    assert "Maximum number of resources of type 'user_vm' for account name=bob" in exc.body["errortext"]
    assert user("listVirtualMachines")["count"] == 2, "the refused deploy left nothing"
    mine = user("listAccounts")["account"][0]
    assert (mine["vmtotal"], mine["vmlimit"], mine["vmavailable"], mine["cputotal"], mine["memorytotal"],
            mine["volumetotal"]) == (2, "2", "0", 2, 1024, 2)
    user.wait(user("destroyVirtualMachine", id=first["id"]))
    assert error(deploy, user, cloud, zone).status == 532, "a destroyed VM still counts until it is expunged"
    admin.wait(admin("expungeVirtualMachine", id=first["id"]))
    user.wait(deploy(user, cloud, zone))
    assert user("listAccounts")["account"][0]["vmtotal"] == 2


def test_cpu_and_memory_limits_follow_the_offering(admin, app, cloud, zone):
    user, account = new_account(admin, app, "cara")
    admin("updateResourceLimit", resourcetype=9, max=1024, account="cara", domainid=account["domainid"])
    vm = user.wait(deploy(user, cloud, zone, offering="Medium Instance"))["virtualmachine"]
    assert error(deploy, user, cloud, zone).status == 532, "memory: 1024 MiB are taken"
    user.wait(user("stopVirtualMachine", id=vm["id"]))
    small = user("changeServiceForVirtualMachine", id=vm["id"], serviceofferingid=offering_id(cloud))
    assert small["virtualmachine"]["memory"] == 512
    user.wait(deploy(user, cloud, zone))
    assert user("listAccounts")["account"][0]["memorytotal"] == 1024
    exc = error(user, "changeServiceForVirtualMachine", id=vm["id"],
                serviceofferingid=offering_id(cloud, "Medium Instance"))
    assert exc.status == 532 and "'memory'" in exc.body["errortext"]


def test_domain_limits_hold_for_every_account_below_them(admin, app, cloud, zone):
    team = admin("createDomain", name="team")["domain"]
    sub = admin("createDomain", name="sub", parentdomainid=team["id"])["domain"]
    admin("updateResourceLimit", resourcetype=0, max=3, domainid=team["id"])
    assert limits_of(admin, domainid=sub["id"])["user_vm"] == 3, "a subdomain inherits its parent's limit"
    users = [new_account(admin, app, name, domainid=sub["id"])[0] for name in ("dave", "dora")]
    for client in (users[0], users[0], users[1]):
        client.wait(deploy(client, cloud, zone))
    exc = error(deploy, users[1], cloud, zone)
    assert exc.status == 532 and f"for domain id={sub['id']}" in exc.body["errortext"]
    domain = admin("listDomains", id=team["id"])["domain"][0]
    assert (domain["vmtotal"], domain["vmlimit"]) == (3, "3")
    assert error(admin, "updateResourceLimit", resourcetype=0, max=5, domainid=sub["id"]).status == 431, \
        "a subdomain's limit may not exceed its parent's"
    assert error(admin, "updateResourceLimit", resourcetype=0, max=-1, account="dave",
                 domainid=sub["id"]).status == 431, "nor an account's its domain's"
    assert error(admin, "updateResourceLimit", resourcetype=0, max=1,
                 domainid=admin("listDomains", name="ROOT")["domain"][0]["id"]).status == 431


def test_domain_admins_set_limits_below_their_own(admin, app):
    org = admin("createDomain", name="org")["domain"]
    boss, boss_account = new_account(admin, app, "boss", accounttype=2, domainid=org["id"])
    new_account(admin, app, "eve", domainid=org["id"])
    assert boss("updateResourceLimit", resourcetype=4, max=3, account="eve", domainid=org["id"])[
        "resourcelimit"]["max"] == 3
    assert limits_of(boss, account="eve", domainid=org["id"])["template"] == 3
    assert error(boss, "updateResourceLimit", resourcetype=4, max=30, domainid=org["id"]).status == 531
    assert error(boss, "updateResourceLimit", resourcetype=4, max=30, account="boss", domainid=org["id"]).status \
        == 531
    assert error(boss, "updateResourceLimit", resourcetype=4, max=3, account="admin",
                 domainid=admin("listDomains", name="ROOT")["domain"][0]["id"]).status == 531


def test_template_and_project_limits(admin, app, cloud, zone):
    user, account = new_account(admin, app, "finn")
    admin("updateResourceLimit", resourcetype=4, max=1, account="finn", domainid=account["domainid"])
    admin("updateResourceLimit", resourcetype=5, max=1, account="finn", domainid=account["domainid"])
    register = dict(url="http://example.com/t.qcow2", zoneid=zone["zone"], format="QCOW2", hypervisor="Simulator",
                    displaytext="t")
    user("registerTemplate", name="t1", **register)
    exc = error(user, "registerTemplate", name="t2", **register)
    assert exc.status == 532 and "'template'" in exc.body["errortext"]
    user.wait(user("createProject", name="p1"))
    assert error(user, "createProject", name="p2").status == 532


def test_project_limits_count_the_projects_resources(admin, app, cloud, zone):
    user, account = new_account(admin, app, "gail")
    project = user.wait(user("createProject", name="lab"))["project"]
    admin("updateResourceLimit", resourcetype=0, max=1, projectid=project["id"])
    user.wait(deploy(user, cloud, zone, projectid=project["id"]))
    exc = error(deploy, user, cloud, zone, projectid=project["id"])
    assert exc.status == 532 and "for project name=lab" in exc.body["errortext"]
    user.wait(deploy(user, cloud, zone))  # the member's own account has its own limits


def test_update_resource_count_recounts_from_what_exists(admin, app, cloud, zone):
    from core.model import ResourceCount

    org = admin("createDomain", name="recount")["domain"]
    user, account = new_account(admin, app, "hank", domainid=org["id"])
    user.wait(deploy(user, cloud, zone))
    with cloud.db.transaction() as session:  # counts gone wrong (what updateResourceCount is for)
        session.execute(sa.update(ResourceCount).values(count=99))
    counts = {row["resourcetypename"]: row["resourcecount"] for row in admin(
        "updateResourceCount", domainid=org["id"], account="hank")["resourcecount"]}
    assert (counts["user_vm"], counts["cpu"], counts["memory"], counts["volume"], counts["template"]) == (
        1, 1, 512, 1, 0)
    assert counts["primary_storage"] == 2 * 1024**3
    domain_counts = {row["resourcetypename"]: row["resourcecount"] for row in admin(
        "updateResourceCount", domainid=org["id"])["resourcecount"]}
    assert domain_counts["user_vm"] == 1 and domain_counts["public_ip"] == 0
    only = admin("updateResourceCount", domainid=org["id"], resourcetype=0)["resourcecount"]
    assert [row["resourcetypename"] for row in only] == ["user_vm"]
    root = admin("listDomains", name="ROOT")["domain"][0]
    admin("updateResourceCount", domainid=root["id"])
    assert admin("listDomains", id=root["id"])["domain"][0]["vmtotal"] == 1


def test_snapshots_count_against_the_snapshot_and_secondary_storage_limits(admin, app, cloud, zone):
    from core.model import ResourceCount

    org = admin("createDomain", name="snapco")["domain"]
    user, account = new_account(admin, app, "ivy", domainid=org["id"])
    vm = user.wait(deploy(user, cloud, zone))["virtualmachine"]
    root = user("listVolumes", virtualmachineid=vm["id"])["volume"][0]  # 2 GiB
    admin("updateResourceLimit", resourcetype=11, max=3, account="ivy", domainid=org["id"])
    first = user.wait(user("createSnapshot", volumeid=root["id"]))["snapshot"]
    mine = user("listAccounts")["account"][0]
    assert (mine["snapshottotal"], mine["secondarystoragetotal"]) == (1, 2.0), "the backup's size, in GiB"
    exc = error(user, "createSnapshot", volumeid=root["id"])
    assert exc.status == 532 and exc.body["errortext"] == (
        f"Maximum number of resources of type 'secondary_storage' for account name=ivy in domain id={org['id']} "
        "has been exceeded."), "the volume's 2 GiB do not fit in the 1 GiB left"
    admin("updateResourceLimit", resourcetype=11, max=-1, account="ivy", domainid=org["id"])
    admin("updateResourceLimit", resourcetype=3, max=2, account="ivy", domainid=org["id"])
    second = user.wait(user("createSnapshot", volumeid=root["id"]))["snapshot"]
    exc = error(user, "createSnapshot", volumeid=root["id"])
    assert exc.status == 532 and "type 'snapshot' for account name=ivy" in exc.body["errortext"]
    assert user("listSnapshots")["count"] == 2, "the refused snapshot left nothing"

    with cloud.db.transaction() as session:  # counts gone wrong (what updateResourceCount is for)
        session.execute(sa.update(ResourceCount).values(count=99))
    counts = {row["resourcetypename"]: row["resourcecount"] for row in admin(
        "updateResourceCount", domainid=org["id"], account="ivy")["resourcecount"]}
    assert (counts["snapshot"], counts["secondary_storage"]) == (2, 4 * 1024**3)
    domain_counts = {row["resourcetypename"]: row["resourcecount"] for row in admin(
        "updateResourceCount", domainid=org["id"])["resourcecount"]}
    assert (domain_counts["snapshot"], domain_counts["secondary_storage"]) == (2, 4 * 1024**3)

    for snapshot in (first, second):
        user.wait(user("deleteSnapshot", id=snapshot["id"]))
    mine = user("listAccounts")["account"][0]
    assert (mine["snapshottotal"], mine["secondarystoragetotal"]) == (0, 0)
    assert admin("listDomains", id=org["id"])["domain"][0]["snapshottotal"] == 0


def test_a_failed_snapshot_gives_its_reservation_back(admin, app, cloud, zone, monkeypatch):
    user, account = new_account(admin, app, "jon")
    vm = user.wait(deploy(user, cloud, zone))["virtualmachine"]
    root = user("listVolumes", virtualmachineid=vm["id"])["volume"][0]
    storage = cloud.plugins.storage["simulator"]

    def broken(*args, **kw):
        raise RuntimeError("the image store is full")

    monkeypatch.setattr(storage, "backup_volume", broken)
    assert error(user.wait, user("createSnapshot", volumeid=root["id"])).status == 530
    mine = user("listAccounts")["account"][0]
    assert (mine["snapshottotal"], mine["secondarystoragetotal"]) == (0, 0)
