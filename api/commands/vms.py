"""Virtual machine commands: deploy, start, stop, reboot, destroy, expunge, recover, update,
change offering, list. The async ones queue a job whose handler is below its command."""

from __future__ import annotations

import base64
import binascii
import re

from sqlalchemy import select

from api.views.compute import VM_FIELDS, vm_load_options, vm_view
from api.views.identity import prefetch_tags
from api.views.vm_stats import STATS_FIELDS, stats_fields
from core.access import can_reach, resource_owner
from core.commands import ALL_ROLES, MAX_GIB, P, api_command, escape_like
from core.errors import InvalidParameterError, PermissionDenied
from core.jobs import job_handler
from core.model import Account, Host, Network, ServiceOffering, Template, VirtualMachine, Zone
from core.orchestration import vm as vm_ops
from core.orchestration.networking import network_for_deploy
from core.orchestration.vm_stats import running_vm_stats

from .offerings import usable_service_offering
from .tags import tag_filter

GiB = 1024**3


def _render(ctx, vm_uuid: str) -> dict:
    with ctx.transaction() as session:
        vm = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm_uuid))
        admin = ctx.caller is not None and ctx.caller.role_type != "User"
        return {"virtualmachine": vm_view(session, vm, admin=admin)}


def _is_admin(ctx) -> bool:
    return ctx.caller.role_type != "User"


def _owner(ctx, p) -> Account:
    """The account a new resource belongs to: the caller's, (admins) ``account`` + ``domainid``,
    or the project's with ``projectid`` (``core.access.resource_owner``)."""
    return resource_owner(ctx.session, ctx.caller, account_name=p.get("account"), domain_uuid=p.get("domainid"),
                          project_uuid=p.get("projectid"))


def usable_template(ctx, template_uuid: str) -> Template:
    template = ctx.get(Template, template_uuid, "templateid", check_owner=False)
    if not (template.is_public or template.is_featured or can_reach(
            ctx.session, ctx.caller, template.account_id, template.domain_id)):
        raise PermissionDenied(f"Account {ctx.caller.account_name} may not use template {template.uuid}")
    return template


#: CloudStack deploy parameters Strato knows but does not implement yet: refused, never silently ignored
NOT_YET = {
    "keypair": P.string("not supported yet"), "keypairs": P.list("not supported yet"),
    "securitygroupids": P.list("not supported yet"), "securitygroupnames": P.list("not supported yet"),
    "affinitygroupids": P.list("not supported yet"), "affinitygroupnames": P.list("not supported yet"),
    "diskofferingid": P.uuid("not supported yet"), "size": P.long("not supported yet"),
    "ipaddress": P.string("not supported yet"), "iptonetworklist": P.map("not supported yet"),
    "isoid": P.uuid("not supported yet"),
}

_HOSTNAME = re.compile(r"^[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")


def check_hostname(name: str) -> None:
    if not _HOSTNAME.match(name):
        raise InvalidParameterError(
            f"Invalid name {name!r}: a VM name may contain the ASCII letters a-z and A-Z, the digits 0-9 and the "
            "hyphen, must be 1 to 63 characters long, must start with a letter and must not end with a hyphen")


def _user_data(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameterError("userdata must be base64-encoded") from None
    return text


@api_command("deployVirtualMachine", response="virtualmachine", is_async=True, roles=ALL_ROLES,
             description="Creates and automatically starts a virtual machine based on a service offering, "
                         "disk offering, and template.",
             response_fields=VM_FIELDS,
             params={
                 "zoneid": P.uuid("availability zone for the virtual machine", required=True),
                 "serviceofferingid": P.uuid("the ID of the service offering for the virtual machine", required=True),
                 "templateid": P.uuid("the ID of the template for the virtual machine", required=True),
                 "name": P.string("host name for the virtual machine", max_length=63),
                 "displayname": P.string("an optional user generated name for the virtual machine"),
                 "networkids": P.list("list of network ids used by virtual machine", item=P.uuid()),
                 "userdata": P.text("base64-encoded user data", max_length=1048576),
                 "group": P.string("an optional group for the virtual machine"),
                 "hostid": P.uuid("destination host (admins)"),
                 "hypervisor": P.string("the hypervisor on which to deploy the virtual machine"),
                 "startvm": P.boolean("true by default: start the VM once it is created"),
                 "rootdisksize": P.long("size of the root volume in GB", minimum=1, maximum=MAX_GIB),
                 "account": P.string("the account the VM is for (with domainid)"),
                 "domainid": P.uuid("the domain of that account"),
                 "projectid": P.uuid("the project the VM is for"),
                 **NOT_YET,
             })
def deploy_virtual_machine(ctx, p):
    unsupported = sorted(set(p) & set(NOT_YET))
    if unsupported:
        raise InvalidParameterError(f"Strato does not support {', '.join(unsupported)} on deployVirtualMachine yet; "
                                    "deploy without it")
    if "name" in p:
        check_hostname(p["name"])
    zone = ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False)
    if zone.allocation_state != "Enabled" and not ctx.caller.is_root_admin:
        raise PermissionDenied(f"zone {zone.name} is disabled")
    offering = usable_service_offering(ctx, p["serviceofferingid"])
    template = usable_template(ctx, p["templateid"])
    if "hostid" in p and not ctx.caller.is_root_admin:
        raise PermissionDenied("only a root admin may choose the host")
    if "hypervisor" in p and template.hypervisor.lower() not in ("any", p["hypervisor"].lower()):
        raise InvalidParameterError(f"template {template.name} is for {template.hypervisor}, not {p['hypervisor']}")
    owner = _owner(ctx, p)
    if "networkids" in p:
        networks = [ctx.get(Network, uuid, "networkids") for uuid in p["networkids"]]
        if any(n.zone_id != zone.id for n in networks):
            raise InvalidParameterError("every network in networkids must be in the VM's zone")
    else:
        networks = [network_for_deploy(ctx.cloud, ctx.session, zone, owner)]
    vm = vm_ops.create(ctx.session, owner=owner, user_id=ctx.caller.user_id, zone=zone, offering=offering,
                       template=template, name=p.get("name"), display_name=p.get("displayname"), networks=networks,
                       user_data=_user_data(p.get("userdata")), group=p.get("group"),
                       root_size=p["rootdisksize"] * GiB if "rootdisksize" in p else None)
    ctx.event("VM.CREATE", f"Created VM {vm.name}", vm)
    return ctx.start_job("vm.deploy", {"vm": vm.uuid, "start": p.get("startvm", True),
                                       "hostid": p.get("hostid")}, instance=vm, instance_type="VirtualMachine")


@job_handler("vm.deploy")
def deploy_job(ctx):
    if ctx.params["start"]:
        vm_ops.start(ctx.cloud, ctx.params["vm"], first_deploy=True, required_host_uuid=ctx.params.get("hostid"))
    return _render(ctx, ctx.params["vm"])


def _may_expunge_or_recover(ctx) -> None:
    """Admins may; users only where allow.user.expunge.recover.vm says so, as in CloudStack."""
    if _is_admin(ctx) or ctx.cloud.config.get(ctx.session, "allow.user.expunge.recover.vm"):
        return
    raise PermissionDenied(f"Account {ctx.caller.account_name} may not expunge or recover VMs: the setting "
                           "allow.user.expunge.recover.vm is false (an admin can change it)")


def _vm(ctx, p) -> VirtualMachine:
    return ctx.get(VirtualMachine, p["id"], "id")


ID = {"id": P.uuid("the ID of the virtual machine", required=True)}


@api_command("startVirtualMachine", response="virtualmachine", is_async=True, response_fields=VM_FIELDS,
             description="Starts a virtual machine.",
             params={**ID, "hostid": P.uuid("destination host (root admins)")})
def start_virtual_machine(ctx, p):
    vm = _vm(ctx, p)
    if "hostid" in p:
        if not ctx.caller.is_root_admin:
            raise PermissionDenied("only a root admin may choose the host")
        ctx.get(Host, p["hostid"], "hostid")
    if vm.state not in ("Stopped", "Running"):
        raise InvalidParameterError(f"VM {vm.name} is {vm.state}; only a Stopped VM can be started")
    return ctx.start_job("vm.start", {"vm": vm.uuid, "hostid": p.get("hostid")}, instance=vm,
                         instance_type="VirtualMachine")


@job_handler("vm.start")
def start_job(ctx):
    vm_ops.start(ctx.cloud, ctx.params["vm"], required_host_uuid=ctx.params.get("hostid"))
    return _render(ctx, ctx.params["vm"])


@api_command("stopVirtualMachine", response="virtualmachine", is_async=True, response_fields=VM_FIELDS,
             description="Stops a virtual machine.",
             params={**ID, "forced": P.boolean("force stop the VM (power off without a clean shutdown)")})
def stop_virtual_machine(ctx, p):
    vm = _vm(ctx, p)
    if vm.state not in ("Running", "Stopped"):
        raise InvalidParameterError(f"VM {vm.name} is {vm.state}; only a Running VM can be stopped")
    return ctx.start_job("vm.stop", {"vm": vm.uuid, "forced": p.get("forced", False)}, instance=vm,
                         instance_type="VirtualMachine")


@job_handler("vm.stop")
def stop_job(ctx):
    vm_ops.stop(ctx.cloud, ctx.params["vm"], forced=ctx.params["forced"])
    return _render(ctx, ctx.params["vm"])


@api_command("rebootVirtualMachine", response="virtualmachine", is_async=True, response_fields=VM_FIELDS,
             description="Reboots a virtual machine.", params=ID)
def reboot_virtual_machine(ctx, p):
    vm = _vm(ctx, p)
    if vm.state != "Running":
        raise InvalidParameterError(f"VM {vm.name} is {vm.state}; only a Running VM can be rebooted")
    return ctx.start_job("vm.reboot", {"vm": vm.uuid}, instance=vm, instance_type="VirtualMachine")


@job_handler("vm.reboot")
def reboot_job(ctx):
    vm_ops.reboot(ctx.cloud, ctx.params["vm"])
    return _render(ctx, ctx.params["vm"])


@api_command("destroyVirtualMachine", response="virtualmachine", is_async=True, response_fields=VM_FIELDS,
             description="Destroys a virtual machine; with expunge, removes it for good at once.",
             params={**ID, "expunge": P.boolean("expunge the VM at once instead of after expunge.delay")})
def destroy_virtual_machine(ctx, p):
    vm = _vm(ctx, p)
    if p.get("expunge"):
        _may_expunge_or_recover(ctx)
    if vm.state in ("Destroyed", "Expunging") and not p.get("expunge"):
        raise InvalidParameterError(f"VM {vm.name} is already {vm.state}")
    return ctx.start_job("vm.destroy", {"vm": vm.uuid, "expunge": p.get("expunge", False)}, instance=vm,
                         instance_type="VirtualMachine")


@job_handler("vm.destroy")
def destroy_job(ctx):
    vm_ops.destroy(ctx.cloud, ctx.params["vm"], expunge=ctx.params["expunge"])
    return _render(ctx, ctx.params["vm"])


@api_command("expungeVirtualMachine", response="success", is_async=True,
             description="Expunges a destroyed virtual machine (users: when allow.user.expunge.recover.vm is true).",
             params=ID)
def expunge_virtual_machine(ctx, p):
    vm = _vm(ctx, p)
    _may_expunge_or_recover(ctx)
    if vm.state not in ("Destroyed", "Error", "Expunging"):
        raise InvalidParameterError(f"VM {vm.name} is {vm.state}; destroy it before expunging")
    return ctx.start_job("vm.expunge", {"vm": vm.uuid}, instance=vm, instance_type="VirtualMachine")


@job_handler("vm.expunge")
def expunge_job(ctx):
    vm_ops.expunge_vm(ctx.cloud, ctx.params["vm"])
    return {"success": True}


@api_command("recoverVirtualMachine", response="virtualmachine", response_fields=VM_FIELDS,
             description="Recovers a destroyed virtual machine.", params=ID)
def recover_virtual_machine(ctx, p):
    vm = _vm(ctx, p)
    _may_expunge_or_recover(ctx)
    vm_ops.recover(ctx.session, vm, ctx.cloud.plugins)
    ctx.event("VM.RECOVER", f"Recovered VM {vm.name}", vm)
    return vm_view(ctx.session, vm, admin=_is_admin(ctx))


@api_command("updateVirtualMachine", response="virtualmachine", response_fields=VM_FIELDS,
             description="Updates properties of a virtual machine.",
             params={**ID, "displayname": P.string("user generated name"), "group": P.string("group of the VM"),
                     "haenable": P.boolean("true if high availability is enabled"),
                     "userdata": P.text("base64-encoded user data", max_length=1048576),
                     "name": P.string("new host name of the VM (the VM must be stopped)", max_length=63)})
def update_virtual_machine(ctx, p):
    vm = _vm(ctx, p)
    if "name" in p and p["name"] != vm.name:
        if vm.state != "Stopped":
            raise InvalidParameterError(f"VM {vm.name} must be stopped to change its name")
        check_hostname(p["name"])
        if ctx.session.scalar(select(VirtualMachine.id).where(
                VirtualMachine.name == p["name"], VirtualMachine.account_id == vm.account_id,
                VirtualMachine.removed.is_(None))):
            raise InvalidParameterError(f"a VM named {p['name']} already exists in the account")
        vm.name = p["name"]
    if "displayname" in p:
        vm.display_name = p["displayname"]
    if "group" in p:
        vm.group_name = p["group"]
    if "haenable" in p:
        vm.ha_enabled = p["haenable"]
    if "userdata" in p:
        vm.user_data = _user_data(p["userdata"])
    ctx.event("VM.UPDATE", f"Updated VM {vm.name}", vm)
    return vm_view(ctx.session, vm, admin=_is_admin(ctx))


@api_command("changeServiceForVirtualMachine", response="virtualmachine", response_fields=VM_FIELDS,
             description="Changes the service offering of a stopped virtual machine.",
             params={**ID, "serviceofferingid": P.uuid("the new service offering", required=True)})
def change_service_for_virtual_machine(ctx, p):
    vm = _vm(ctx, p)
    offering = usable_service_offering(ctx, p["serviceofferingid"])
    vm_ops.change_offering(ctx.session, vm, offering)
    ctx.event("VM.UPGRADE", f"Changed the offering of VM {vm.name} to {offering.name}", vm)
    ctx.session.flush()
    ctx.session.refresh(vm)
    return vm_view(ctx.session, vm, admin=_is_admin(ctx))


#: CloudStack's VMDetails; only ``stats`` (or ``all``) changes the answer: it asks the hypervisors
VM_DETAILS = ("all", "group", "nics", "stats", "secgrp", "tmpl", "servoff", "diskoff", "backoff", "iso", "volume",
              "min", "affgrp")


@api_command("listVirtualMachines", response="virtualmachine", is_list=True,
             response_fields={**VM_FIELDS, **STATS_FIELDS},
             description="List the virtual machines owned by the account.",
             params={"id": P.uuid("the ID of the virtual machine"), "ids": P.list("the IDs", item=P.uuid()),
                     "details": P.list("comma separated list of VM details requested: " + ", ".join(VM_DETAILS)
                                       + "; stats (or all) adds the Running VMs' statistics, asked of their hosts"),
                     "name": P.string("name of the virtual machine"), "state": P.string("state of the VM"),
                     "zoneid": P.uuid("the availability zone"), "templateid": P.uuid("the template"),
                     "serviceofferingid": P.uuid("the service offering"), "hostid": P.uuid("the host (admins)"),
                     "groupid": P.string("the group"), "hypervisor": P.string("the hypervisor"),
                     "tags": P.map("list VMs with these tags: tags[0].key=k&tags[0].value=v")})
def list_virtual_machines(ctx, p):
    bad = sorted(set(d.lower() for d in p.get("details", [])) - set(VM_DETAILS))
    if bad:
        raise InvalidParameterError(f"The details parameter contains a non permitted value ({', '.join(bad)}); "
                                    f"the allowed values are {', '.join(VM_DETAILS)}")
    query = select(VirtualMachine).where(VirtualMachine.removed.is_(None), VirtualMachine.vm_type == "User")
    query = query.where(ctx.owner_filter(VirtualMachine, by_id="id" in p or "ids" in p))
    if "id" in p or "ids" in p:
        query = query.where(VirtualMachine.uuid.in_([p["id"]] if "id" in p else p["ids"]))
    if "name" in p:  # a substring match, as CloudStack documents it
        query = query.where(VirtualMachine.name.ilike(f"%{escape_like(p['name'])}%", escape="\\"))
    if "state" in p:
        query = query.where(VirtualMachine.state == p["state"].capitalize())
    if not _is_admin(ctx) and not ctx.cloud.config.get(ctx.session, "allow.user.view.destroyed.vm"):
        query = query.where(VirtualMachine.state != "Destroyed")
    for param, model, column in (("zoneid", Zone, VirtualMachine.zone_id),
                                 ("templateid", Template, VirtualMachine.template_id),
                                 ("serviceofferingid", ServiceOffering, VirtualMachine.service_offering_id)):
        if param in p:
            query = query.where(column == ctx.get(model, p[param], param, check_owner=False).id)
    if "hostid" in p:
        if not _is_admin(ctx):
            raise PermissionDenied("only admins may list VMs by host")
        query = query.where(VirtualMachine.host_id == ctx.get(Host, p["hostid"], "hostid", check_owner=False).id)
    if "hypervisor" in p:
        query = query.where(VirtualMachine.hypervisor == p["hypervisor"])
    if "tags" in p:
        query = query.where(tag_filter(VirtualMachine, "UserVm", p["tags"]))
    total, vms = ctx.page(query.options(*vm_load_options()), name_column=VirtualMachine.name,
                          order_by=VirtualMachine.id)
    prefetch_tags(ctx.session, "UserVm", [vm.id for vm in vms])
    admin = _is_admin(ctx)
    views = [vm_view(ctx.session, vm, admin=admin) for vm in vms]
    if {d.lower() for d in p.get("details", [])} & {"stats", "all"}:
        add_stats(ctx, views)
    return total, views


def add_stats(ctx, views: list[dict]) -> None:
    """Add the statistics of the Running VMs among ``views`` (one driver call each, side by side)."""
    found = running_vm_stats(ctx.cloud, ctx.session, [view["id"] for view in views])
    for view in views:
        if view["id"] in found:
            view.update(stats_fields(found[view["id"]]))
