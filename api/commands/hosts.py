"""Hosts: addHost, listHosts, updateHost, deleteHost, prepareHostForMaintenance,
cancelHostMaintenance.

addHost is synchronous, as in CloudStack: the hypervisor driver discovers the
host while the command runs, and its error (unreachable, wrong URL) is the
command's error, with nothing added. The maintenance commands are async; their
jobs are ``infrastructure.host_maintenance`` and ``infrastructure.host_maintenance_cancel``.
"""

from __future__ import annotations

from sqlalchemy import func, select

from api.views.infrastructure import HOST_FIELDS, host_view
from core.commands import ROOT_ONLY, SUCCESS, P, api_command
from core.jobs import job_handler
from core.model import Cluster, Host, HostStatus, Pod, ResourceState, Zone
from core.orchestration import infrastructure

from .zones import allocation_state, choice, invalid

HOST_STATES = (HostStatus.UP, HostStatus.DOWN, HostStatus.ALERT, HostStatus.DISCONNECTED, HostStatus.CONNECTING)
RESOURCE_STATES = (ResourceState.ENABLED, ResourceState.DISABLED, ResourceState.PREPARE_FOR_MAINTENANCE,
                   ResourceState.MAINTENANCE, ResourceState.ERROR_IN_MAINTENANCE)
#: the resource states an admin may switch between with updateHost
_ADMIN_STATES = (ResourceState.ENABLED, ResourceState.DISABLED)


@api_command("addHost", response="host", is_list=True, list_params=False, roles=ROOT_ONLY,
             response_fields=HOST_FIELDS, params={
    "zoneid": P.uuid("the zone of the host", required=True),
    "podid": P.uuid("the pod of the host", required=True),
    "clusterid": P.uuid("the cluster of the host"),
    "clustername": P.string("the name of an existing cluster of the pod (instead of clusterid)"),
    "hypervisor": P.string("the hypervisor of the host; must be the cluster's", required=True),
    "url": P.string("the host URL, as the hypervisor plugin takes it", required=True, max_length=1024),
    "username": P.string("the username for the host"),
    "password": P.string("the password for the host"),
    "hosttags": P.list("tags to give the host"),
    "allocationstate": P.string("Enabled or Disabled: whether the host takes new VMs"),
})
def add_host(ctx, p):
    """Adds a host: its hypervisor plugin reaches it and reports its CPU and memory."""
    zone = ctx.get(Zone, p["zoneid"], "zoneid")
    pod = ctx.get(Pod, p["podid"], "podid")
    if pod.zone_id != zone.id:
        raise invalid(ctx, "podid", f"pod {pod.name} is not in zone {zone.name}")
    cluster = _cluster(ctx, pod, p)
    if p["hypervisor"].strip().lower() != cluster.hypervisor.lower():
        raise invalid(ctx, "hypervisor", f"cluster {cluster.name} is a {cluster.hypervisor} cluster, "
                                         f"not {p['hypervisor']}")
    state = allocation_state(ctx, p["allocationstate"]) if "allocationstate" in p else ResourceState.ENABLED
    host = infrastructure.add_host(ctx.cloud, ctx.session, cluster, p["url"].strip(), username=p.get("username"),
                                   password=p.get("password"), host_tags=p.get("hosttags"), allocation_state=state)
    ctx.event("HOST.ADD", f"Added host {host.name} to cluster {cluster.name}", host)
    return 1, [host_view(ctx.session, host)]


@api_command("listHosts", response="host", is_list=True, roles=ROOT_ONLY, response_fields=HOST_FIELDS, params={
    "id": P.uuid("the ID of the host"),
    "name": P.string("(part of) the name of the host"),
    "zoneid": P.uuid("the zone of the hosts"),
    "podid": P.uuid("the pod of the hosts"),
    "clusterid": P.uuid("the cluster of the hosts"),
    "type": P.string("the host type (Routing)"),
    "state": P.string("the state of the hosts: Up, Down, Alert, Disconnected"),
    "resourcestate": P.string("the resource state of the hosts: Enabled, Disabled, PrepareForMaintenance, "
                              "Maintenance, ErrorInMaintenance"),
    "hypervisor": P.string("the hypervisor of the hosts"),
    "details": P.list("accepted for compatibility: every host detail is always returned"),
})
def list_hosts(ctx, p):
    """Lists hosts."""
    query = select(Host).where(Host.removed.is_(None))
    if "id" in p:
        query = query.where(Host.uuid == p["id"])
    if "name" in p:
        query = query.where(Host.name.contains(p["name"], autoescape=True))
    for param, model, column in (("zoneid", Zone, Host.zone_id), ("podid", Pod, Host.pod_id),
                                 ("clusterid", Cluster, Host.cluster_id)):
        if param in p:
            query = query.where(column == ctx.get(model, p[param], param).id)
    if "type" in p:
        query = query.where(func.lower(Host.host_type) == p["type"].strip().lower())
    if "state" in p:
        query = query.where(Host.status == choice(ctx, "state", p["state"], HOST_STATES))
    if "resourcestate" in p:
        query = query.where(Host.resource_state == choice(ctx, "resourcestate", p["resourcestate"], RESOURCE_STATES))
    if "hypervisor" in p:
        query = query.where(func.lower(Host.hypervisor) == p["hypervisor"].strip().lower())
    total, hosts = ctx.page(query, name_column=Host.name, order_by=Host.id)
    return total, [host_view(ctx.session, host) for host in hosts]


@api_command("updateHost", response="host", roles=ROOT_ONLY, response_fields=HOST_FIELDS, params={
    "id": P.uuid("the ID of the host", required=True),
    "hosttags": P.list("the host's new tags (replacing the old ones)"),
    "allocationstate": P.string("Enable or Disable: whether the host takes new VMs"),
    "name": P.string("the new name of the host"),
})
def update_host(ctx, p):
    """Updates a host's tags, name, or allocation state (not while it is in maintenance)."""
    host = ctx.get(Host, p["id"], "id")
    if "allocationstate" in p:
        wanted = allocation_state(ctx, p["allocationstate"])
        if host.resource_state not in _ADMIN_STATES:
            raise invalid(ctx, "allocationstate", f"host {host.name} is {host.resource_state}; "
                                                  f"cancel its maintenance first")
        host.resource_state = wanted
    if "hosttags" in p:
        host.host_tags = ",".join(p["hosttags"]) or None
    if "name" in p:
        host.name = p["name"].strip()
    ctx.event("HOST.UPDATE", f"Updated host {host.name}", host)
    return host_view(ctx.session, host)


@api_command("deleteHost", response="success", roles=ROOT_ONLY, params={
    "id": P.uuid("the ID of the host", required=True),
    "forced": P.boolean("remove the host even with VMs on it: they are stopped (or, if the host does "
                        "not answer, recorded Stopped) first"),
    "forcedestroylocalstorage": P.boolean("accepted for compatibility; Strato keeps no local storage"),
})
def delete_host(ctx, p):
    """Deletes a host (536 while VMs are on it, unless forced)."""
    host = ctx.get(Host, p["id"], "id")
    infrastructure.remove_host(ctx.cloud, ctx.session, host, forced=p.get("forced", False))
    ctx.event("HOST.DELETE", f"Deleted host {host.name}", host)
    return SUCCESS


@api_command("prepareHostForMaintenance", response="host", is_async=True, roles=ROOT_ONLY,
             response_fields=HOST_FIELDS, params={"id": P.uuid("the ID of the host", required=True)})
def prepare_host_for_maintenance(ctx, p):
    """Prepares a host for maintenance: its VMs are live-migrated to other hosts of the cluster."""
    host = ctx.get(Host, p["id"], "id")
    infrastructure.begin_host_maintenance(ctx.session, host)
    ctx.event("MAINT.PREPARE", f"Preparing host {host.name} for maintenance", host, state="Scheduled")
    return ctx.start_job("infrastructure.host_maintenance", {"hostid": host.uuid}, instance=host)


@api_command("cancelHostMaintenance", response="host", is_async=True, roles=ROOT_ONLY,
             response_fields=HOST_FIELDS, params={"id": P.uuid("the ID of the host", required=True)})
def cancel_host_maintenance(ctx, p):
    """Cancels a host's maintenance: it is Enabled again."""
    host = ctx.get(Host, p["id"], "id")
    if host.resource_state in _ADMIN_STATES:
        raise invalid(ctx, "id", f"host {host.name} is {host.resource_state}, not in maintenance")
    ctx.event("MAINT.CANCEL", f"Cancelling maintenance of host {host.name}", host, state="Scheduled")
    return ctx.start_job("infrastructure.host_maintenance_cancel", {"hostid": host.uuid}, instance=host)


@job_handler("infrastructure.host_maintenance")
def _host_maintenance_job(job) -> dict:
    infrastructure.run_host_maintenance(job.cloud, job.params["hostid"], job.caller)
    return _host_result(job)


@job_handler("infrastructure.host_maintenance_cancel")
def _host_maintenance_cancel_job(job) -> dict:
    infrastructure.cancel_host_maintenance(job.cloud, job.params["hostid"], job.caller)
    return _host_result(job)


def _host_result(job) -> dict:
    with job.transaction() as session:
        host = session.scalar(select(Host).where(Host.uuid == job.params["hostid"]))
        return {"host": host_view(session, host)}


def _cluster(ctx, pod: Pod, p: dict) -> Cluster:
    if "clusterid" in p:
        cluster = ctx.get(Cluster, p["clusterid"], "clusterid")
        if cluster.pod_id != pod.id:
            raise invalid(ctx, "clusterid", f"cluster {cluster.name} is not in pod {pod.name}")
        return cluster
    if "clustername" in p:
        cluster = ctx.session.scalar(select(Cluster).where(
            Cluster.pod_id == pod.id, Cluster.name == p["clustername"].strip(), Cluster.removed.is_(None)))
        if cluster is None:
            raise invalid(ctx, "clustername", f"pod {pod.name} has no cluster named {p['clustername']}")
        return cluster
    raise invalid(ctx, "clusterid", "give clusterid or clustername: every host belongs to a cluster")
