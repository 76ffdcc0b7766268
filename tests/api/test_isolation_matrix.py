"""The isolation matrix: for EVERY built-in command that names resources by id, a user of
account B (and a domain admin of B's domain) acting on account A's resources is refused,
and every list command lists nothing of A's. Also: a domain admin sees its subdomains only,
and project members see the project's resources.

A owns at least one row of every model that has an owner: the core kinds through the API
(a running VM and its root volume, a project with a VM, a project role with a rule and an
invitation, tags, jobs, events), every other kind (snapshots, public IPs, rules, VPN users,
...) as rows written straight through the ORM, so a resource family added later is covered
without touching this file. A parameter the test cannot map to a model fails it, naming the
parameter: decide whether it names an owned resource (``PARAM_MODELS``) or not (``NOT_OWNED``).

Refused means: 531, 432 (not available to the role), or a 431 that names the parameter or
A's id (the resource "does not exist" for B). Anything else is a finding: a 200 on a
command that changes things, a 536/533 (the command looked at A's resource before asking
whose it is), a 530, or a list that shows one of A's ids.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re

import pytest
import sqlalchemy as sa

from api.commands import builtin_commands
from api.native.sessions import AUTHENTICATORS
from core.commands import LIST_PARAMS, MapOf
from core.model import Account, Domain, Nic, Project, ResourceTag, User, VirtualMachine
from core.model.base import Base
from tests.api.test_identity_invitation_mail import mail_settings, smtp  # noqa: F401 (fixture)
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, offering_id

#: id parameters naming an owned kind of resource -> the model's class name
PARAM_MODELS = {
    "virtualmachineid": "VirtualMachine", "virtualmachineids": "VirtualMachine", "volumeid": "Volume",
    "templateid": "Template", "isoid": "Template", "snapshotid": "Snapshot", "vmsnapshotid": "VmSnapshot",
    "vmsnapshotids": "VmSnapshot", "networkid": "Network", "networkids": "Network", "associatednetworkid": "Network",
    "ipaddressid": "PublicIpAddress", "publicipid": "PublicIpAddress", "lbruleid": "NetworkRule",
    "accountid": "Account", "userid": "User", "domainid": "Domain", "parentdomainid": "Domain",
    "projectid": "Project", "jobid": "AsyncJob", "resourceid": "VirtualMachine", "resourceids": "VirtualMachine",
    "vlanid": "VlanIpRange", "projectroleid": "ProjectRole", "projectrolepermissionid": "ProjectRolePermission",
}
#: id parameters naming what no tenant owns (infrastructure, offerings, roles, ...), or not an id at all
NOT_OWNED = {
    "zoneid", "podid", "clusterid", "hostid", "storageid", "serviceofferingid", "diskofferingid", "ostypeid",
    "oscategoryid", "physicalnetworkid", "networkofferingid", "nspid", "roleid", "ruleorder", "affinitygroupids",
    "securitygroupids", "destzoneid", "destzoneids", "sourcezoneid", "deviceid", "groupid", "usageid",
    "vpcid",  # no VPCs in Strato yet: nothing owns one
    "ruleid",  # updateRolePermission: a role's rule (roles are nobody's)
    "customid",  # a new id the caller chooses (updatePortForwardingRule), not one naming a resource
}
#: what ``id``/``ids`` names, by the command's response object (else by the noun of its name)
RESPONSE_MODELS = {
    "virtualmachine": "VirtualMachine", "volume": "Volume", "template": "Template", "iso": "Template",
    "snapshot": "Snapshot", "vmsnapshot": "VmSnapshot", "network": "Network", "publicipaddress": "PublicIpAddress",
    "ipaddress": "PublicIpAddress", "firewallrule": "NetworkRule", "portforwardingrule": "NetworkRule",
    "ipforwardingrule": "NetworkRule", "loadbalancerrule": "NetworkRule", "loadbalancer": "NetworkRule",
    "account": "Account", "user": "User", "userkeys": "User", "domain": "Domain", "project": "Project",
    "event": "Event", "asyncjobs": "AsyncJob", "snapshotpolicy": "SnapshotPolicy",
    "remoteaccessvpn": "RemoteAccessVpn", "vpnuser": "VpnUser", "router": "Router", "vlaniprange": "VlanIpRange",
    "vlan": "VlanIpRange", "stickinesspolicies": "NetworkRule", "loadbalancerruleinstance": "NetworkRule",
    "projectrole": "ProjectRole", "projectrolepermission": "ProjectRolePermission",
    "projectinvitation": "ProjectInvitation",
}
NOUN_MODELS = {
    "virtualmachine": "VirtualMachine", "template": "Template", "iso": "Template", "volume": "Volume",
    "snapshot": "Snapshot", "vmsnapshot": "VmSnapshot", "network": "Network", "ipaddress": "PublicIpAddress",
    "portforwardingrule": "NetworkRule", "firewallrule": "NetworkRule", "egressfirewallrule": "NetworkRule",
    "loadbalancerrule": "NetworkRule", "ipforwardingrule": "NetworkRule", "lbstickinesspolicy": "NetworkRule",
    "fromloadbalancerrule": "NetworkRule", "toloadbalancerrule": "NetworkRule", "staticnat": "PublicIpAddress",
    "account": "Account", "user": "User", "userkeys": "User", "domain": "Domain", "domainchildren": "Domain",
    "project": "Project", "snapshotpolicies": "SnapshotPolicy", "snapshotpolicy": "SnapshotPolicy",
    "remoteaccessvpn": "RemoteAccessVpn", "vpnuser": "VpnUser", "router": "Router", "vlaniprange": "VlanIpRange",
    "events": "Event", "asyncjobresult": "AsyncJob", "projectrole": "ProjectRole",
    "projectrolepermission": "ProjectRolePermission", "projectinvitation": "ProjectInvitation",
}
#: models nobody owns: an ``id`` of these is skipped
UNOWNED_MODELS = {"Zone", "Pod", "Cluster", "Host", "StoragePool", "ImageStore", "ServiceOffering", "DiskOffering",
                  "Role", "RolePermission", "OsType", "OsCategory", "Configuration", "PhysicalNetwork",
                  "NetworkOffering", "NetworkServiceProvider", "VirtualRouterElement", "TrafficType"}
UNOWNED_NOUNS = {"zone", "pod", "cluster", "host", "storagepool", "imagestore", "serviceoffering", "diskoffering",
                 "role", "rolepermission", "ostype", "oscategory", "configuration", "physicalnetwork",
                 "networkoffering", "networkserviceprovider", "virtualrouterelement", "traffictype", "hostformigration",
                 "storagemaintenance", "hostmaintenance", "hostformaintenance", "simulator"}
#: values for required parameters that are not under test
FILLERS = {
    "templatefilter": "executable", "isofilter": "executable", "startdate": "2024-01-01", "enddate": "2024-01-02",
    "format": "QCOW2", "hypervisor": "Simulator", "url": "http://example.com/x.qcow2", "protocol": "tcp",
    "permission": "deny", "rule": "listZones", "algorithm": "roundrobin", "methodname": "LbCookie",
    "intervaltype": "daily", "schedule": "00:01", "timezone": "UTC", "mode": "HTTP_DOWNLOAD", "email": "x@example.com",
    "traffictype": "Guest", "guestiptype": "Isolated", "networktype": "Basic", "dns1": "8.8.8.8",
    "internaldns1": "8.8.8.8", "gateway": "10.9.0.1", "netmask": "255.255.255.0", "startip": "10.9.0.10",
    "clustertype": "CloudManaged", "provider": "simulator", "value": "1", "zoneid": None,
}
#: the model a not-owned id parameter names (for fillers: any row will do)
UNOWNED_PARAM_MODELS = {
    "zoneid": "Zone", "podid": "Pod", "clusterid": "Cluster", "hostid": "Host", "storageid": "StoragePool",
    "serviceofferingid": "ServiceOffering", "diskofferingid": "DiskOffering", "ostypeid": "OsType",
    "oscategoryid": "OsCategory", "physicalnetworkid": "PhysicalNetwork", "networkofferingid": "NetworkOffering",
    "roleid": "Role",
}
#: optional parameters a command needs one of, with a value any caller may use (by not-owned model)
EXTRA_FILLERS = {"createVolume": {"diskofferingid": "DiskOffering", "zoneid": "Zone"}}
#: parameter values some commands need to get as far as the parameter under test
EXTRA_VALUES = {"createAccount": {"accounttype": "0"}, "createUser": {"account": "acct-b"},
                "addUserToProject": {"username": "admin-beta"}}  # a user of B's domain, no member of B's project
#: column values that make a row written straight through the ORM look like a live resource
HINTS = {
    "PublicIpAddress": {"state": "Allocated", "allocated": dt.datetime(2024, 1, 1), "vm_id": None},
    "Snapshot": {"state": "BackedUp"}, "VmSnapshot": {"state": "Ready"},
    "NetworkRule": {"state": "Active", "purpose": "Firewall", "protocol": "tcp"},
    "SnapshotPolicy": {"interval_type": "DAILY", "schedule": "00:01", "timezone": "UTC", "max_snaps": 1},
    "Network": {"guest_type": "Isolated", "state": "Implemented", "cidr": "10.50.0.0/24",
                "network_offering_id": lambda session: session.scalar(sa.text(
                    "SELECT id FROM network_offering WHERE unique_name = "
                    "'DefaultIsolatedNetworkOfferingWithSourceNatService'"))},
    "Router": {"state": "Running"}, "RemoteAccessVpn": {"state": "Running"},
}
#: which of a model's rows fits a command, by a column and the command's noun
RULE_PURPOSES = {"loadbalancer": "LoadBalancing", "lbstickiness": "LoadBalancing", "portforwarding": "PortForwarding",
                 "firewall": "Firewall"}
MODEL_BY_NAME = {mapper.class_.__name__: mapper.class_ for mapper in Base.registry.mappers}
#: (command, parameter) pairs the generic fillers may fail to reach; each is listed when it happens
MAY_NOT_REACH = 0
_counter = itertools.count(1)


# -- the world ---------------------------------------------------------------------------------


def _client(admin, app, account: dict) -> ApiClient:
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    return ApiClient(app, keys["apikey"], keys["secretkey"])


def _account(admin, app, name: str, domain: dict, kind: int = 0) -> tuple[ApiClient, dict]:
    account = admin("createAccount", username=name, password="pw", email=f"{name}@example.com", firstname=name,
                    lastname="T", accounttype=kind, domainid=domain["id"])["account"]
    return _client(admin, app, account), account


def _deploy(client, cloud, zone, **kw) -> dict:
    return client.wait(client("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                              templateid=zone["template"], **kw))["virtualmachine"]


def _owned_models() -> list[type]:
    return [cls for cls in MODEL_BY_NAME.values()
            if {"account_id", "uuid"} <= set(cls.__table__.columns.keys())
            and cls.__name__ not in ("UsageRecord", *PROJECT_MODELS)]


#: what a project owns through ``project_id`` (an invitation's account_id names the invitee)
PROJECT_MODELS = ("ProjectRole", "ProjectRolePermission", "ProjectInvitation")


def _fill_row(session, model, account: Account, made: dict, making: frozenset = frozenset()):
    """A row of ``model`` owned by ``account``, every required column filled; references point
    at the account's own rows (made first) or at any row of what nobody owns."""
    key = (model.__name__, account.id)
    if key in made:
        return made[key]
    making = making | {model.__name__}
    existing = session.scalars(sa.select(model).where(model.account_id == account.id).limit(1)).first()
    if existing is not None:
        made[key] = existing
        return existing
    row = model()
    for column in model.__table__.columns:
        name = column.name
        if column.primary_key or name in ("uuid", "created", "removed"):
            continue
        if name == "account_id":
            row.account_id = account.id
        elif name == "domain_id":
            row.domain_id = account.domain_id
        elif column.foreign_keys:
            target_table = next(iter(column.foreign_keys)).column.table
            target = next(cls for cls in MODEL_BY_NAME.values() if cls.__table__ is target_table)
            if target is Account:
                value = account.id
            elif target is Domain:
                value = account.domain_id
            elif target is User:
                value = session.scalar(sa.select(User.id).where(User.account_id == account.id))
            elif "account_id" in target.__table__.columns:
                value = None if target.__name__ in making else _fill_row(session, target, account, made, making).id
            else:
                value = session.scalar(sa.select(target.id).limit(1))
                if value is None and not column.nullable:
                    value = _fill_row(session, target, account, made, making).id
            setattr(row, _attr(model, name), value)
        elif not column.nullable and column.default is None and column.server_default is None:
            setattr(row, _attr(model, name), _value_for(column))
    for attr, value in HINTS.get(model.__name__, {}).items():
        if hasattr(row, attr):
            setattr(row, attr, value(session) if callable(value) else value)
    session.add(row)
    session.flush()
    made[key] = row
    return row


def _attr(model, column_name: str) -> str:
    return next(prop.key for prop in sa.inspect(model).column_attrs if prop.columns[0].name == column_name)


def _value_for(column):
    kind = column.type.python_type if hasattr(column.type, "python_type") else str
    n = next(_counter)
    if kind is bool:
        return False
    if kind is int:
        return n
    if kind is float:
        return 0.0
    if kind is dt.datetime:
        return dt.datetime(2030, 1, 1)
    if kind is dict:
        return {}
    return f"m{n}"


@pytest.fixture
def world(admin, app, cloud, smtp):
    zone = simulated_zone(cloud)
    alpha = admin("createDomain", name="alpha")["domain"]
    sub = admin("createDomain", name="sub", parentdomainid=alpha["id"])["domain"]
    beta = admin("createDomain", name="beta")["domain"]
    a, a_account = _account(admin, app, "acct-a", alpha)
    b, b_account = _account(admin, app, "acct-b", beta)
    beta_admin, _ = _account(admin, app, "admin-beta", beta, kind=2)
    alpha_admin, _ = _account(admin, app, "admin-alpha", alpha, kind=2)
    sub_admin, _ = _account(admin, app, "admin-sub", sub, kind=2)
    s, _ = _account(admin, app, "acct-s", sub)
    member, _ = _account(admin, app, "member-a", alpha)
    vms = {"a": _deploy(a, cloud, zone, name="a-vm"), "b": _deploy(b, cloud, zone, name="b-vm"),
           "s": _deploy(s, cloud, zone, name="s-vm")}
    projects = {}
    for key, client in (("a", a), ("b", b)):
        projects[key] = client.wait(client("createProject", name=f"proj-{key}"))["project"]
        _deploy(client, cloud, zone, projectid=projects[key]["id"], name=f"{key}-proj-vm")
        client.wait(client("createTags", resourceids=vms[key]["id"], resourcetype="UserVm",
                           **{"tags[0].key": "owner", "tags[0].value": key}))
    for key, client in (("a", a), ("b", b)):  # a project role with a rule, and an invitation by email
        project = projects[key]["id"]
        role = client("createProjectRole", projectid=project, name=f"role-{key}")["projectrole"]
        client("createProjectRolePermission", projectid=project, projectroleid=role["id"], rule="list*",
               permission="allow")
    admin("updateConfiguration", name="project.invite.required", value="true")
    mail_settings(admin, smtp.port)  # email invitations are mailed (to a real SMTP server)
    for key, client in (("a", a), ("b", b)):
        client.wait(client("addAccountToProject", projectid=projects[key]["id"], email=f"{key}@example.com"))
    admin("updateConfiguration", name="project.invite.required", value="false")
    a.wait(a("addAccountToProject", projectid=projects["a"]["id"], account="member-a",
             projectroleid=a("listProjectRoles", projectid=projects["a"]["id"])["projectrole"][0]["id"]))
    made: dict = {}
    bare_ips: set[str] = set()
    with cloud.db.transaction() as session:
        for name in ("acct-a", "acct-b"):
            account = session.scalars(sa.select(Account).where(Account.name == name)).one()
            network = _fill_row(session, MODEL_BY_NAME["Network"], account, made)
            vm = session.scalars(sa.select(VirtualMachine).where(VirtualMachine.uuid == vms[name[-1]]["id"])).one()
            session.add(Nic(vm_id=vm.id, network_id=network.id, device_id=1, is_default=False,
                            mac_address=f"02:00:00:00:00:{vm.id:02x}", ip_address="10.50.0.5"))
            project_account = session.scalars(sa.select(Account).join(
                Project, Project.project_account_id == Account.id).where(
                Project.uuid == projects[name[-1]]["id"])).one()
            for owner in (account, project_account):
                for model in _owned_models():
                    _fill_row(session, model, owner, made)
                rule_model = MODEL_BY_NAME.get("NetworkRule")
                if rule_model is not None:  # one rule of each purpose
                    first = made[("NetworkRule", owner.id)]
                    for purpose in ("PortForwarding", "LoadBalancing"):
                        copy = rule_model(**{attr.key: getattr(first, attr.key) for attr in
                                             sa.inspect(rule_model).column_attrs
                                             if attr.key not in ("id", "uuid", "created")})
                        copy.purpose = purpose
                        session.add(copy)
                ip_model = MODEL_BY_NAME.get("PublicIpAddress")
                if ip_model is not None:  # and an address without rules (static NAT wants one)
                    first = made[("PublicIpAddress", owner.id)]
                    bare = ip_model(**{attr.key: getattr(first, attr.key) for attr in sa.inspect(ip_model).column_attrs
                                       if attr.key not in ("id", "uuid", "created")})
                    bare.address, bare.address_int = f"bare-{owner.id}", next(_counter) + 10**6
                    session.add(bare)
                    session.flush()
                    bare_ips.add(bare.uuid)
    return dict(zone=zone, alpha=alpha, beta=beta, sub=sub, a=a, b=b, s=s, member=member, beta_admin=beta_admin,
                alpha_admin=alpha_admin, sub_admin=sub_admin, a_account=a_account, b_account=b_account, vms=vms,
                projects=projects, bare_ips=bare_ips)


def _uuids_of(cloud, account_names: list[str], project_uuids: list[str]) -> dict[str, list[str]]:
    """model name -> the ids of the rows the accounts (and their projects) own, plus their accounts,
    users, projects and (for A) domain."""
    with cloud.db.transaction() as session:
        accounts = list(session.scalars(sa.select(Account).where(Account.name.in_(account_names))))
        projects = list(session.scalars(sa.select(Project).where(Project.uuid.in_(project_uuids))))
        ids = [a.id for a in accounts] + [p.project_account_id for p in projects]
        found: dict[str, list[str]] = {}
        for model in _owned_models():
            rows = list(session.scalars(sa.select(model.uuid).where(model.account_id.in_(ids))))
            if rows:
                found[model.__name__] = rows
        for name in PROJECT_MODELS:
            model = MODEL_BY_NAME[name]
            rows = list(session.scalars(sa.select(model.uuid).where(model.project_id.in_([p.id for p in projects]))))
            if rows:
                found[name] = rows
        found["Account"] = [a.uuid for a in accounts]
        found["Project"] = [p.uuid for p in projects]
        found["Domain"] = list({session.get(Domain, a.domain_id).uuid for a in accounts})
        return found


def _state_of(cloud, uuids: dict[str, list[str]]) -> dict:
    """What could change about A's rows: removed, state, name."""
    with cloud.db.transaction() as session:
        seen = {}
        for name, ids in uuids.items():
            model = MODEL_BY_NAME[name]
            for row in session.scalars(sa.select(model).where(model.uuid.in_(ids))):
                seen[(name, row.uuid)] = tuple(getattr(row, attr, None) for attr in ("removed", "state", "name"))
        return seen


# -- mapping parameters to models ---------------------------------------------------------------


def _is_id_param(name: str, field) -> bool:
    kind = getattr(field, "cs_type", "")
    item = getattr(getattr(field, "item", None), "cs_type", "")
    return kind == "uuid" or (kind == "list" and item == "uuid") or name.endswith("id") or name.endswith("ids")


def _noun(command_name: str) -> str:
    match = re.match(r"^[a-z]+([A-Z].*)$", command_name)
    return (match.group(1) if match else command_name).lower()


def _model_of(command, param: str) -> str | None:
    """The owned model ``param`` of ``command`` names; None for what nobody owns; raises for the unknown."""
    if param in NOT_OWNED:
        return None
    if param in PARAM_MODELS:
        return PARAM_MODELS[param]
    if param in ("id", "ids"):
        if command.response in RESPONSE_MODELS:
            return RESPONSE_MODELS[command.response]
        noun = _noun(command.name)
        for candidate in (noun, noun.rstrip("s"), noun.removesuffix("es")):
            if candidate in NOUN_MODELS:
                return NOUN_MODELS[candidate]
            if candidate in UNOWNED_NOUNS:
                return None
        if command.response in {c.lower() for c in UNOWNED_MODELS} | UNOWNED_NOUNS:
            return None
    raise LookupError(f"{command.name}: cannot tell what parameter {param} names")


# -- calling ------------------------------------------------------------------------------------


def _filler(command, name: str, field, own: dict[str, list[str]], world) -> dict:
    """Request parameters giving ``name`` a value the caller may use."""
    if name in FILLERS and FILLERS[name] is not None:
        return {name: FILLERS[name]}
    if name in ("zoneid",):
        return {name: world["zone"]["zone"]}
    if name == "serviceofferingid":
        return {name: world["offering"]}
    if name == "resourcetype":
        return {name: "UserVm"} if getattr(field, "cs_type", "") == "string" else {name: 0}
    if isinstance(field, MapOf):
        return {f"{name}[0].key": "k", f"{name}[0].value": "v"}
    if _is_id_param(name, field):
        try:
            model = _model_of(command, name)
        except LookupError:
            model = None
        if model and own.get(model):
            return {name: _pick(own, model, command)}
        if name in UNOWNED_PARAM_MODELS and world["unowned"].get(UNOWNED_PARAM_MODELS[name]):
            return {name: world["unowned"][UNOWNED_PARAM_MODELS[name]]}
        return {name: "00000000-0000-4000-8000-000000000000"}
    kind = getattr(field, "cs_type", "string")
    if kind in ("integer", "long"):
        return {name: "1"}
    if kind == "boolean":
        return {name: "false"}
    if kind == "date":
        return {name: "2024-01-01"}
    return {name: f"x{next(_counter)}"}


def _pick(uuids: dict[str, list[str]], model: str, command) -> str:
    """The row of ``model`` that fits ``command`` (a load-balancer command gets a load-balancing rule)."""
    if model == "NetworkRule":
        wanted = next((purpose for key, purpose in RULE_PURPOSES.items() if key in command.name.lower()), None)
        for uuid in uuids[model]:
            if uuids["_purpose"].get(uuid) == wanted:
                return uuid
    if model == "PublicIpAddress":
        bare = "staticnat" in command.name.lower()
        for uuid in uuids[model]:
            if (uuid in uuids["_bare_ip"]) == bare:
                return uuid
    return uuids[model][0]


def _call(client, command: str, params: dict) -> tuple[int, dict, str]:
    reply = client.raw(command, **params)
    text = reply.get_data(as_text=True)
    body = next(iter(json.loads(text).values()))
    return reply.status_code, body, text


def _refused(status: int, body: dict, param: str, value: str) -> bool:
    if status in (531, 432):
        return True
    text = str(body.get("errortext", ""))
    return status == 431 and (param in text.lower() or value in text)


def _matrix(actor, world, theirs: dict[str, list[str]], own: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """(findings, pairs not exercised). An error that is no refusal (a 431 naming neither the
    parameter nor A's id, a 536, ...) is asked again with B's own resource in its place: when
    that answers the same, the fillers kept the command from reaching the parameter and the
    pair is reported as not exercised; when it answers differently, a 431 was about A's
    resource (refused), anything else is a finding."""
    findings, unmapped, checked, unclear = [], [], 0, []
    all_theirs = {uuid for key, ids in theirs.items() if not key.startswith("_") for uuid in ids}
    for command in builtin_commands():
        if command.lower_name in AUTHENTICATORS:
            continue
        params = command.params
        for name, field in sorted(params.items()):
            if name in LIST_PARAMS or not _is_id_param(name, field):
                continue
            try:
                model = _model_of(command, name)
            except LookupError as exc:
                unmapped.append(str(exc))
                continue
            if model is None:
                continue
            if not theirs.get(model):
                findings.append(f"{command.name} {name}: account A owns no {model} to try it with")
                continue
            request = {other: world["unowned"][kind] for other, kind in EXTRA_FILLERS.get(command.name, {}).items()}
            request.update(EXTRA_VALUES.get(command.name, {}))
            for other, other_field in params.items():
                if other != name and other_field.required and other not in request:
                    request.update(_filler(command, other, other_field, own, world))
            value = _pick(theirs, model, command)
            status, body, text = _call(actor, command.name, {**request, name: value})
            checked += 1
            if command.is_list and status == 200:
                leaked = sorted(uuid for uuid in all_theirs if uuid in text)
                if leaked:
                    findings.append(f"{command.name} {name}={model}: lists A's {leaked}")
            elif status != 200 and not _refused(status, body, name, value) and own.get(model):
                unclear.append((command, name, model, request, status, body))
            elif not _refused(status, body, name, value):
                findings.append(f"{command.name} {name}={model}: {status} {body.get('errortext', body)!r:.200}")
    assert not unmapped, "parameters to map in PARAM_MODELS or NOT_OWNED:\n" + "\n".join(unmapped)
    assert checked > 150, f"only {checked} (command, parameter) pairs were tried"
    not_exercised = []
    for command, name, model, request, status, body in unclear:  # last: these may change B's things
        control_status, control, _ = _call(actor, command.name, {**request, name: _pick(own, model, command)})
        if (control_status, control.get("errortext")) == (status, body.get("errortext")):
            not_exercised.append(f"{command.name} {name}: {status} {body.get('errortext')!r:.160}")
        elif status != 431:  # A's resource was looked at (536, 537, 530, ...) before asking whose it is
            findings.append(f"{command.name} {name}={model}: {status} {body.get('errortext', body)!r:.200}")
    return findings, not_exercised


def _list_matrix(actor, world, theirs: dict[str, list[str]], own: dict[str, list[str]]) -> list[str]:
    findings = []
    all_theirs = {uuid for key, ids in theirs.items() if not key.startswith("_") for uuid in ids}
    a_domain = world["alpha"]["id"]
    variants = [{"listall": "true"}, {"domainid": a_domain}, {"domainid": a_domain, "isrecursive": "true"},
                {"projectid": world["projects"]["a"]["id"]}, {"account": "acct-a", "domainid": a_domain},
                {"listall": "true", "isrecursive": "true"}, {"projectid": "-1"},
                {"projectid": "-1", "domainid": a_domain, "isrecursive": "true"}]
    for command in builtin_commands():
        if not command.is_list or command.lower_name in AUTHENTICATORS:
            continue
        base = {}
        for other, other_field in command.params.items():
            if other_field.required:
                base.update(_filler(command, other, other_field, own, world))
        for variant in variants:
            if not set(variant) <= set(command.params):
                continue
            status, body, text = _call(actor, command.name, {**base, **variant})
            if status == 200:
                leaked = sorted(uuid for uuid in all_theirs if uuid in text)
                if leaked:
                    findings.append(f"{command.name} {variant}: lists A's {leaked}")
            elif status not in (531, 432, 431):
                findings.append(f"{command.name} {variant}: {status} {body.get('errortext')!r:.200}")
    return findings


# -- the tests --------------------------------------------------------------------------------------


def _sides(cloud, world):
    theirs = _uuids_of(cloud, ["acct-a"], [world["projects"]["a"]["id"]])
    own = _uuids_of(cloud, ["acct-b"], [world["projects"]["b"]["id"]])
    world["offering"] = offering_id(cloud)
    with cloud.db.transaction() as session:
        world["unowned"] = {name: session.scalar(sa.select(MODEL_BY_NAME[name].uuid).order_by(MODEL_BY_NAME[name].id).limit(1))
                            for name in set(UNOWNED_PARAM_MODELS.values()) if name in MODEL_BY_NAME}
        purposes = {}
        if "NetworkRule" in MODEL_BY_NAME:
            rule = MODEL_BY_NAME["NetworkRule"]
            purposes = dict(session.execute(sa.select(rule.uuid, rule.purpose)).all())
    theirs["_purpose"] = own["_purpose"] = purposes
    theirs["_bare_ip"] = own["_bare_ip"] = world["bare_ips"]
    own["VirtualMachine"] = [world["vms"]["b"]["id"]] + [v for v in own.get("VirtualMachine", [])
                                                          if v != world["vms"]["b"]["id"]]
    return theirs, own


@pytest.mark.parametrize("actor", ["b", "beta_admin"])
def test_no_command_lets_another_tenant_act_on_or_list_account_as_resources(world, cloud, actor):
    theirs, own = _sides(cloud, world)
    assert {"VirtualMachine", "Volume", "Template", "Project", "AsyncJob", "Event", "ResourceTag",
            *PROJECT_MODELS} <= set(theirs)
    before = _state_of(cloud, {k: v for k, v in theirs.items() if not k.startswith("_")})
    findings, not_exercised = _matrix(world[actor], world, theirs, own)
    findings += _list_matrix(world[actor], world, theirs, own)
    assert not findings, f"{len(findings)} finding(s):\n" + "\n".join(findings)
    assert len(not_exercised) <= MAY_NOT_REACH, "pairs the fillers kept from being tried:\n" + "\n".join(
        not_exercised)
    assert _state_of(cloud, {k: v for k, v in theirs.items() if not k.startswith("_")}) == before, \
        "nothing of A's changed"
    with cloud.db.transaction() as session:
        tags = session.scalars(sa.select(ResourceTag.value).where(ResourceTag.resource_uuid ==
                                                                  world["vms"]["a"]["id"])).all()
    assert tags == ["a"]


def test_a_free_address_answers_a_tenant_exactly_as_another_accounts_address_does(world, cloud):
    """Every command naming a public IP: for user B, a Free address and account A's allocated
    one are indistinguishable (same code, same words but the id), so B cannot probe which
    addresses are taken (owned_address checks the owner before the state)."""
    theirs, own = _sides(cloud, world)
    ip_model = MODEL_BY_NAME["PublicIpAddress"]
    with cloud.db.transaction() as session:
        taken = session.scalars(sa.select(ip_model).where(ip_model.uuid.in_(theirs["PublicIpAddress"]))).first()
        free = ip_model(**{attr.key: getattr(taken, attr.key) for attr in sa.inspect(ip_model).column_attrs
                           if attr.key not in ("id", "uuid", "created")})
        free.address, free.address_int = "free-1", next(_counter) + 2 * 10**6
        free.state, free.account_id, free.domain_id, free.network_id, free.allocated = "Free", None, None, None, None
        session.add(free)
        session.flush()
        free_uuid, taken_uuid = free.uuid, taken.uuid
    compared, refused = 0, 0
    for command in builtin_commands():
        for name, field in sorted(command.params.items()):
            if name in LIST_PARAMS or not _is_id_param(name, field):
                continue
            try:
                if _model_of(command, name) != "PublicIpAddress":
                    continue
            except LookupError:
                continue
            request = {}
            for other, other_field in command.params.items():
                if other != name and other_field.required:
                    request.update(_filler(command, other, other_field, own, world))
            answers = []
            for uuid in (taken_uuid, free_uuid):
                status, body, _ = _call(world["b"], command.name, {**request, name: uuid})
                answers.append((status, str(body.get("errortext", "")).replace(uuid, "<id>")))
            assert answers[0] == answers[1], f"{command.name} {name}: {answers}"
            compared += 1
            refused += answers[0][0] == 531
    assert compared >= 12 and refused >= 8, (compared, refused)


def test_domain_admins_see_their_domain_and_below_and_members_their_projects(world):
    def vm_names(client, **kw):
        return {v["name"] for v in client("listVirtualMachines", listall=True, **kw).get("virtualmachine", [])}

    assert vm_names(world["alpha_admin"]) == {"a-vm", "s-vm"}, "alpha and alpha/sub, not beta, no project VMs"
    assert vm_names(world["sub_admin"]) == {"s-vm"}, "its subdomain only, not the parent's"
    assert vm_names(world["beta_admin"]) == {"b-vm"}
    assert vm_names(world["alpha_admin"], domainid=world["sub"]["id"]) == {"s-vm"}
    assert world["sub_admin"].raw("listVirtualMachines", domainid=world["alpha"]["id"]).status_code == 531
    assert vm_names(world["alpha_admin"], projectid=world["projects"]["a"]["id"]) == {"a-proj-vm"}
    accounts = {a["name"] for a in world["sub_admin"]("listAccounts")["account"]}
    assert accounts == {"admin-sub", "acct-s"}

    project = world["projects"]["a"]["id"]
    names = {v["name"] for v in world["member"]("listVirtualMachines", projectid=project)["virtualmachine"]}
    assert names == {"a-proj-vm"}, "a member sees the project's VMs"
    assert world["member"]("listVirtualMachines", listall=True) == {}, "outside projectid: its own only"
    assert world["b"].raw("listVirtualMachines", projectid=project).status_code == 531
    assert world["s"].raw("listVirtualMachines", projectid=project).status_code == 531

    every = {v["name"] for v in world["member"]("listVirtualMachines", projectid=-1)["virtualmachine"]}
    assert every == {"a-proj-vm"}, "projectid=-1: the projects it is a member of"
    assert {v["name"] for v in world["b"]("listVirtualMachines", projectid=-1)["virtualmachine"]} == {"b-proj-vm"}
    assert world["s"]("listVirtualMachines", projectid=-1) == {}
    assert {v["name"] for v in world["alpha_admin"]("listVirtualMachines", projectid=-1)["virtualmachine"]} == \
        {"a-proj-vm"}, "a domain admin: the projects of its domains"
    assert [r["name"] for r in world["member"]("listProjectRoles", projectid=project)["projectrole"]] == ["role-a"]
    assert world["b"].raw("listProjectRoles", projectid=project).status_code == 531
