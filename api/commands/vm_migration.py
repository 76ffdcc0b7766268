"""migrateVirtualMachine: live migration of a Running VM to another host (root admins);
findHostsForMigration: where it could go.

The rules and the state changes are ``core.orchestration.infrastructure.migrate_vm``'s
(the destination's capacity reserved and the VM Migrating in one transaction, the
driver's move, then Running on the destination; undone on failure), the same path host
maintenance takes. Moving a stopped VM's volumes (``storageid``) is not offered.
"""

from __future__ import annotations

from api.views.compute import VM_FIELDS
from api.views.infrastructure import HOST_FIELDS, host_view
from core.commands import ROOT_ONLY, P, api_command
from core.errors import InvalidParameterError, UnsupportedError
from core.jobs import job_handler
from core.model import Host, VirtualMachine
from core.orchestration import infrastructure
from core.orchestration import vm as vm_ops

from .vms import _render


@api_command("migrateVirtualMachine", response="virtualmachine", is_async=True, roles=ROOT_ONLY,
             response_fields=VM_FIELDS,
             description="Attempts Migration of a VM to a different host or Root volume of the vm to a "
                         "different storage pool",
             params={
                 "virtualmachineid": P.uuid("the ID of the virtual machine", required=True),
                 "hostid": P.uuid("Destination Host ID to migrate VM to."),
                 "autoselect": P.boolean("Automatically select a destination host which do not require storage "
                                         "migration, if hostId and storageId are not specified (true unless "
                                         "given false)"),
                 "storageid": P.uuid("Destination storage pool ID to migrate VM volumes to: not supported"),
             })
def migrate_virtual_machine(ctx, p):
    vm = ctx.get(VirtualMachine, p["virtualmachineid"], "virtualmachineid")
    if "storageid" in p and "hostid" in p:
        raise InvalidParameterError("Only one of hostId and storageId can be specified")
    if "storageid" in p:
        raise UnsupportedError("migrating a VM's volumes to another pool (storageid) is not supported; "
                               "migrate the volumes with migrateVolume while the VM is stopped")
    if vm.state != "Running":
        raise InvalidParameterError(f"VM {vm.name} is {vm.state}, not Running: unable to migrate the VM")
    host_uuid = None
    if "hostid" in p:
        host = ctx.get(Host, p["hostid"], "hostid")
        if host.id == vm.host_id:
            raise InvalidParameterError(f"Cannot migrate VM {vm.name}: destination host {host.name} is the host "
                                        "it runs on")
        host_uuid = host.uuid
    elif not p.get("autoselect", True):
        raise InvalidParameterError("Please specify a host as destination, or pass 'autoselect=true' to "
                                    "automatically select a destination host which do not require storage migration")
    return ctx.start_job("vm.migrate", {"vm": vm.uuid, "hostid": host_uuid}, instance=vm,
                         instance_type="VirtualMachine")


@job_handler("vm.migrate")
def migrate_job(ctx):
    infrastructure.migrate_vm(ctx.cloud, ctx.params["vm"], host_uuid=ctx.params["hostid"])
    return _render(ctx, ctx.params["vm"])


@api_command("findHostsForMigration", response="host", is_list=True, roles=ROOT_ONLY,
             response_fields={**HOST_FIELDS,
                              "suitableformigration": "true if this host has enough CPU and RAM capacity to "
                                                      "migrate a VM to it, false otherwise",
                              "requiresStorageMotion": "true if migrating a vm to this host requires storage "
                                                       "motion, false otherwise"},
             description="Find hosts suitable for migrating a virtual machine.",
             params={"virtualmachineid": P.uuid("find hosts to which this VM can be migrated and flag the hosts "
                                                "with enough CPU/RAM to host the VM", required=True)})
def find_hosts_for_migration(ctx, p):
    """Every other host the VM could live-migrate to, ``suitableformigration`` where it fits now
    (read-only: nothing reserved). Strato moves no storage with a VM, so only hosts that reach
    its root volume's pool are listed, each with requiresStorageMotion false."""
    vm = ctx.get(VirtualMachine, p["virtualmachineid"], "virtualmachineid")
    found = vm_ops.hosts_for_migration(ctx.cloud, ctx.session, vm)
    keyword = (p.get("keyword") or "").lower()
    found = [(host, suitable) for host, suitable in found if keyword in host.name.lower()]
    page = found[ctx.page_window()]
    return len(found), [{**host_view(ctx.session, host), "suitableformigration": suitable,
                         "requiresStorageMotion": False} for host, suitable in page]
