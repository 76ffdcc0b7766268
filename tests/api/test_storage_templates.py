"""ISOs and template transfers through the API on simulated storage: registerIso, listIsos
with isofilter, deleteIso; copyTemplate to another zone's image store; what extractTemplate
refuses. (Downloads of real files are in test_storage_nfs.py.)"""

from __future__ import annotations

import pytest

from tests.core.factories import add_image_store, simulated_zone, zone_with_cluster
from tests.helpers import ApiClient, ApiError, make_account


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud)


@pytest.fixture
def alice(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "alice"))


@pytest.fixture
def second_zone(cloud):
    with cloud.db.transaction() as session:
        zone, _, _ = zone_with_cluster(session, name="z2")
        add_image_store(session, zone, "store-z2")
        return zone.uuid


def fails(status, call, *args, **kw) -> dict:
    with pytest.raises(ApiError) as err:
        call(*args, **kw)
    assert err.value.status == status, err.value.body
    return err.value.body


def store_files(cloud):
    return cloud.plugins.storage["simulator"].store_files()


def test_register_list_and_delete_an_iso(cloud, zone, alice):
    registered = alice("registerIso", name="rescue", url="http://example.invalid/rescue.iso", zoneid=zone["zone"],
                       bootable=False)
    assert registered["count"] == 1
    iso = registered["iso"][0]
    assert iso["format"] == "ISO" and iso["bootable"] is False and iso["account"] == "alice"
    cloud.jobs.join()
    listed = alice("listIsos", isofilter="self")
    assert listed["count"] == 1 and listed["iso"][0]["isready"] is True
    assert listed["iso"][0]["status"] == "Download Complete"
    assert alice("listIsos")["count"] == 1, "selfexecutable, the default, lists ready ISOs"
    assert alice("listIsos", bootable=True) == {}
    assert alice("listTemplates", templatefilter="self") == {}, "an ISO is not a template"
    assert [p for (_, p) in store_files(cloud) if iso["id"] in p]
    assert alice.wait(alice("deleteIso", id=iso["id"])) == {"success": True}
    assert alice("listIsos", isofilter="self") == {}
    assert not [p for (_, p) in store_files(cloud) if iso["id"] in p], "its file is gone"
    assert {"ISO.CREATE", "ISO.DELETE"} <= {e["type"] for e in alice("listEvents")["event"]}


def test_iso_bad_input_and_access(cloud, zone, alice, app):
    assert "url" in fails(431, alice, "registerIso", name="x", url="ftp://h/x.iso", zoneid=zone["zone"])["errortext"]
    fails(531, alice, "registerIso", name="x", url="file:///etc/passwd", zoneid=zone["zone"])
    fails(531, alice, "registerIso", name="x", url="http://h/x.iso", zoneid=zone["zone"], isfeatured=True)
    fails(531, alice, "listIsos", isofilter="all")
    assert "isofilter" in fails(431, alice, "listIsos", isofilter="mine")["errortext"]
    iso = alice("registerIso", name="mine", url="http://example.invalid/x.iso", zoneid=zone["zone"])["iso"][0]
    bob = ApiClient.for_user(app, cloud, make_account(cloud, "bob"))
    fails(531, bob, "deleteIso", id=iso["id"])
    assert bob("listIsos", isofilter="self") == {}
    fails(431, alice, "deleteIso", id=zone["template"])  # a template, not an ISO


def test_copy_template_to_another_zone(cloud, zone, second_zone, alice, admin):
    fails(531, alice, "copyTemplate", id=zone["template"], destzoneid=second_zone)
    assert admin("listTemplates", templatefilter="all", zoneid=second_zone) == {}
    job = admin("copyTemplate", id=zone["template"], sourcezoneid=zone["zone"], destzoneid=second_zone)
    copied = admin.wait(job)["template"]
    assert copied["zoneid"] == second_zone and copied["isready"] is True
    rows = admin("listTemplates", templatefilter="all", id=zone["template"])["template"]
    assert {r["zoneid"] for r in rows} == {zone["zone"], second_zone}, "listed once per zone"
    assert [url for (url, p) in store_files(cloud) if zone["template"] in p] == ["sim://store-z2"]
    assert "already" in fails(431, admin, "copyTemplate", id=zone["template"], destzoneid=second_zone)["errortext"]
    fails(431, admin, "copyTemplate", id=zone["template"])
    fails(431, admin, "copyTemplate", id=zone["template"], destzoneid=zone["zone"], sourcezoneid=zone["zone"])
    admin.wait(admin("deleteTemplate", id=zone["template"]))
    assert not [p for (_, p) in store_files(cloud) if zone["template"] in p], "both copies are deleted"


def test_a_copy_that_fails_shows_why_in_the_destination_zone(cloud, zone, second_zone, admin, monkeypatch):
    def broken(*args, **kw):
        raise OSError("simulated network failure")

    monkeypatch.setattr(cloud.plugins.storage["simulator"], "copy_template", broken)
    fails(534, admin.wait, admin("copyTemplate", id=zone["template"], destzoneid=second_zone))
    row = admin("listTemplates", templatefilter="all", zoneid=second_zone)["template"][0]
    assert row["isready"] is False and "simulated network failure" in row["status"]
    monkeypatch.undo()
    assert admin.wait(admin("copyTemplate", id=zone["template"], destzoneid=second_zone))["template"]["isready"]


def test_extract_refusals(cloud, zone, alice, admin):
    body = fails(432, admin, "extractTemplate", id=zone["template"], mode="HTTP_DOWNLOAD")
    assert "simulator" in body["errortext"], "the simulator's store keeps no data to hand out"
    fails(432, admin, "extractTemplate", id=zone["template"], mode="FTP_UPLOAD")
    assert "mode" in fails(431, admin, "extractTemplate", id=zone["template"], mode="SCP")["errortext"]
    fails(531, alice, "extractTemplate", id=zone["template"], mode="HTTP_DOWNLOAD")


def test_register_iso_with_projectid_makes_the_project_own_it(cloud, zone, alice):
    project = alice.wait(alice("createProject", name="rescue-team"))["project"]
    iso = alice("registerIso", name="team-rescue", url="http://example.invalid/team.iso", zoneid=zone["zone"],
                projectid=project["id"])["iso"][0]
    assert iso["projectid"] == project["id"]
    assert alice("listIsos", isofilter="self", projectid=project["id"])["iso"][0]["id"] == iso["id"]
    assert "iso" not in alice("listIsos", isofilter="self"), "the caller's own account got the project's ISO"


def test_list_isos_keyword_matches_percent_and_underscore_literally(zone, alice):
    for name in ("a%b", "axb"):
        alice("registerIso", name=name, url="http://example.invalid/x.iso", zoneid=zone["zone"])
    assert [iso["name"] for iso in alice("listIsos", isofilter="self", keyword="a%b")["iso"]] == ["a%b"]
