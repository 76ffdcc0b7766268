"""Domains, accounts, users and API keys through the API, and who may see what."""

from __future__ import annotations

import pytest

from tests.helpers import ApiClient, ApiError

MISSING = "2b6f0f4a-0000-4000-8000-000000000000"


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kw)
    return info.value


def create_account(admin, username, **kw):
    args = dict(password="s3cret", email=f"{username}@example.com", firstname=username.title(),
                lastname="Tester", accounttype=0)
    args.update(kw)
    return admin("createAccount", username=username, **args)["account"]


def client_of(admin, app, account) -> ApiClient:
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    return ApiClient(app, keys["apikey"], keys["secretkey"])


def test_create_account_makes_its_first_user_who_can_log_in(admin, app):
    account = create_account(admin, "carol", account="team-c", timezone="UTC")
    assert (account["name"], account["accounttype"], account["roletype"], account["domain"]) == (
        "team-c", 0, "User", "ROOT")
    user = account["user"][0]
    assert (user["username"], user["email"], user["account"], user["firstname"]) == (
        "carol", "carol@example.com", "team-c", "Carol")
    assert "password" not in user and "secretkey" not in user
    login = app.test_client().post("/client/api", data={"command": "login", "username": "carol",
                                                         "password": "s3cret", "response": "json"})
    assert login.status_code == 200 and login.get_json()["loginresponse"]["sessionkey"]
    assert admin("listAccounts", name="team-c")["account"] == [account]
    types = {e["type"] for e in admin("listEvents", listall=True)["event"]}
    assert {"ACCOUNT.CREATE", "USER.CREATE"} <= types
    owned = {e["type"] for e in admin("listEvents", account="team-c")["event"]}
    assert "USER.CREATE" in owned, "the new user's account owns the event"


def test_account_types_and_bad_input(admin):
    assert create_account(admin, "dana", accounttype=None, roletype="DomainAdmin")["accounttype"] == 2
    assert create_account(admin, "erin", accounttype=1)["roletype"] == "Admin"
    for args, param in ((dict(accounttype=7), "accounttype"), (dict(accounttype=None, roletype="Boss"), "roletype"),
                        (dict(accounttype=None), "accounttype"), (dict(accounttype=0, roletype="Admin"), "roletype"),
                        (dict(email=None), "email"), (dict(domainid=MISSING), "domainid")):
        exc = error(create_account, admin, "frank", **args)
        assert exc.status == 431 and param in exc.body["errortext"], args
    exc = error(create_account, admin, "frank", accounttype=None, roleid=MISSING)
    assert exc.status == 431 and "roleid" in exc.body["errortext"]
    exc = error(create_account, admin, "dana")
    assert exc.status == 431 and "already exists" in exc.body["errortext"]
    exc = error(create_account, admin, "dana", account="other-team")
    assert exc.status == 431 and "username" in exc.body["errortext"]
    assert admin("listAccounts", name="frank") == {}


def test_create_user_list_users_and_keys(admin, app):
    account = create_account(admin, "gus")
    added = admin("createUser", account="gus", username="gus2", password="pw", firstname="G", lastname="Two",
                  email="g2@example.com")["user"]
    assert (added["account"], added["accountid"], added["roletype"]) == ("gus", account["id"], "User")
    assert admin("listUsers", account="gus")["count"] == 2
    assert error(admin, "createUser", account="nobody", username="x", password="pw", firstname="x",
                 lastname="x", email="x@example.com").status == 431
    keys = admin("registerUserKeys", id=added["id"])["userkeys"]
    assert keys["apikey"] and keys["secretkey"]
    assert admin("getUserKeys", id=added["id"])["userkeys"] == keys
    gus2 = ApiClient(app, keys["apikey"], keys["secretkey"])
    assert gus2("listAccounts")["account"][0]["name"] == "gus"
    renewed = gus2("registerUserKeys", id=added["id"])["userkeys"]
    assert renewed != keys
    assert error(gus2, "listZones").status == 401, "the old keys stop working"
    gus2 = ApiClient(app, renewed["apikey"], renewed["secretkey"])
    assert "REGISTER.USER.KEY" in {e["type"] for e in gus2("listEvents")["event"]}, "the user's account owns it"


def test_users_see_only_their_own_account(admin, app):
    hank = client_of(admin, app, create_account(admin, "hank"))
    ivy_account = create_account(admin, "ivy")
    ivy_user = ivy_account["user"][0]["id"]
    assert [a["name"] for a in hank("listAccounts")["account"]] == ["hank"]
    assert hank("listAccounts", listall=True)["count"] == 1
    assert hank("listAccounts", id=ivy_account["id"]) == {}
    assert [u["username"] for u in hank("listUsers", listall=True)["user"]] == ["hank"]
    assert error(hank, "getUserKeys", id=ivy_user).status == 531
    assert error(hank, "registerUserKeys", id=ivy_user).status == 531
    for command, args in (("createAccount", dict(username="x", password="x", email="x@x", firstname="x",
                                                 lastname="x", accounttype=0)),
                          ("createUser", dict(account="hank", username="x", password="x", email="x@x",
                                              firstname="x", lastname="x")),
                          ("createDomain", dict(name="mine"))):
        assert error(hank, command, **args).status == 432, command
    assert [d["name"] for d in hank("listDomains", listall=True)["domain"]] == ["ROOT"]


def test_domains_and_domain_admins(admin, app):
    sales = admin("createDomain", name="sales")["domain"]
    assert (sales["path"], sales["level"], sales["parentdomainname"], sales["haschild"]) == (
        "ROOT/sales", 1, "ROOT", False)
    emea = admin("createDomain", name="emea", parentdomainid=sales["id"], networkdomain="emea.example")["domain"]
    assert emea["path"] == "ROOT/sales/emea" and emea["networkdomain"] == "emea.example"
    assert admin("listDomains", id=sales["id"])["domain"][0]["haschild"] is True
    assert admin("listDomains")["count"] == 3
    assert error(admin, "createDomain", name="Sales").status == 431, "sibling names are unique"
    assert error(admin, "createDomain", name="a/b").status == 431
    assert error(admin, "createDomain", name="x", parentdomainid=MISSING).status == 431

    boss = client_of(admin, app, create_account(admin, "boss", accounttype=2, domainid=sales["id"]))
    assert [d["name"] for d in boss("listDomains")["domain"]] == ["sales"]
    assert [d["name"] for d in boss("listDomains", listall=True)["domain"]] == ["sales", "emea"]
    worker = create_account(boss, "worker", domainid=emea["id"])
    assert worker["domainpath"] == "ROOT/sales/emea"
    assert boss("createDomain", name="apac", parentdomainid=sales["id"])["domain"]["path"] == "ROOT/sales/apac"
    outsider = create_account(admin, "outsider")
    assert {a["name"] for a in boss("listAccounts")["account"]} == {"boss", "worker"}
    assert boss("listAccounts", domainid=emea["id"])["count"] == 1
    assert error(boss, "listAccounts", domainid=outsider["domainid"]).status == 531
    assert error(boss, "createDomain", name="top").status == 531, "ROOT is above the domain admin"
    assert error(create_account, boss, "root2", accounttype=1).status == 531
    admin_user = admin("listUsers", username="admin")["user"][0]["id"]
    assert error(boss, "getUserKeys", id=admin_user).status == 531
    assert boss("getUserKeys", id=worker["user"][0]["id"]) == {"userkeys": {}}
