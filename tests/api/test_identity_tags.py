"""Resource tags: createTags / deleteTags / listTags, tags in the views, and tags[i] filters on
listVirtualMachines, listVolumes and listTemplates."""

from __future__ import annotations

import pytest

from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, offering_id


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kw)
    return info.value


def new_user(admin, app, username) -> ApiClient:
    account = admin("createAccount", username=username, password="pw", email=f"{username}@example.com",
                    firstname=username, lastname="T", accounttype=0)["account"]
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    return ApiClient(app, keys["apikey"], keys["secretkey"])


@pytest.fixture
def world(admin, app, cloud):
    zone = simulated_zone(cloud)
    tom, una = new_user(admin, app, "tom"), new_user(admin, app, "una")
    vms = [tom.wait(tom("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                        templateid=zone["template"], name=f"t{i}"))["virtualmachine"] for i in range(2)]
    return dict(zone=zone, tom=tom, una=una, vms=vms)


def tag(client, ids, resource_type, **pairs):
    args = {}
    for i, (key, value) in enumerate(pairs.items()):
        args[f"tags[{i}].key"], args[f"tags[{i}].value"] = key, value
    return client.wait(client("createTags", resourceids=",".join(ids), resourcetype=resource_type, **args))


def test_tags_show_in_views_and_filter_lists(world, admin):
    tom, vms = world["tom"], world["vms"]
    assert tag(tom, [vms[0]["id"]], "UserVm", env="prod", team="web") == {"success": True}
    tag(tom, [vms[1]["id"]], "uservm", env="dev")
    shown = tom("listVirtualMachines", id=vms[0]["id"])["virtualmachine"][0]["tags"]
    assert sorted((t["key"], t["value"], t["resourcetype"], t["account"]) for t in shown) == [
        ("env", "prod", "UserVm", "tom"), ("team", "web", "UserVm", "tom")]
    prod = tom("listVirtualMachines", **{"tags[0].key": "env", "tags[0].value": "prod"})["virtualmachine"]
    assert [v["id"] for v in prod] == [vms[0]["id"]]
    both = tom("listVirtualMachines", **{"tags[0].key": "env", "tags[0].value": "prod", "tags[1].key": "team",
                                         "tags[1].value": "web"})
    assert both["count"] == 1
    assert tom("listVirtualMachines", **{"tags[0].key": "env"})["count"] == 2, "a key without value: any value"
    assert tom("listVirtualMachines", **{"tags[0].key": "env", "tags[0].value": "qa"}) == {}
    volume = tom("listVolumes", virtualmachineid=vms[1]["id"])["volume"][0]
    tag(tom, [volume["id"]], "Volume", backup="daily")
    assert [v["id"] for v in tom("listVolumes", **{"tags[0].key": "backup", "tags[0].value": "daily"})["volume"]] \
        == [volume["id"]]
    assert tom("listVolumes", id=volume["id"])["volume"][0]["tags"][0]["key"] == "backup"
    template = world["zone"]["template"]
    tag(admin, [template], "Template", os="linux")
    assert [t["id"] for t in tom("listTemplates", templatefilter="featured",
                                 **{"tags[0].key": "os", "tags[0].value": "linux"})["template"]] == [template]
    listed = tom("listTags", resourcetype="UserVm", key="env")["tag"]
    assert sorted(t["value"] for t in listed) == ["dev", "prod"]
    assert tom("listTags", resourceid=vms[0]["id"])["count"] == 2


def test_tags_are_deleted_by_key_value_or_all(world):
    tom, vm = world["tom"], world["vms"][0]
    tag(tom, [vm["id"]], "UserVm", a="1", b="2", c="3")
    assert error(tag, tom, [vm["id"]], "UserVm", a="again").status == 431, "one value per key"
    tom.wait(tom("deleteTags", resourceids=vm["id"], resourcetype="UserVm", **{"tags[0].key": "a"}))
    tom.wait(tom("deleteTags", resourceids=vm["id"], resourcetype="UserVm", **{"tags[0].key": "b",
                                                                             "tags[0].value": "wrong"}))
    assert sorted(t["key"] for t in tom("listTags", resourceid=vm["id"])["tag"]) == ["b", "c"]
    tom.wait(tom("deleteTags", resourceids=vm["id"], resourcetype="UserVm"))
    assert tom("listTags", resourceid=vm["id"]) == {}
    assert error(tom, "createTags", resourceids=vm["id"], resourcetype="Galaxy",
                 **{"tags[0].key": "x", "tags[0].value": "y"}).status == 431


def test_others_cannot_tag_or_see_tags(world, admin):
    tom, una, vm = world["tom"], world["una"], world["vms"][0]
    tag(tom, [vm["id"]], "UserVm", owner="tom")
    assert error(tag, una, [vm["id"]], "UserVm", mine="yes").status == 531
    assert error(una, "deleteTags", resourceids=vm["id"], resourcetype="UserVm").status == 531
    assert una("listTags", listall=True) == {} and una("listTags", resourceid=vm["id"]) == {}
    assert una("listVirtualMachines", listall=True, **{"tags[0].key": "owner"}) == {}
    assert admin("listTags", listall=True)["count"] == 1


def test_a_resources_tags_go_with_it(world, admin):
    tom, vm = world["tom"], world["vms"][0]
    tag(tom, [vm["id"]], "UserVm", short="lived")
    admin.wait(admin("destroyVirtualMachine", id=vm["id"], expunge=True))
    assert admin("listTags", listall=True) == {}


def test_vm_snapshot_views_show_their_tags_and_the_tags_go_with_the_snapshot(world):
    tom, vm = world["tom"], world["vms"][0]
    snapshot = tom.wait(tom("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True))["vmsnapshot"]
    tag(tom, [snapshot["id"]], "VMSnapshot", keep="weekly")
    [shown] = tom("listVMSnapshot", vmsnapshotid=snapshot["id"])["vmSnapshot"]
    assert [(t["key"], t["value"], t["resourcetype"]) for t in shown["tags"]] == [("keep", "weekly", "VMSnapshot")]
    tom.wait(tom("deleteVMSnapshot", vmsnapshotid=snapshot["id"]))
    assert tom("listTags", resourceid=snapshot["id"]) == {}, "the tags went with the VM snapshot"
