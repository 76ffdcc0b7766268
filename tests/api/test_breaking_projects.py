"""Breaker findings: projects, project roles, invitations, projectid=-1, paging of project lists.

Each test states what CloudStack answers; each fails today and should pass once fixed."""

from __future__ import annotations

import concurrent.futures
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
import sqlalchemy as sa

from tests.api.test_identity_projects import deploy, error, new_account
from tests.core.factories import simulated_zone
from tests.helpers import sign


@pytest.fixture
def world(admin, app, cloud):
    zone = simulated_zone(cloud)
    owner, member, outsider = (new_account(admin, app, name) for name in ("owner", "member", "outsider"))
    project = owner.wait(owner("createProject", name="apollo"))["project"]
    return dict(zone=zone, owner=owner, member=member, outsider=outsider, project=project)


def _restricted_member(world, *rules):
    owner, project = world["owner"], world["project"]
    role = owner("createProjectRole", projectid=project["id"], name="restricted")["projectrole"]
    for rule in rules:
        owner("createProjectRolePermission", projectid=project["id"], projectroleid=role["id"], rule=rule,
              permission="deny")
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="member", projectroleid=role["id"]))
    return role


def test_a_project_role_denying_lists_is_not_bypassed_with_projectid_minus_one(world, cloud):
    """GET listVirtualMachines projectid=-1 (and listVolumes, listEvents) by a Regular member whose project
    role denies list*: with projectid=<the project> Strato answers 531 "The API listVirtualMachines is
    denied for the user's/account's project role.", but with projectid=-1 it lists the very same
    project's VMs, volumes and events. The role's deny must hold for the project's rows however the
    project is named (rows of a project whose role denies the command are left out, or 531)."""
    zone, owner, member, project = (world[k] for k in ("zone", "owner", "member", "project"))
    _restricted_member(world, "list*")
    vm = deploy(owner, zone, cloud, projectid=project["id"], name="secret-vm")
    assert error(member, "listVirtualMachines", projectid=project["id"]).status == 531
    for command in ("listVirtualMachines", "listVolumes", "listEvents"):
        try:
            listed = member(command, projectid="-1")
        except Exception as exc:  # a 531 is an acceptable answer too
            assert getattr(exc, "status", None) == 531, exc
            continue
        text = json.dumps(listed)
        assert vm["id"] not in text, f"{command} projectid=-1 shows the project's rows the project role denies"


def test_create_volume_with_projectid_makes_the_project_own_it(world, cloud):
    """POST createVolume name=v zoneid=.. diskofferingid=.. projectid=<project> (CloudStack's createVolume has
    projectid): Strato has no projectid parameter and drops it silently, so the volume is created in (and
    counted against) the caller's own account instead of the project. Expected: the project owns the
    volume (or, if not supported, a 431 naming projectid -- never silently another owner)."""
    zone, owner, project = world["zone"], world["owner"], world["project"]
    offering = owner("listDiskOfferings")["diskoffering"][0]["id"]
    try:
        volume = owner.wait(owner("createVolume", name="v", zoneid=zone["zone"], diskofferingid=offering,
                                  projectid=project["id"]))["volume"]
    except Exception as exc:
        assert getattr(exc, "status", None) == 431 and "projectid" in exc.body["errortext"], exc
        return
    assert volume.get("projectid") == project["id"], volume
    assert owner("listVolumes", id=volume["id"]) == {}, "the caller's own account got the project's volume"


def test_list_project_accounts_takes_pagesize_minus_one_and_page_zero(world):
    """GET listProjectAccounts projectid=<p> pagesize=-1 and ... page=0 pagesize=1. CloudStack's
    ListProjectAccountsCmd is a BaseListCmd: -1 lists everything and page 0 is the first page, as
    every other Strato list now does. Strato answers 431 "invalid value for parameter pagesize: must
    be at least 1" (and the same for page)."""
    owner, project = world["owner"], world["project"]
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="member"))
    assert owner("listProjectAccounts", projectid=project["id"], pagesize=-1)["count"] == 2
    page = owner("listProjectAccounts", projectid=project["id"], page=0, pagesize=1)
    assert len(page["projectaccount"]) == 1
    for name in ("a", "b"):  # listProjectRoles is a BaseListCmd too
        owner("createProjectRole", projectid=project["id"], name=name)
    assert owner("listProjectRoles", projectid=project["id"], pagesize=-1)["count"] == 2
    assert len(owner("listProjectRoles", projectid=project["id"], page=0, pagesize=1)["projectrole"]) == 1


def test_a_huge_invitation_timeout_does_not_break_every_invitation_command(admin, world):
    """updateConfiguration name=project.invite.timeout value=4611686018427387904 is accepted (the key has
    only minimum=1), and afterwards listProjectInvitations, addAccountToProject (with
    project.invite.required) and updateProjectInvitation all answer 530 "Internal error" (an
    OverflowError computing now - timeout). Expected: the setting is refused with 431 (a range on the
    key), or the commands keep working."""
    owner, project = world["owner"], world["project"]
    try:
        admin("updateConfiguration", name="project.invite.timeout", value=str(2**62))
    except Exception as exc:
        assert getattr(exc, "status", None) == 431, exc
        return
    admin("updateConfiguration", name="project.invite.required", value="true")
    owner("listProjectInvitations")
    owner.wait(owner("addAccountToProject", projectid=project["id"], account="member"))
    assert owner("listProjectInvitations", projectid=project["id"])["count"] == 1


def test_a_long_project_name_is_refused_or_fits_the_projects_account(admin, world, cloud):
    """createProject name=<250 characters>: Strato makes the project's account
    "PrjAcct-<name>-<uuid8>" (267 characters) in a 255-character column: on PostgreSQL (and MariaDB)
    the command answers 530 "Internal error"; on SQLite the over-long name is stored. CloudStack
    stores the project account under a name that fits. Expected: 431 naming the parameter, or a
    project whose account name fits in 255 characters."""
    from core.model import Account, Project

    owner = world["owner"]
    try:
        made = owner.wait(owner("createProject", name="x" * 250))["project"]
    except Exception as exc:
        assert getattr(exc, "status", None) == 431 and "name" in exc.body["errortext"], exc
        return
    with cloud.db.transaction() as session:
        project = session.scalars(sa.select(Project).where(Project.uuid == made["id"])).one()
        assert len(session.get(Account, project.project_account_id).name) <= 255


def _call(url, keys, command, **params):
    query = {"command": command, "response": "json", "apiKey": keys[0], **params}
    query["signature"] = sign(query, keys[1])
    try:
        with urllib.request.urlopen(f"{url}?{urllib.parse.urlencode(query)}", timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_parallel_project_roles_of_one_name_answer_431_not_530(admin, world, cloud, live_server):
    """12 parallel createProjectRole projectid=<p> name=dup by the project's admin over a live server:
    exactly one is made and the others must answer 431 ("project apollo already has a role named dup"),
    as a sequential duplicate does. The name check and the insert race: the losers hit the unique
    constraint and answer 530 "Internal error"."""
    from tests.helpers import user_keys

    project = world["project"]
    keys = user_keys(cloud, "owner")
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        replies = list(pool.map(lambda i: _call(live_server.url, keys, "createProjectRole",
                                                projectid=project["id"], name="dup"), range(12)))
    codes = sorted(status for status, _ in replies)
    assert codes == [200] + [431] * 11, codes
