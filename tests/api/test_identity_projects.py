"""Projects: their members and roles, resources owned through projectid, and who sees them."""

from __future__ import annotations

import pytest

from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, offering_id


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kw)
    return info.value


def new_account(admin, app, username, **kw) -> ApiClient:
    account = admin("createAccount", username=username, password="pw", email=f"{username}@example.com",
                    firstname=username, lastname="T", accounttype=kw.pop("accounttype", 0), **kw)["account"]
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    return ApiClient(app, keys["apikey"], keys["secretkey"])


@pytest.fixture
def world(admin, app, cloud):
    zone = simulated_zone(cloud)
    owner, member, outsider = (new_account(admin, app, name) for name in ("owner", "member", "outsider"))
    job = owner("createProject", name="apollo", displaytext="Moon shot")
    project = owner.wait(job)["project"]
    return dict(zone=zone, owner=owner, member=member, outsider=outsider, project=project)


def deploy(client, zone, cloud, **kw):
    job = client("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                 templateid=zone["template"], **kw)
    return client.wait(job)["virtualmachine"]


def test_create_project_makes_the_creator_its_admin(world, admin):
    project, owner = world["project"], world["owner"]
    assert (project["name"], project["displaytext"], project["state"], project["account"]) == (
        "apollo", "Moon shot", "Active", "owner")
    assert project["owner"] == [{"account": "owner", "accountid": owner("listAccounts")["account"][0]["id"]}]
    assert project["vmlimit"] == "20" and project["vmtotal"] == 0
    members = owner("listProjectAccounts", projectid=project["id"])["projectaccount"]
    assert [(m["account"], m["role"]) for m in members] == [("owner", "Admin")]
    assert owner("listProjects")["project"][0]["id"] == project["id"]
    assert world["outsider"]("listProjects") == {}
    assert admin("listProjects", listall=True)["count"] == 1
    assert admin("listAccounts", listall=True, name="PrjAcct-apollo") == {}, "a project's account is not listed"
    assert error(owner, "createProject", name="apollo").status == 431, "names are unique in the domain"


def test_members_share_the_projects_resources_and_outsiders_see_nothing(world, cloud):
    zone, owner, member, outsider, project = (world[k] for k in ("zone", "owner", "member", "outsider", "project"))
    assert error(member, "listVirtualMachines", projectid=project["id"]).status == 531
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="member"))
    vm = deploy(member, zone, cloud, projectid=project["id"], name="shared")
    assert (vm["project"], vm["projectid"]) == ("apollo", project["id"]) and "account" not in vm
    for client in (owner, member):
        listed = client("listVirtualMachines", projectid=project["id"])["virtualmachine"]
        assert [v["id"] for v in listed] == [vm["id"]]
        assert client("listVirtualMachines") == {}, "without projectid no project resources are listed"
    assert error(outsider, "listVirtualMachines", projectid=project["id"]).status == 531
    assert outsider("listVirtualMachines", listall=True) == {}
    assert error(outsider, "stopVirtualMachine", id=vm["id"]).status == 531
    member.wait(member("stopVirtualMachine", id=vm["id"]))
    assert owner("listVirtualMachines", projectid=project["id"])["virtualmachine"][0]["state"] == "Stopped"
    volumes = member("listVolumes", projectid=project["id"])["volume"]
    assert [v["virtualmachineid"] for v in volumes] == [vm["id"]]
    assert error(outsider, "deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                 templateid=zone["template"], projectid=project["id"]).status == 531
    events = member("listEvents", projectid=project["id"])["event"]
    assert "PROJECT.ACCOUNT.ADD" in {e["type"] for e in events}
    assert project["id"] in {p["id"] for p in member("listProjects")["project"]}
    limits = member("listResourceLimits", projectid=project["id"], resourcetype=0)["resourcelimit"]
    assert limits[0]["max"] == 20 and limits[0]["projectid"] == project["id"]


def test_only_project_admins_manage_membership(world):
    owner, member, outsider, project = (world[k] for k in ("owner", "member", "outsider", "project"))
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="member"))
    assert error(owner, "addAccountToProject", projectid=project["id"], account="member").status == 431
    assert error(member, "addAccountToProject", projectid=project["id"], account="outsider").status == 531
    assert error(member, "updateProject", id=project["id"], displaytext="mine").status == 531
    assert error(member, "deleteProject", id=project["id"]).status == 531
    assert error(outsider, "listProjectAccounts", projectid=project["id"]).status == 531
    assert error(owner, "addAccountToProject", projectid=project["id"], account="nobody").status == 431
    assert error(owner, "deleteAccountFromProject", projectid=project["id"], account="owner").status == 431, \
        "the last admin stays"
    updated = owner.wait(owner("updateProject", id=project["id"], account="member", displaytext="Mars"))["project"]
    assert (updated["account"], updated["displaytext"]) == ("member", "Mars")
    roles = {m["account"]: m["role"] for m in member("listProjectAccounts", projectid=project["id"])["projectaccount"]}
    assert roles == {"owner": "Regular", "member": "Admin"}, "swapowner (default) demotes the old admin"
    member.wait(member("deleteAccountFromProject", projectid=project["id"], account="owner"))
    assert error(owner, "listProjectAccounts", projectid=project["id"]).status == 531
    assert owner("listProjects") == {}


def test_delete_project_needs_cleanup_while_it_owns_resources(world, cloud, admin):
    zone, owner, project = world["zone"], world["owner"], world["project"]
    vm = deploy(owner, zone, cloud, projectid=project["id"])
    assert error(owner, "deleteProject", id=project["id"]).status == 536
    owner.wait(owner("deleteProject", id=project["id"], cleanup=True))
    assert admin("listProjects", listall=True) == {}
    assert admin("listVirtualMachines", listall=True, id=vm["id"]) == {}
    owner_account = owner("listAccounts")["account"][0]
    assert owner_account["projecttotal"] == 0, "the owner's project count is given back"


def test_domain_admins_reach_the_projects_of_their_domains(admin, app, cloud):
    sales = admin("createDomain", name="sales")["domain"]
    boss = new_account(admin, app, "boss", accounttype=2, domainid=sales["id"])
    seller = new_account(admin, app, "seller", domainid=sales["id"])
    project = seller.wait(seller("createProject", name="deals"))["project"]
    assert project["domainid"] == sales["id"]
    assert boss("listProjects", listall=True)["project"][0]["id"] == project["id"]
    boss.wait(boss("addAccountToProject", projectid=project["id"], account="boss"))
    other = new_account(admin, app, "stranger")
    assert error(other, "listProjectAccounts", projectid=project["id"]).status == 531
    assert error(other, "createProject", name="x", domainid=sales["id"]).status == 531, "not its domain"


def test_projectid_minus_one_lists_the_resources_of_every_project_of_the_caller(world, cloud, admin):
    zone, owner, member, outsider = (world[k] for k in ("zone", "owner", "member", "outsider"))
    second = owner.wait(owner("createProject", name="gemini"))["project"]
    third = outsider.wait(outsider("createProject", name="mercury"))["project"]
    for project in (world["project"], second):
        owner.wait(owner("addAccountToProject", projectid=project["id"], account="member"))
    vms = {name: deploy(client, zone, cloud, projectid=project["id"], name=name)["id"]
           for name, client, project in (("apollo-vm", owner, world["project"]), ("gemini-vm", owner, second),
                                         ("mercury-vm", outsider, third))}
    own = deploy(member, zone, cloud, name="own-vm")["id"]

    listed = {v["name"] for v in member("listVirtualMachines", projectid=-1)["virtualmachine"]}
    assert listed == {"apollo-vm", "gemini-vm"}, "both projects it belongs to, not a third, not its own VMs"
    volumes = {v["virtualmachineid"] for v in member("listVolumes", projectid=-1)["volume"]}
    assert volumes == {vms["apollo-vm"], vms["gemini-vm"]}
    assert own not in volumes
    assert {v["name"] for v in outsider("listVirtualMachines", projectid="-1")["virtualmachine"]} == {"mercury-vm"}
    everything = {v["name"] for v in admin("listVirtualMachines", projectid=-1)["virtualmachine"]}
    assert everything == {"apollo-vm", "gemini-vm", "mercury-vm"}, "root admin: every project"
    assert error(member, "listVirtualMachines", projectid=-1, account="member").status == 431
    assert error(member, "listVirtualMachines", projectid=-2).status == 431, "-1 is the only number taken"
    assert error(member, "listResourceLimits", projectid=-1).status == 431, "names one project"
