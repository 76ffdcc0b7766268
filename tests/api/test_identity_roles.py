"""Dynamic roles: the default roles, role and rule commands, and their enforcement on every
request and in listApis."""

from __future__ import annotations

import pytest

from tests.helpers import ApiClient, ApiError


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kw)
    return info.value


def new_account(admin, app, username, **kw) -> ApiClient:
    args = dict(password="pw", email=f"{username}@example.com", firstname=username, lastname="T")
    if not {"roleid", "accounttype", "roletype"} & set(kw):
        args["accounttype"] = 0
    account = admin("createAccount", username=username, **args, **kw)["account"]
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    return ApiClient(app, keys["apikey"], keys["secretkey"])


def test_the_four_default_roles_exist_and_accounts_get_their_types(admin, app):
    roles = {r["name"]: r for r in admin("listRoles")["role"]}
    assert {name: roles[name]["type"] for name in ("Root Admin", "Resource Admin", "Domain Admin", "User")} == {
        "Root Admin": "Admin", "Resource Admin": "ResourceAdmin", "Domain Admin": "DomainAdmin", "User": "User"}
    assert all(roles[name]["isdefault"] for name in ("Root Admin", "Resource Admin", "Domain Admin", "User"))
    me = admin("listAccounts", name="admin")["account"][0]
    assert (me["rolename"], me["roletype"]) == ("Root Admin", "Admin")
    new_account(admin, app, "plain")
    plain = admin("listAccounts", name="plain")["account"][0]
    assert (plain["roleid"], plain["rolename"]) == (roles["User"]["id"], "User")
    boss = new_account(admin, app, "boss", roleid=roles["Domain Admin"]["id"])
    assert boss("listAccounts", name="boss")["account"][0]["accounttype"] == 2
    assert {r["name"] for r in boss("listRoles")["role"]} == {"Resource Admin", "Domain Admin", "User"}, \
        "domain admins do not see Admin roles"
    assert error(boss, "createRole", name="x", type="User").status == 432
    assert error(admin, "deleteRole", id=roles["User"]["id"]).status == 531, "default roles stay"


def test_role_crud_and_rule_validation(admin):
    role = admin("createRole", name="Auditor", type="user", description="read only")["role"]
    assert (role["name"], role["type"], role["description"], role["isdefault"]) == ("Auditor", "User", "read only",
                                                                                   False)
    assert error(admin, "createRole", name="auditor", type="User").status == 431, "names are unique (any case)"
    assert error(admin, "createRole", name="y", type="Boss").status == 431
    assert error(admin, "createRole", name="y").status == 431, "type or roleid"
    rid = role["id"]
    first = admin("createRolePermission", roleid=rid, rule="list*", permission="allow")["rolepermission"]
    second = admin("createRolePermission", roleid=rid, rule="*", permission="deny",
                   description="nothing else")["rolepermission"]
    assert (first["rule"], first["permission"], first["rolename"]) == ("list*", "allow", "Auditor")
    for bad in ("list-vms", "", "a b", "list;drop"):
        assert error(admin, "createRolePermission", roleid=rid, rule=bad, permission="allow").status == 431, bad
    assert error(admin, "createRolePermission", roleid=rid, rule="*", permission="deny").status == 431, "duplicate"
    assert error(admin, "createRolePermission", roleid=rid, rule="x", permission="maybe").status == 431
    rules = admin("listRolePermissions", roleid=rid)["rolepermission"]
    assert [r["rule"] for r in rules] == ["list*", "*"]
    assert admin("updateRolePermission", roleid=rid, ruleorder=f"{second['id']},{first['id']}") == {"success": True}
    assert [r["rule"] for r in admin("listRolePermissions", roleid=rid)["rolepermission"]] == ["*", "list*"]
    assert error(admin, "updateRolePermission", roleid=rid, ruleorder=first["id"]).status == 431, "all rules, once"
    admin("updateRolePermission", roleid=rid, ruleid=second["id"], permission="allow")
    assert {r["rule"]: r["permission"] for r in admin("listRolePermissions", roleid=rid)["rolepermission"]}["*"] == \
        "allow"
    copy = admin("createRole", name="Auditor 2", roleid=rid)["role"]
    assert copy["type"] == "User"
    assert [r["rule"] for r in admin("listRolePermissions", roleid=copy["id"])["rolepermission"]] == ["*", "list*"]
    admin("deleteRolePermission", id=first["id"])
    assert [r["rule"] for r in admin("listRolePermissions", roleid=rid)["rolepermission"]] == ["*"]
    updated = admin("updateRole", id=rid, name="Reader", type="DomainAdmin")["role"]
    assert (updated["name"], updated["type"]) == ("Reader", "DomainAdmin")
    root = next(r for r in admin("listRoles")["role"] if r["name"] == "Root Admin")
    assert error(admin, "createRolePermission", roleid=root["id"], rule="x", permission="deny").status == 531
    assert error(admin, "updateRole", id=root["id"], name="Boss").status == 531
    assert admin("deleteRole", id=copy["id"]) == {"success": True}
    assert admin("listRoles", id=copy["id"]) == {}


def test_rules_decide_in_order_and_listapis_follows(admin, app):
    role = admin("createRole", name="Lister", type="User")["role"]
    admin("createRolePermission", roleid=role["id"], rule="listZones", permission="deny")
    admin("createRolePermission", roleid=role["id"], rule="list*", permission="allow")
    admin("createRolePermission", roleid=role["id"], rule="*", permission="deny")
    user = new_account(admin, app, "lister", roleid=role["id"])
    assert user("listAccounts")["count"] == 1, "list* allows"
    for command in ("listZones", "LISTZONES"):
        exc = error(user, command)
        assert exc.status == 432 and "does not exist or is not available" in exc.body["errortext"], command
    assert error(user, "registerUserKeys", id=user("listUsers")["user"][0]["id"]).status == 432, "* denies the rest"
    names = {api["name"] for api in user("listApis")["api"]}
    assert "listAccounts" in names and "listZones" not in names and "registerUserKeys" not in names
    assert "listVirtualMachines" in names
    # a rule changes what the role may call at once (no restart, no re-login)
    admin("deleteRolePermission", id=next(r["id"] for r in admin("listRolePermissions", roleid=role["id"])
                                          ["rolepermission"] if r["rule"] == "listZones"))
    assert user("listZones") == {}
    assert "listZones" in {api["name"] for api in user("listApis")["api"]}


def test_without_matching_rules_the_role_type_decides(admin, app):
    plain = new_account(admin, app, "plainuser")
    names = {api["name"] for api in plain("listApis")["api"]}
    assert "deployVirtualMachine" in names and "createZone" not in names and "createAccount" not in names
    assert error(plain, "createZone", name="z", dns1="8.8.8.8", internaldns1="8.8.8.8", networktype="Basic").status \
        == 432
    # an allow rule gives a command the type lacks, as in CloudStack; the command's own checks still run
    role = admin("createRole", name="Zone Lister Plus", type="User")["role"]
    admin("createRolePermission", roleid=role["id"], rule="listHosts", permission="allow")
    special = new_account(admin, app, "special", roleid=role["id"])
    assert special("listHosts") == {}
    root_names = {api["name"] for api in admin("listApis")["api"]}
    assert {"createZone", "createRole", "listUsageRecords"} <= root_names, "the Root Admin role calls everything"


def test_roles_in_use_cannot_be_deleted_and_account_roles_change(admin, app):
    role = admin("createRole", name="Temp", type="User")["role"]
    new_account(admin, app, "temp", roleid=role["id"])
    assert error(admin, "deleteRole", id=role["id"]).status == 536
    assert error(admin, "updateRole", id=role["id"], type="DomainAdmin").status == 536
    account = admin("listAccounts", name="temp")["account"][0]
    user_role = next(r for r in admin("listRoles")["role"] if r["name"] == "User")
    admin_role = next(r for r in admin("listRoles")["role"] if r["name"] == "Root Admin")
    assert error(admin, "updateAccount", id=account["id"], roleid=admin_role["id"]).status == 431, "type must match"
    assert admin("updateAccount", id=account["id"], roleid=user_role["id"])["account"]["rolename"] == "User"
    assert admin("deleteRole", id=role["id"]) == {"success": True}
    assert admin("listCapabilities")["capability"]["dynamicrolesenabled"] is True
