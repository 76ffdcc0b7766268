"""Primary storage: createStoragePool, listStoragePools, updateStoragePool,
deleteStoragePool, enableStorageMaintenance, cancelStorageMaintenance.

The storage plugin serving a pool is the one named by ``provider`` or, for no
provider or CloudStack's ``DefaultPrimary``, the one taking the URL's scheme. A
CLUSTER pool belongs to a cluster (and its pod); a ZONE pool serves every cluster of
its zone running its hypervisor. The maintenance commands are async; their jobs
are ``infrastructure.pool_maintenance`` and ``infrastructure.pool_maintenance_cancel``.
"""

from __future__ import annotations

from sqlalchemy import select

from api.views.infrastructure import STORAGE_POOL_FIELDS, storage_pool_view
from core.commands import ROOT_ONLY, SUCCESS, P, api_command
from core.errors import InvalidParameterError
from core.jobs import job_handler
from core.model import Cluster, Pod, StoragePool, Zone
from core.orchestration import infrastructure
from core.orchestration.infrastructure import PoolStatus

from .clusters import hypervisor_type
from .zones import choice, invalid

SCOPES = ("CLUSTER", "ZONE")
POOL_STATES = (PoolStatus.UP, PoolStatus.DISABLED, PoolStatus.PREPARE_FOR_MAINTENANCE, PoolStatus.MAINTENANCE,
               PoolStatus.ERROR_IN_MAINTENANCE)


@api_command("createStoragePool", response="storagepool", roles=ROOT_ONLY, response_fields=STORAGE_POOL_FIELDS,
             params={
                 "name": P.string("the name of the storage pool", required=True),
                 "url": P.string("the URL of the storage pool, as its plugin takes it", required=True,
                                 max_length=1024),
                 "zoneid": P.uuid("the zone of the storage pool", required=True),
                 "podid": P.uuid("the pod of a CLUSTER-scoped pool"),
                 "clusterid": P.uuid("the cluster of a CLUSTER-scoped pool"),
                 "scope": P.string("CLUSTER (the default with clusterid) or ZONE"),
                 "hypervisor": P.string("the hypervisor a ZONE-scoped pool serves (required for ZONE)"),
                 "provider": P.string("the storage plugin (default: DefaultPrimary, the one taking the URL)"),
                 "tags": P.list("the storage tags of the pool"),
                 "capacitybytes": P.long("the capacity to offer, at most what the pool reports", minimum=1),
                 "details": P.map("details handed to the storage plugin"),
             })
def create_storage_pool(ctx, p):
    """Creates a primary storage pool."""
    zone = ctx.get(Zone, p["zoneid"], "zoneid")
    scope = choice(ctx, "scope", p["scope"], SCOPES) if "scope" in p else "CLUSTER" if "clusterid" in p else "ZONE"
    pod = cluster = None
    if scope == "CLUSTER":
        if "clusterid" not in p:
            raise invalid(ctx, "clusterid", "a CLUSTER-scoped pool needs clusterid (and podid)")
        cluster = ctx.get(Cluster, p["clusterid"], "clusterid")
        pod = ctx.get(Pod, p["podid"], "podid") if "podid" in p else cluster.pod
        if cluster.pod_id != pod.id or pod.zone_id != zone.id:
            raise invalid(ctx, "clusterid", f"cluster {cluster.name} is not in pod {pod.name} of zone {zone.name}")
        hypervisor = cluster.hypervisor
    else:
        if "hypervisor" not in p:
            raise invalid(ctx, "hypervisor", "a ZONE-scoped pool needs the hypervisor it serves")
        hypervisor = hypervisor_type(ctx, p["hypervisor"])
    url = p["url"].strip()
    try:
        provider = infrastructure.primary_provider(ctx.cloud, p.get("provider"), url)
    except InvalidParameterError as exc:
        named = p.get("provider", "").strip().lower() not in ("", infrastructure.DEFAULT_PRIMARY)
        raise invalid(ctx, "provider" if named else "url", exc.message) from None
    details = {k: v for item in p.get("details", []) for k, v in item.items()}
    pool = infrastructure.add_storage_pool(
        ctx.cloud, ctx.session, zone=zone, name=p["name"].strip(), url=url, scope=scope, provider=provider,
        pod=pod, cluster=cluster, hypervisor=hypervisor, tags=p.get("tags"), capacity_bytes=p.get("capacitybytes"),
        details=details)
    ctx.event("STORAGE.POOL.CREATE", f"Created storage pool {pool.name} ({scope}) at {url}", pool)
    return storage_pool_view(ctx.session, pool)


@api_command("listStoragePools", response="storagepool", is_list=True, roles=ROOT_ONLY,
             response_fields=STORAGE_POOL_FIELDS, params={
                 "id": P.uuid("the ID of the storage pool"),
                 "name": P.string("the name of the storage pool"),
                 "zoneid": P.uuid("the zone of the pools"),
                 "podid": P.uuid("the pod of the pools"),
                 "clusterid": P.uuid("the cluster of the pools"),
                 "scope": P.string("CLUSTER or ZONE"),
                 "status": P.string("the state of the pools: Up, Disabled, Maintenance, ..."),
             })
def list_storage_pools(ctx, p):
    """Lists primary storage pools."""
    query = select(StoragePool).where(StoragePool.removed.is_(None))
    if "id" in p:
        query = query.where(StoragePool.uuid == p["id"])
    if "name" in p:
        query = query.where(StoragePool.name == p["name"])
    for param, model, column in (("zoneid", Zone, StoragePool.zone_id), ("podid", Pod, StoragePool.pod_id),
                                 ("clusterid", Cluster, StoragePool.cluster_id)):
        if param in p:
            query = query.where(column == ctx.get(model, p[param], param).id)
    if "scope" in p:
        query = query.where(StoragePool.scope == choice(ctx, "scope", p["scope"], SCOPES))
    if "status" in p:
        query = query.where(StoragePool.status == choice(ctx, "status", p["status"], POOL_STATES))
    total, pools = ctx.page(query, name_column=StoragePool.name, order_by=StoragePool.id)
    return total, [storage_pool_view(ctx.session, pool) for pool in pools]


@api_command("updateStoragePool", response="storagepool", roles=ROOT_ONLY, response_fields=STORAGE_POOL_FIELDS,
             params={
                 "id": P.uuid("the ID of the storage pool", required=True),
                 "name": P.string("the new name of the storage pool"),
                 "tags": P.list("the pool's new storage tags (replacing the old ones)"),
                 "capacitybytes": P.long("the capacity to offer, at most what the pool reports", minimum=1),
                 "enabled": P.boolean("false to stop placing new volumes on the pool, true to resume"),
             })
def update_storage_pool(ctx, p):
    """Updates a pool's name, tags, offered capacity, or enabled state."""
    pool = ctx.get(StoragePool, p["id"], "id")
    if "name" in p:
        pool.name = p["name"].strip()
    if "tags" in p:
        pool.tags = ",".join(p["tags"]) or None
    if "capacitybytes" in p:
        infrastructure.set_pool_capacity(ctx.cloud, ctx.session, pool, p["capacitybytes"])
    event_type = "UPDATE.PS"
    if "enabled" in p:
        if pool.status not in (PoolStatus.UP, PoolStatus.DISABLED):
            raise invalid(ctx, "enabled", f"storage pool {pool.name} is {pool.status}; cancel its maintenance first")
        pool.status = PoolStatus.UP if p["enabled"] else PoolStatus.DISABLED
        event_type = "ENABLE.PS" if p["enabled"] else "DISABLE.PS"
    ctx.event(event_type, f"Updated storage pool {pool.name}", pool)
    return storage_pool_view(ctx.session, pool)


@api_command("deleteStoragePool", response="success", roles=ROOT_ONLY, params={
    "id": P.uuid("the ID of the storage pool", required=True),
    "forced": P.boolean("delete even while destroyed (not yet expunged) volumes remain on it"),
})
def delete_storage_pool(ctx, p):
    """Deletes a primary storage pool (536 while volumes live on it)."""
    pool = ctx.get(StoragePool, p["id"], "id")
    infrastructure.remove_storage_pool(ctx.cloud, ctx.session, pool, forced=p.get("forced", False))
    ctx.event("STORAGE.POOL.DELETE", f"Deleted storage pool {pool.name}", pool)
    return SUCCESS


@api_command("enableStorageMaintenance", response="storagepool", is_async=True, roles=ROOT_ONLY,
             response_fields=STORAGE_POOL_FIELDS, params={"id": P.uuid("the ID of the storage pool", required=True)})
def enable_storage_maintenance(ctx, p):
    """Puts a primary storage pool into maintenance: it takes no new volumes."""
    pool = ctx.get(StoragePool, p["id"], "id")
    infrastructure.begin_pool_maintenance(ctx.session, pool)
    ctx.event("MAINT.PREPARE.PS", f"Putting storage pool {pool.name} into maintenance", pool, state="Scheduled")
    return ctx.start_job("infrastructure.pool_maintenance", {"id": pool.uuid}, instance=pool)


@api_command("cancelStorageMaintenance", response="storagepool", is_async=True, roles=ROOT_ONLY,
             response_fields=STORAGE_POOL_FIELDS, params={"id": P.uuid("the ID of the storage pool", required=True)})
def cancel_storage_maintenance(ctx, p):
    """Cancels a primary storage pool's maintenance: it is Up again."""
    pool = ctx.get(StoragePool, p["id"], "id")
    if pool.status in (PoolStatus.UP, PoolStatus.DISABLED):
        raise invalid(ctx, "id", f"storage pool {pool.name} is {pool.status}, not in maintenance")
    ctx.event("MAINT.CANCEL.PS", f"Cancelling maintenance of storage pool {pool.name}", pool, state="Scheduled")
    return ctx.start_job("infrastructure.pool_maintenance_cancel", {"id": pool.uuid}, instance=pool)


@job_handler("infrastructure.pool_maintenance")
def _pool_maintenance_job(job) -> dict:
    infrastructure.run_pool_maintenance(job.cloud, job.params["id"], job.caller)
    return _pool_result(job)


@job_handler("infrastructure.pool_maintenance_cancel")
def _pool_maintenance_cancel_job(job) -> dict:
    infrastructure.cancel_pool_maintenance(job.cloud, job.params["id"], job.caller)
    return _pool_result(job)


def _pool_result(job) -> dict:
    with job.transaction() as session:
        pool = session.scalar(select(StoragePool).where(StoragePool.uuid == job.params["id"]))
        return {"storagepool": storage_pool_view(session, pool)}
