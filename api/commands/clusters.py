"""Clusters: addCluster, listClusters, updateCluster, deleteCluster.

A cluster's hypervisor must be an enabled hypervisor plugin. Its CPU and memory
overcommit ratios (CloudStack's ``cpuovercommitratio`` / ``memoryovercommitratio``)
start at the global ``cpu.overprovisioning.factor`` / ``mem.overprovisioning.factor``
and can be set per cluster here or with ``updateConfiguration clusterid=``.
"""

from __future__ import annotations

from sqlalchemy import func, select

from api.views.infrastructure import CLUSTER_FIELDS, cluster_view
from core.commands import ROOT_ONLY, SUCCESS, P, api_command
from core.errors import ResourceInUseError, UnsupportedError
from core.model import Cluster, Host, Pod, StoragePool, Zone, utcnow

from .zones import allocation_state, choice, invalid

CLUSTER_TYPES = ("CloudManaged", "ExternalManaged")
MANAGED_STATES = ("Managed", "Unmanaged")


def hypervisor_type(ctx, name: str, param: str = "hypervisor") -> str:
    """CloudStack's spelling of an enabled hypervisor (``kvm`` -> ``KVM``); 431 naming what is enabled."""
    try:
        return ctx.cloud.plugins.hypervisor(name.strip()).hypervisor_type
    except UnsupportedError as exc:
        raise invalid(ctx, param, exc.message) from None


def overcommit_ratio(ctx, p: dict, param: str) -> float | None:
    if param not in p:
        return None
    if p[param] <= 0:
        raise invalid(ctx, param, "must be greater than 0")
    return float(p[param])


#: far above any real overcommit; a larger ratio only overflows the capacity arithmetic
MAX_RATIO = 1000.0

_RATIO_PARAMS = {
    "cpuovercommitratio": P.float("the CPU overcommit ratio of the cluster", maximum=MAX_RATIO),
    "memoryovercommitratio": P.float("the memory overcommit ratio of the cluster", maximum=MAX_RATIO),
}


@api_command("addCluster", response="cluster", is_list=True, list_params=False, roles=ROOT_ONLY,
             response_fields=CLUSTER_FIELDS, params={
    "zoneid": P.uuid("the zone of the cluster", required=True),
    "podid": P.uuid("the pod of the cluster", required=True),
    "clustername": P.string("the name of the cluster", required=True),
    "hypervisor": P.string("the hypervisor of the cluster's hosts (an enabled hypervisor plugin)", required=True),
    "clustertype": P.string("CloudManaged or ExternalManaged", required=True),
    "allocationstate": P.string("Enabled or Disabled: whether the cluster takes new VMs"),
    **_RATIO_PARAMS,
})
def add_cluster(ctx, p):
    """Adds a cluster to a pod."""
    zone = ctx.get(Zone, p["zoneid"], "zoneid")
    pod = ctx.get(Pod, p["podid"], "podid")
    if pod.zone_id != zone.id:
        raise invalid(ctx, "podid", f"pod {pod.name} is not in zone {zone.name}")
    name = p["clustername"].strip()
    _check_name(ctx, pod, name)
    config = ctx.cloud.config
    cluster = Cluster(
        name=name, pod_id=pod.id, zone_id=zone.id, hypervisor=hypervisor_type(ctx, p["hypervisor"]),
        cluster_type=choice(ctx, "clustertype", p["clustertype"], CLUSTER_TYPES),
        cpu_overprovisioning=overcommit_ratio(ctx, p, "cpuovercommitratio")
        or config.get(ctx.session, "cpu.overprovisioning.factor"),
        memory_overprovisioning=overcommit_ratio(ctx, p, "memoryovercommitratio")
        or config.get(ctx.session, "mem.overprovisioning.factor"))
    if "allocationstate" in p:
        cluster.allocation_state = allocation_state(ctx, p["allocationstate"])
    ctx.session.add(cluster)
    ctx.session.flush()
    ctx.event("CLUSTER.CREATE", f"Added cluster {cluster.name} ({cluster.hypervisor}) to pod {pod.name}", cluster)
    return 1, [cluster_view(ctx.session, cluster)]


@api_command("listClusters", response="cluster", is_list=True, roles=ROOT_ONLY, response_fields=CLUSTER_FIELDS,
             params={
                 "id": P.uuid("the ID of the cluster"),
                 "name": P.string("the name of the cluster"),
                 "zoneid": P.uuid("the zone of the clusters"),
                 "podid": P.uuid("the pod of the clusters"),
                 "hypervisor": P.string("the hypervisor of the clusters"),
                 "clustertype": P.string("CloudManaged or ExternalManaged"),
                 "allocationstate": P.string("Enabled or Disabled"),
                 "managedstate": P.string("Managed or Unmanaged"),
             })
def list_clusters(ctx, p):
    """Lists clusters."""
    query = select(Cluster).where(Cluster.removed.is_(None))
    if "id" in p:
        query = query.where(Cluster.uuid == p["id"])
    if "name" in p:
        query = query.where(Cluster.name == p["name"])
    if "zoneid" in p:
        query = query.where(Cluster.zone_id == ctx.get(Zone, p["zoneid"], "zoneid").id)
    if "podid" in p:
        query = query.where(Cluster.pod_id == ctx.get(Pod, p["podid"], "podid").id)
    if "hypervisor" in p:
        query = query.where(func.lower(Cluster.hypervisor) == p["hypervisor"].strip().lower())
    if "clustertype" in p:
        query = query.where(Cluster.cluster_type == choice(ctx, "clustertype", p["clustertype"], CLUSTER_TYPES))
    if "allocationstate" in p:
        query = query.where(Cluster.allocation_state == allocation_state(ctx, p["allocationstate"]))
    if "managedstate" in p:
        query = query.where(Cluster.managed_state == choice(ctx, "managedstate", p["managedstate"], MANAGED_STATES))
    total, clusters = ctx.page(query, name_column=Cluster.name, order_by=Cluster.id)
    return total, [cluster_view(ctx.session, cluster) for cluster in clusters]


@api_command("updateCluster", response="cluster", roles=ROOT_ONLY, response_fields=CLUSTER_FIELDS, params={
    "id": P.uuid("the ID of the cluster", required=True),
    "clustername": P.string("the new name of the cluster"),
    "hypervisor": P.string("the hypervisor (only a cluster without hosts may change it)"),
    "clustertype": P.string("CloudManaged or ExternalManaged"),
    "allocationstate": P.string("Enabled or Disabled: whether the cluster takes new VMs"),
    "managedstate": P.string("Managed or Unmanaged"),
    **_RATIO_PARAMS,
})
def update_cluster(ctx, p):
    """Updates a cluster: name, allocation state, managed state, overcommit ratios."""
    cluster = ctx.get(Cluster, p["id"], "id")
    if "clustername" in p and p["clustername"].strip() != cluster.name:
        _check_name(ctx, cluster.pod, p["clustername"].strip())
        cluster.name = p["clustername"].strip()
    if "hypervisor" in p:
        wanted = hypervisor_type(ctx, p["hypervisor"])
        if wanted != cluster.hypervisor and _count(ctx, Host, cluster):
            raise invalid(ctx, "hypervisor", f"cluster {cluster.name} has hosts; its hypervisor cannot change")
        cluster.hypervisor = wanted
    if "clustertype" in p:
        cluster.cluster_type = choice(ctx, "clustertype", p["clustertype"], CLUSTER_TYPES)
    if "allocationstate" in p:
        cluster.allocation_state = allocation_state(ctx, p["allocationstate"])
    if "managedstate" in p:
        cluster.managed_state = choice(ctx, "managedstate", p["managedstate"], MANAGED_STATES)
    cluster.cpu_overprovisioning = overcommit_ratio(ctx, p, "cpuovercommitratio") or cluster.cpu_overprovisioning
    cluster.memory_overprovisioning = (overcommit_ratio(ctx, p, "memoryovercommitratio")
                                       or cluster.memory_overprovisioning)
    ctx.event("CLUSTER.UPDATE", f"Updated cluster {cluster.name}", cluster)
    return cluster_view(ctx.session, cluster)


@api_command("deleteCluster", response="success", roles=ROOT_ONLY, params={
    "id": P.uuid("the ID of the cluster", required=True),
})
def delete_cluster(ctx, p):
    """Deletes a cluster without hosts or cluster-wide pools (536 otherwise)."""
    cluster = ctx.get(Cluster, p["id"], "id")
    for what, model in (("hosts", Host), ("primary storage pools", StoragePool)):
        if _count(ctx, model, cluster):
            raise ResourceInUseError(f"The cluster {cluster.name} is not deletable because there are {what} in it")
    cluster.removed = utcnow()
    ctx.event("CLUSTER.DELETE", f"Deleted cluster {cluster.name}", cluster)
    return SUCCESS


def _count(ctx, model, cluster: Cluster) -> int:
    return ctx.session.scalar(select(func.count(model.id)).where(model.cluster_id == cluster.id,
                                                                 model.removed.is_(None)))


def _check_name(ctx, pod: Pod, name: str) -> None:
    if ctx.session.scalar(select(Cluster.id).where(Cluster.pod_id == pod.id, Cluster.name == name,
                                                   Cluster.removed.is_(None))):
        raise invalid(ctx, "clustername", f"A cluster with name {name} already exists in pod {pod.name}")
