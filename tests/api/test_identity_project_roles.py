"""Project members' roles (Admin/Regular), project roles restricting what a Regular member may
call in a project, and invitations (project.invite.required)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core.model import ProjectInvitation
from tests.api.test_identity_projects import deploy, error, new_account
from tests.core.factories import simulated_zone


@pytest.fixture
def world(admin, app, cloud):
    zone = simulated_zone(cloud)
    owner, member, outsider = (new_account(admin, app, name) for name in ("owner", "member", "outsider"))
    project = owner.wait(owner("createProject", name="apollo"))["project"]
    return dict(zone=zone, owner=owner, member=member, outsider=outsider, project=project)


def members(client, project) -> dict[str, tuple[str, str | None]]:
    return {m["account"]: (m["role"], m.get("projectroleid"))
            for m in client("listProjectAccounts", projectid=project["id"])["projectaccount"]}


def test_regular_members_use_the_project_and_admins_manage_it(world, admin):
    owner, member, outsider, project = (world[k] for k in ("owner", "member", "outsider", "project"))
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="member"))
    assert members(owner, project)["member"] == ("Regular", None)
    assert error(member, "updateProject", id=project["id"], displaytext="mine").status == 531
    assert error(member, "createProjectRole", projectid=project["id"], name="ro").status == 531
    owner.wait(owner("updateProject", id=project["id"], account="member", roletype="Admin", swapowner=False))
    assert members(owner, project) == {"owner": ("Admin", None), "member": ("Admin", None)}
    assert member("listAccounts")["account"][0]["projecttotal"] == 1, "an Admin's project counts for it"
    member.wait(member("addAccountToProject", projectid=project["id"], account="outsider"))
    member.wait(member("updateProject", id=project["id"], account="owner", roletype="Regular", swapowner=False))
    assert owner("listAccounts")["account"][0]["projecttotal"] == 0
    assert error(member, "updateProject", id=project["id"], account="member", roletype="Regular",
                 swapowner=False).status == 431, "the only admin stays"
    assert error(member, "updateProject", id=project["id"], account="member", roletype="Boss",
                 swapowner=False).status == 431
    assert error(owner, "deleteAccountFromProject", projectid=project["id"], account="outsider").status == 531
    regular = {m["account"] for m in member("listProjectAccounts", projectid=project["id"], role="Regular")
               ["projectaccount"]}
    assert regular == {"owner", "outsider"}


def test_a_project_role_restricts_a_regular_member_and_never_grants(world, cloud):
    zone, owner, member, project = (world[k] for k in ("zone", "owner", "member", "project"))
    role = owner("createProjectRole", projectid=project["id"], name="operator", description="no deploys")["projectrole"]
    assert (role["name"], role["description"], role["projectid"]) == ("operator", "no deploys", project["id"])
    assert error(owner, "createProjectRole", projectid=project["id"], name="Operator").status == 431
    deny = owner("createProjectRolePermission", projectid=project["id"], projectroleid=role["id"],
                 rule="deployVirtualMachine", permission="deny")["projectrolepermission"]
    allow = owner("createProjectRolePermission", projectid=project["id"], projectroleid=role["id"], rule="stop*",
                  permission="allow")["projectrolepermission"]
    last = owner("createProjectRolePermission", projectid=project["id"], projectroleid=role["id"],
                 rule="*VirtualMachine", permission="deny")["projectrolepermission"]
    assert (deny["projectrolename"], deny["rule"], deny["permission"]) == ("operator", "deployVirtualMachine", "deny")
    assert error(owner, "createProjectRolePermission", projectid=project["id"], projectroleid=role["id"],
                 rule="list Zones", permission="allow").status == 431
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="member", projectroleid=role["id"]))
    assert members(owner, project)["member"] == ("Regular", role["id"])

    vm = deploy(owner, zone, cloud, projectid=project["id"])
    assert error(member, "deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=vm["serviceofferingid"],
                 templateid=zone["template"], projectid=project["id"]).status == 531, "denied in the project"
    own_vm = deploy(member, zone, cloud)  # outside the project its account's role alone decides
    assert member("listVirtualMachines", projectid=project["id"])["count"] == 1, "no rule matches: allowed"
    member.wait(member("stopVirtualMachine", id=vm["id"]))  # stop* comes before *VirtualMachine
    assert error(member, "startVirtualMachine", id=vm["id"]).status == 531, "a project VM, named by id"

    rules = owner("listProjectRolePermissions", projectid=project["id"], projectroleid=role["id"])
    assert [r["id"] for r in rules["projectrolepermission"]] == [deny["id"], allow["id"], last["id"]]
    owner("updateProjectRolePermission", projectid=project["id"], projectroleid=role["id"],
          ruleorder=",".join([last["id"], deny["id"], allow["id"]]))
    assert error(member, "stopVirtualMachine", id=vm["id"]).status == 531, "*VirtualMachine first now"
    member.wait(member("stopVirtualMachine", id=own_vm["id"]))  # its own VM: the project role does not apply
    owner("updateProjectRolePermission", projectid=project["id"], projectroleid=role["id"],
          projectrolepermissionid=last["id"], permission="allow")
    member.wait(member("startVirtualMachine", id=vm["id"]))
    # a project role never grants what the account's role does not have
    assert error(member, "createProjectRolePermission", projectid=project["id"], projectroleid=role["id"],
                 rule="*", permission="allow").status == 531
    assert error(member, "createZone", name="z", networktype="Basic", dns1="8.8.8.8", internaldns1="8.8.8.8",
                 projectid=project["id"]).status == 432

    assert error(owner, "deleteProjectRole", projectid=project["id"], id=role["id"]).status == 531, "in use"
    owner("deleteProjectRolePermission", projectid=project["id"], id=deny["id"])
    assert owner("listProjectRolePermissions", projectid=project["id"])["count"] == 2
    renamed = owner("updateProjectRole", projectid=project["id"], id=role["id"], name="ops")["projectrole"]
    assert renamed["name"] == "ops"
    assert [r["name"] for r in member("listProjectRoles", projectid=project["id"])["projectrole"]] == ["ops"]
    owner.wait(owner("deleteAccountFromProject", projectid=project["id"], account="member"))
    owner("deleteProjectRole", projectid=project["id"], id=role["id"])
    assert owner("listProjectRoles", projectid=project["id"]) == {}
    assert owner("listProjectRolePermissions", projectid=project["id"]) == {}


def test_project_roles_belong_to_their_project(world):
    owner, outsider, project = world["owner"], world["outsider"], world["project"]
    other = outsider.wait(outsider("createProject", name="gemini"))["project"]
    role = outsider("createProjectRole", projectid=other["id"], name="theirs")["projectrole"]
    assert error(owner, "listProjectRoles", projectid=other["id"]).status == 531
    assert error(owner, "updateProjectRole", projectid=project["id"], id=role["id"], name="x").status == 431
    assert error(owner, "createProjectRolePermission", projectid=project["id"], projectroleid=role["id"],
                 rule="list*", permission="deny").status == 431
    assert error(owner, "addAccountToProject", projectid=project["id"], account="outsider",
                 projectroleid=role["id"]).status == 431


def invite_required(admin, seconds: int | None = None):
    admin("updateConfiguration", name="project.invite.required", value="true")
    if seconds is not None:
        admin("updateConfiguration", name="project.invite.timeout", value=str(seconds))


def test_with_invitations_required_an_account_joins_by_accepting(world, admin):
    owner, member, outsider, project = (world[k] for k in ("owner", "member", "outsider", "project"))
    invite_required(admin)
    assert admin("listCapabilities")["capability"]["projectinviterequired"] is True
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="member", roletype="Admin"))
    assert "member" not in members(owner, project), "invited, not yet a member"
    assert error(owner, "addAccountToProject", projectid=project["id"], account="member").status == 431
    assert error(owner, "addAccountToProject", projectid=project["id"]).status == 431, "account or email"
    invitations = member("listProjectInvitations")["projectinvitation"]
    assert [(i["project"], i["account"], i["state"]) for i in invitations] == [("apollo", "member", "Pending")]
    assert owner("listProjectInvitations", projectid=project["id"])["count"] == 1
    assert error(member, "listProjectInvitations", projectid=project["id"]).status == 531, "project admins only"
    assert outsider("listProjectInvitations") == {}
    assert error(outsider, "updateProjectInvitation", projectid=project["id"]).status == 431, "none for it"
    assert error(outsider, "updateProjectInvitation", projectid=project["id"], account="member").status == 531
    member.wait(member("updateProjectInvitation", projectid=project["id"]))
    assert members(owner, project)["member"] == ("Admin", None), "with the invitation's role"
    assert member("listProjectInvitations", state="Completed")["projectinvitation"][0]["state"] == "Completed"
    assert member("listProjectInvitations", activeonly=True) == {}

    owner.wait(owner("addAccountToProject", projectid=project["id"], account="outsider"))
    outsider.wait(outsider("updateProjectInvitation", projectid=project["id"], accept=False))
    assert "outsider" not in members(owner, project)
    assert outsider("listProjectInvitations")["projectinvitation"][0]["state"] == "Declined"
    invitation = outsider("listProjectInvitations")["projectinvitation"][0]["id"]
    assert error(outsider, "deleteProjectInvitation", id=invitation).status == 531
    owner.wait(owner("deleteProjectInvitation", id=invitation))
    assert outsider("listProjectInvitations") == {}


def test_invitations_expire(world, admin, cloud):
    """(Email invitations and their mail: test_identity_invitation_mail.py.)"""
    owner, member, project = (world[k] for k in ("owner", "member", "project"))
    invite_required(admin, seconds=3600)
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="member"))
    with cloud.db.transaction() as session:  # an hour and a bit ago
        session.execute(sa.update(ProjectInvitation).where(ProjectInvitation.account_id.is_not(None))
                        .values(created=dt.datetime.utcnow() - dt.timedelta(seconds=3700)))
    assert member("listProjectInvitations")["projectinvitation"][0]["state"] == "Expired"
    assert member("listProjectInvitations", activeonly=True) == {}
    failure = error(member, "updateProjectInvitation", projectid=project["id"])
    assert failure.status == 431 and "expired" in failure.body["errortext"]
    assert "member" not in members(owner, project)
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="member"))  # invited again
    member.wait(member("updateProjectInvitation", projectid=project["id"]))
    assert "member" in members(owner, project)
