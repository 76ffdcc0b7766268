"""Domains, accounts, users and API keys through the API, and who may see what."""

from __future__ import annotations

import pytest

from core.model import User
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


# -- changing and removing accounts, users and domains ----------------------------------------


def deploy(client, cloud, zone, **kw):
    from tests.helpers import offering_id

    job = client("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                 templateid=zone["template"], **kw)
    return client.wait(job)["virtualmachine"]


def login(app, username, password, **kw):
    return app.test_client().post("/client/api", data={"command": "login", "username": username,
                                                       "password": password, "response": "json", **kw})


def test_update_disable_lock_enable_an_account(admin, app, cloud):
    from tests.core.factories import simulated_zone

    zone = simulated_zone(cloud)
    account = create_account(admin, "jill")
    jill = client_of(admin, app, account)
    vm = deploy(jill, cloud, zone)
    renamed = admin("updateAccount", id=account["id"], newname="jill-team", networkdomain="jill.example")["account"]
    assert (renamed["name"], renamed["networkdomain"]) == ("jill-team", "jill.example")
    assert error(admin, "updateAccount", account="jill-team", newname="admin").status == 431, "admin is taken"
    locked = admin.wait(admin("disableAccount", id=account["id"], lock=True))["account"]
    assert locked["state"] == "locked"
    assert error(jill, "listVirtualMachines").status == 401, "a locked account's keys stop working"
    assert login(app, "jill", "s3cret").status_code == 531
    assert admin("listVirtualMachines", listall=True, id=vm["id"])["virtualmachine"][0]["state"] == "Running"
    assert admin("enableAccount", id=account["id"])["account"]["state"] == "enabled"
    assert jill("listVirtualMachines")["count"] == 1
    disabled = admin.wait(admin("disableAccount", account="jill-team", domainid=account["domainid"], lock=False))
    assert disabled["account"]["state"] == "disabled"
    assert admin("listVirtualMachines", listall=True, id=vm["id"])["virtualmachine"][0]["state"] == "Stopped", \
        "disabling stops the account's VMs"
    assert admin("lockAccount", account="jill-team", domainid=account["domainid"])["account"]["state"] == "locked"
    admin_account = admin("listAccounts", name="admin")["account"][0]
    for command, args in (("disableAccount", dict(id=admin_account["id"], lock=True)),
                          ("deleteAccount", dict(id=admin_account["id"])),
                          ("lockAccount", dict(account="admin", domainid=admin_account["domainid"]))):
        assert error(admin, command, **args).status == 531, command
    assert error(admin, "disableAccount", lock=True).status == 431, "id or account+domainid"


def test_delete_account_removes_its_resources_through_the_jobs(admin, app, cloud):
    from tests.core.factories import simulated_zone
    from tests.helpers import capacity_used

    zone = simulated_zone(cloud)
    account = create_account(admin, "kate")
    kate = client_of(admin, app, account)
    vms = [deploy(kate, cloud, zone, name=f"k{i}") for i in range(2)]
    kate.wait(kate("stopVirtualMachine", id=vms[1]["id"]))
    admin.wait(admin("deleteAccount", id=account["id"]))
    assert admin("listAccounts", id=account["id"]) == {}
    assert admin("listVirtualMachines", listall=True) == {}
    assert all(used == 0 for used in capacity_used(cloud).values()), "capacity given back by the expunges"
    assert error(kate, "listZones").status == 401
    assert login(app, "kate", "s3cret").status_code == 531
    assert {"VM.EXPUNGE", "ACCOUNT.DELETE"} <= {e["type"] for e in admin("listEvents", listall=True)["event"]}
    again = create_account(admin, "kate")
    assert again["id"] != account["id"], "the name can be used again"


def test_users_are_updated_disabled_enabled_and_deleted(admin, app):
    account = create_account(admin, "liam")
    liam = client_of(admin, app, account)
    liam_id = account["user"][0]["id"]
    second = admin("createUser", account="liam", username="liam2", password="pw2", firstname="L", lastname="2",
                   email="l2@example.com")["user"]
    assert liam("updateUser", id=liam_id, firstname="Liam", timezone="Europe/Paris")["user"]["firstname"] == "Liam"
    assert error(liam, "updateUser", id=second["id"], email="x@example.com").status == 531, "users update themselves"
    assert error(liam, "updateUser", id=liam_id, password="new").status == 431, "the current password is needed"
    assert error(liam, "updateUser", id=liam_id, password="new", currentpassword="wrong").status == 431
    liam("updateUser", id=liam_id, password="n3w", currentpassword="s3cret")
    assert login(app, "liam", "s3cret").status_code == 531 and login(app, "liam", "n3w").status_code == 200
    admin("updateUser", id=second["id"], password="reset-by-admin")
    assert login(app, "liam2", "reset-by-admin").status_code == 200
    assert error(admin, "updateUser", id=second["id"], username="liam").status == 431
    disabled = admin.wait(admin("disableUser", id=liam_id))["user"]
    assert disabled["state"] == "disabled"
    assert error(liam, "listZones").status == 401 and login(app, "liam", "n3w").status_code == 531
    assert admin("enableUser", id=liam_id)["user"]["state"] == "enabled"
    assert liam("listZones") == {}
    assert error(liam, "disableUser", id=second["id"]).status == 432, "users do not disable users"
    assert admin("lockUser", id=liam_id)["user"]["state"] == "locked"
    assert error(liam, "listZones").status == 401
    assert admin("deleteUser", id=second["id"]) == {"success": True}
    assert [u["username"] for u in admin("listUsers", account="liam")["user"]] == ["liam"]
    me = admin("listUsers", username="admin")["user"][0]["id"]
    for command in ("disableUser", "deleteUser", "lockUser"):
        assert error(admin, command, id=me).status == 531, command


def test_update_and_delete_domains(admin, app, cloud):
    from tests.core.factories import simulated_zone

    zone = simulated_zone(cloud)
    eng = admin("createDomain", name="eng")["domain"]
    web = admin("createDomain", name="web", parentdomainid=eng["id"])["domain"]
    renamed = admin("updateDomain", id=eng["id"], name="engineering")["domain"]
    assert renamed["path"] == "ROOT/engineering"
    assert admin("listDomains", id=web["id"])["domain"][0]["path"] == "ROOT/engineering/web", "paths below follow"
    assert [d["name"] for d in admin("listDomainChildren", id=eng["id"])["domain"]] == ["web"]
    dev = client_of(admin, app, create_account(admin, "dev", domainid=web["id"]))
    deploy(dev, cloud, zone)
    assert error(admin, "deleteDomain", id=eng["id"]).status == 536, "not empty"
    root = admin("listDomains", name="ROOT")["domain"][0]
    assert error(admin, "deleteDomain", id=root["id"]).status == 531
    boss = client_of(admin, app, create_account(admin, "engboss", accounttype=2, domainid=eng["id"]))
    assert error(boss, "deleteDomain", id=eng["id"], cleanup=True).status == 531, "not its own domain"
    assert error(boss, "updateDomain", id=eng["id"], name="mine").status == 531
    admin.wait(admin("deleteDomain", id=eng["id"], cleanup=True))
    assert error(admin, "listDomains", id=eng["id"]).status == 431 and error(admin, "listDomains", id=web["id"]).status \
        == 431, "removed"
    assert admin("listVirtualMachines", listall=True) == {}
    assert admin("listAccounts", name="dev") == {}


def test_passwords_never_reach_events_jobs_or_logs(admin, app, cloud, caplog):
    import logging

    import sqlalchemy as sa

    from core.model import AsyncJob, Event, User

    caplog.set_level(logging.DEBUG)
    secret = "Pa55-w0rd-that-must-not-leak"
    account = create_account(admin, "mona", password=secret)
    user_id = account["user"][0]["id"]
    admin("createUser", account="mona", username="mona2", password=secret + "2", firstname="M", lastname="2",
          email="m2@example.com")
    admin("updateUser", id=user_id, password=secret + "3")
    login(app, "mona", secret + "-wrong")
    with cloud.db.transaction() as session:
        texts = [e.description for e in session.scalars(sa.select(Event))]
        texts += [str(job.params) for job in session.scalars(sa.select(AsyncJob))]
        hashes = [u.password_hash for u in session.scalars(sa.select(User).where(User.username.like("mona%")))]
    texts += [record.getMessage() for record in caplog.records]
    assert texts and not [t for t in texts if secret in t]
    assert all(h.startswith("pbkdf2") or "$" in h for h in hashes) and not any(secret in h for h in hashes)


def test_what_a_domain_owns_without_an_account_is_reached_from_that_domain_and_below(admin, app, cloud):
    """A domain's shared network or offering (domain_id, no account_id): its domain's and its
    subdomains' callers use it, a subdomain's admin too; other domains' callers do not."""
    import sqlalchemy as sa

    from core.access import Caller, can_reach, check_owner
    from core.errors import PermissionDenied
    from core.model import DiskOffering

    alpha = admin("createDomain", name="alpha")["domain"]
    sub = admin("createDomain", name="sub", parentdomainid=alpha["id"])["domain"]
    beta = admin("createDomain", name="beta")["domain"]
    offering = admin("createDiskOffering", name="alpha-disk", disksize=1, domainid=alpha["id"])["diskoffering"]
    users = {name: create_account(admin, name, domainid=domain["id"], accounttype=kind)
             for name, domain, kind in (("in-alpha", alpha, 0), ("in-sub", sub, 0), ("in-beta", beta, 0),
                                        ("sub-admin", sub, 2))}
    with cloud.db.transaction() as session:
        row = session.scalars(sa.select(DiskOffering).where(DiskOffering.uuid == offering["id"])).one()
        callers = {name: Caller.load(session, session.scalar(sa.select(User.id).where(User.uuid == a["user"][0]["id"])))
                   for name, a in users.items()}
        for name in ("in-alpha", "in-sub", "sub-admin"):
            check_owner(session, callers[name], row)
        with pytest.raises(PermissionDenied):
            check_owner(session, callers["in-beta"], row)
        assert can_reach(session, callers["in-sub"], None, row.domain_id)
        assert not can_reach(session, callers["in-beta"], None, row.domain_id)


@pytest.mark.parametrize("first", ["", "import core.orchestration.networking, core.orchestration.snapshots; "])
def test_the_cleaners_do_not_depend_on_what_the_process_imported(first):
    """A process that imported none of the resource families (or some, in another order) still
    cleans every kind, in the one order (storage's volumes before templates, snapshots before volumes)."""
    import subprocess
    import sys

    script = first + "from core.orchestration import identity; print(','.join(identity.cleaners()))"
    names = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True,
                           cwd=str(__import__("pathlib").Path(__file__).parents[2])).stdout.strip().split(",")
    assert names == ["snapshot policies", "vm snapshots", "vms", "snapshots", "volumes", "vpn users", "networks",
                     "public ips", "templates"]
