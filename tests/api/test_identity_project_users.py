"""Users as project members (addUserToProject, CloudStack 4.15+): one user of an account acts in
the project with its own role and project role; the other users of that account do not."""

from __future__ import annotations

import pytest

from tests.api.test_identity_project_roles import invite_required
from tests.api.test_identity_projects import deploy, error, new_account
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient


@pytest.fixture
def world(admin, app, cloud):
    zone = simulated_zone(cloud)
    owner, team = new_account(admin, app, "owner"), new_account(admin, app, "team")
    second = admin("createUser", account="team", username="team2", password="pw", email="team2@example.com",
                   firstname="Second", lastname="T")["user"]
    keys = admin("registerUserKeys", id=second["id"])["userkeys"]
    team2 = ApiClient(app, keys["apikey"], keys["secretkey"])
    project = owner.wait(owner("createProject", name="apollo"))["project"]
    return dict(zone=zone, owner=owner, team=team, team2=team2, team2_id=second["id"], project=project)


def user_members(client, project) -> dict[str, tuple[str, str, str | None]]:
    return {m["username"]: (m["account"], m["role"], m.get("projectroleid"))
            for m in client("listProjectAccounts", projectid=project["id"])["projectaccount"] if "username" in m}


def test_a_user_member_acts_in_the_project_and_the_other_users_of_its_account_do_not(world, cloud):
    zone, owner, team, team2, project = (world[k] for k in ("zone", "owner", "team", "team2", "project"))
    owner.wait(owner("addUserToProject", projectid=project["id"], username="team2"))
    assert user_members(owner, project) == {"team2": ("team", "Regular", None)}
    [member] = owner("listProjectAccounts", projectid=project["id"], userid=world["team2_id"])["projectaccount"]
    assert member["userid"] == world["team2_id"] and [u["username"] for u in member["user"]] == ["team2"]

    vm = deploy(team2, zone, cloud, projectid=project["id"], name="by-team2")
    assert team2("listVirtualMachines", projectid=project["id"])["count"] == 1
    assert [p["name"] for p in team2("listProjects")["project"]] == ["apollo"]
    assert team2("listVirtualMachines", projectid="-1")["virtualmachine"][0]["id"] == vm["id"]
    team2.wait(team2("stopVirtualMachine", id=vm["id"]))

    # the account's other user gets nothing through team2's membership
    assert error(team, "listVirtualMachines", projectid=project["id"]).status == 531
    assert error(team, "startVirtualMachine", id=vm["id"]).status == 531, "a project VM, named by id"
    assert error(team, "listProjectAccounts", projectid=project["id"]).status == 531
    assert team("listProjects") == {} and team("listVirtualMachines", projectid="-1") == {}
    assert error(team, "deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=vm["serviceofferingid"],
                 templateid=zone["template"], projectid=project["id"]).status == 531

    assert error(owner, "addUserToProject", projectid=project["id"], username="team2").status == 431, "already"
    assert error(owner, "addAccountToProject", projectid=project["id"], account="team").status == 431, \
        "an account and its users are not members side by side"
    assert error(owner, "addUserToProject", projectid=project["id"], username="nobody").status == 431
    assert error(team2, "addUserToProject", projectid=project["id"], username="team").status == 531, "Regular"

    owner.wait(owner("deleteUserFromProject", projectid=project["id"], userid=world["team2_id"]))
    assert user_members(owner, project) == {}
    assert error(team2, "listVirtualMachines", projectid=project["id"]).status == 531
    assert error(owner, "deleteUserFromProject", projectid=project["id"], userid=world["team2_id"]).status == 431
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="team"))  # the whole account now
    assert error(owner, "addUserToProject", projectid=project["id"], username="team2").status == 431
    assert team("listVirtualMachines", projectid=project["id"])["count"] == 1


def test_a_user_member_has_its_own_role_and_project_role(world, cloud):
    zone, owner, team, team2, project = (world[k] for k in ("zone", "owner", "team", "team2", "project"))
    role = owner("createProjectRole", projectid=project["id"], name="viewer")["projectrole"]
    owner("createProjectRolePermission", projectid=project["id"], projectroleid=role["id"],
          rule="deployVirtualMachine", permission="deny")
    owner.wait(owner("addUserToProject", projectid=project["id"], username="team2", projectroleid=role["id"]))
    assert user_members(owner, project) == {"team2": ("team", "Regular", role["id"])}
    assert error(team2, "deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=deploy(
        owner, zone, cloud, projectid=project["id"])["serviceofferingid"], templateid=zone["template"],
        projectid=project["id"]).status == 531, "its project role denies it"
    assert team2("listVirtualMachines", projectid=project["id"])["count"] == 1

    owner.wait(owner("deleteUserFromProject", projectid=project["id"], userid=world["team2_id"]))
    owner.wait(owner("addUserToProject", projectid=project["id"], username="team2", roletype="Admin"))
    assert team("listAccounts")["account"][0]["projecttotal"] == 1, "a user Admin counts for its account"
    team2.wait(team2("updateProject", id=project["id"], displaytext="run by team2"))
    assert error(team, "updateProject", id=project["id"], displaytext="mine").status == 531
    owner.wait(owner("deleteAccountFromProject", projectid=project["id"], account="owner"))
    assert error(team2, "deleteUserFromProject", projectid=project["id"],
                 userid=world["team2_id"]).status == 431, "the only admin stays"
    owner_view = team2("listProjects")["project"][0]["owner"]
    assert owner_view == [{"account": "team", "accountid": team("listAccounts")["account"][0]["id"],
                           "user": "team2", "userid": world["team2_id"]}]


def test_with_invitations_required_the_invited_user_accepts_not_its_account(world, admin):
    owner, team, team2, project = (world[k] for k in ("owner", "team", "team2", "project"))
    invite_required(admin)
    owner.wait(owner("addUserToProject", projectid=project["id"], username="team2", roletype="Admin"))
    assert user_members(owner, project) == {}, "invited, not yet a member"
    assert error(owner, "addUserToProject", projectid=project["id"], username="team2").status == 431, "pending"
    [invitation] = team2("listProjectInvitations")["projectinvitation"]
    assert (invitation["account"], invitation["userid"], invitation["state"]) == ("team", world["team2_id"], "Pending")
    assert team("listProjectInvitations") == {}, "not the account's other user's"
    assert error(team, "updateProjectInvitation", projectid=project["id"]).status == 431
    team2.wait(team2("updateProjectInvitation", projectid=project["id"]))
    assert user_members(owner, project) == {"team2": ("team", "Admin", None)}
    assert error(team, "listVirtualMachines", projectid=project["id"]).status == 531


def test_deleting_a_user_ends_its_memberships_and_gives_the_project_count_back(world, admin):
    owner, team, project = world["owner"], world["team"], world["project"]
    owner.wait(owner("addUserToProject", projectid=project["id"], username="team2", roletype="Admin"))
    assert team("listAccounts")["account"][0]["projecttotal"] == 1
    admin("deleteUser", id=world["team2_id"])
    assert user_members(owner, project) == {}
    assert team("listAccounts")["account"][0]["projecttotal"] == 0
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="team"))  # no user member is left


def test_update_project_userid_changes_a_user_members_role(world):
    """updateProject userid= (CloudStack 4.15+): swapowner=false with roletype promotes/demotes that
    user member; swapowner (default) makes it the owner and the other admins Regular."""
    owner, team, team2, project = (world[k] for k in ("owner", "team", "team2", "project"))
    owner.wait(owner("addUserToProject", projectid=project["id"], username="team2"))
    assert error(owner, "updateProject", id=project["id"], account="team", userid=world["team2_id"]).status == 431
    assert error(owner, "updateProject", id=project["id"], userid=world["team2_id"], swapowner=False,
                 roletype="Boss").status == 431
    owner.wait(owner("updateProject", id=project["id"], userid=world["team2_id"], swapowner=False, roletype="Admin"))
    assert user_members(owner, project) == {"team2": ("team", "Admin", None)}
    assert team("listAccounts")["account"][0]["projecttotal"] == 1, "a user Admin counts for its account"
    owner.wait(owner("updateProject", id=project["id"], userid=world["team2_id"], swapowner=False, roletype="Regular"))
    assert team("listAccounts")["account"][0]["projecttotal"] == 0

    owner.wait(owner("updateProject", id=project["id"], userid=world["team2_id"]))  # swap: team2 owns it alone
    roles = {m.get("username", m["account"]): m["role"]
             for m in team2("listProjectAccounts", projectid=project["id"])["projectaccount"]}
    assert roles == {"owner": "Regular", "team2": "Admin"}
    assert error(owner, "updateProject", id=project["id"], displaytext="mine").status == 531, "no longer an admin"
    assert error(team2, "updateProject", id=project["id"], userid=world["team2_id"], swapowner=False,
                 roletype="Regular").status == 431, "the only admin is not demoted"
    [other] = [u["id"] for u in team("listUsers")["user"] if u["username"] == "team"]
    assert error(team2, "updateProject", id=project["id"], userid=other).status == 431, "not a user member"


def test_update_project_invitation_userid_answers_that_users_invitation(world, admin):
    """updateProjectInvitation userid=: the invitation of that user, answered by the user itself or an
    admin above its account; the account's other user may not."""
    owner, team, project = world["owner"], world["team"], world["project"]
    invite_required(admin)
    owner.wait(owner("addUserToProject", projectid=project["id"], username="team2"))
    assert error(team, "updateProjectInvitation", projectid=project["id"], userid=world["team2_id"]).status == 531
    assert error(admin, "updateProjectInvitation", projectid=project["id"], account="team",
                 userid=world["team2_id"]).status == 431
    admin.wait(admin("updateProjectInvitation", projectid=project["id"], userid=world["team2_id"]))
    assert user_members(owner, project) == {"team2": ("team", "Regular", None)}
    assert error(admin, "updateProjectInvitation", projectid=project["id"], userid=world["team2_id"]).status == 431, \
        "answered already"
