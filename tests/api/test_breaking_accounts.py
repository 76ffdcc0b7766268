"""Breaker findings: deleteAccount leaves storage and projects behind.

Each test fails today and should pass once fixed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.api.test_identity_projects import new_account
from tests.core.factories import simulated_zone
from tests.helpers import offering_id


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud)


def test_delete_account_removes_data_volumes_and_snapshots_and_gives_their_counts_back(admin, app, cloud, zone):
    """The account has a VM, a detached data volume and snapshots of both volumes; deleteAccount id=<it>
    answers success, expunges the VM, but the data volume stays Ready, both snapshots stay BackedUp
    (listVolumes/listSnapshots listall=true still show them) and the account's and the domain's
    counts keep volume 1, snapshot 2, primary storage 5 GiB, secondary storage 7 GiB (no cleaner is
    registered for volumes or snapshots). CloudStack's deleteAccount removes the account's volumes
    and snapshots and their resource counts."""
    from core.model import Account, ResourceCount, Snapshot, Volume

    leaver = new_account(admin, app, "leaver")
    account_id = leaver("listAccounts")["account"][0]["id"]
    vm = leaver.wait(leaver("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                            templateid=zone["template"]))["virtualmachine"]
    offering = leaver("listDiskOfferings")["diskoffering"][0]["id"]
    data = leaver.wait(leaver("createVolume", name="data", zoneid=zone["zone"], diskofferingid=offering))["volume"]
    leaver.wait(leaver("attachVolume", id=data["id"], virtualmachineid=vm["id"]))
    leaver.wait(leaver("detachVolume", id=data["id"]))
    root = leaver("listVolumes", type="ROOT")["volume"][0]
    leaver.wait(leaver("createSnapshot", volumeid=root["id"]))
    leaver.wait(leaver("createSnapshot", volumeid=data["id"]))

    admin.wait(admin("deleteAccount", id=account_id))

    assert admin("listVolumes", listall=True) == {}, "the data volume outlived its account"
    assert admin("listSnapshots", listall=True) == {}, "the snapshots outlived their account"
    with cloud.db.transaction() as session:
        account = session.scalars(sa.select(Account).where(Account.uuid == account_id)).one()
        assert session.scalars(sa.select(Volume).where(Volume.account_id == account.id,
                                                       Volume.removed.is_(None))).all() == []
        assert session.scalars(sa.select(Snapshot).where(Snapshot.account_id == account.id,
                                                         Snapshot.removed.is_(None))).all() == []
        left = {(c.resource_type, c.count) for c in session.scalars(sa.select(ResourceCount).where(
            ResourceCount.account_id == account.id)) if c.count}
        assert left == set(), f"counts left on the deleted account: {left}"
    root_domain = admin("listDomains", name="ROOT")["domain"][0]
    assert (root_domain["volumetotal"], root_domain["snapshottotal"]) == (0, 0)


def test_deleting_a_projects_only_admin_does_not_orphan_the_project(admin, app, cloud, zone):
    """deleteAccount id=<the only Admin of project pp>: CloudStack refuses with 431 ("The account ...
    manages project(s) with ids ... and can't be removed"). Strato deletes the account and leaves
    project pp Active with "owner": [] and no Admin member: nobody but the root admin can ever manage
    it, and the deleted account still counts 1 project. Expected: 431 and the account kept, or the
    project not left without an admin."""
    leaver = new_account(admin, app, "leaver")
    account_id = leaver("listAccounts")["account"][0]["id"]
    project = leaver.wait(leaver("createProject", name="pp"))["project"]
    try:
        admin.wait(admin("deleteAccount", id=account_id))
    except Exception as exc:
        assert getattr(exc, "status", None) == 431, exc
        assert admin("listAccounts", id=account_id)["count"] == 1
        return
    left = admin("listProjects", id=project["id"])
    if left:
        admins = [m for m in admin("listProjectAccounts", projectid=project["id"]).get("projectaccount", [])
                  if m["role"] == "Admin"]
        assert admins, f"project {project['name']} is left without any admin: {left['project'][0]['owner']}"
