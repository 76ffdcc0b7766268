"""The deployment planner: first fit over clusters, then hosts, then pools.

``plan`` runs inside the transaction that moves the VM to Starting. It reserves
the host's CPU and memory and the pool's space with conditional UPDATEs
(``capacity.reserve``), so when it returns a ``Deployment`` the capacity is
held, and concurrent plans can never over-commit. When nothing fits it leaves
nothing reserved and raises ``InsufficientCapacityError`` (533) saying why.

What is honoured: the zone, the template's hypervisor, cluster and host
allocation states, host status, the CPU and memory capacity times the cluster's
overprovisioning factors, the clusters' disable thresholds, host tags, storage
tags and pool free space, the avoid sets, and plugins' avoid hooks.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from ..errors import InsufficientCapacityError
from ..model import (
    AllocationState,
    Capacity,
    CapacityType,
    Cluster,
    Host,
    HostStatus,
    Pod,
    ResourceState,
    StoragePool,
)
from . import capacity

MiB = 1024 * 1024


@dataclasses.dataclass
class DeploymentRequest:
    zone_id: int
    cpu_count: int
    cpu_speed: int  # MHz per vCPU
    memory_mb: int
    root_size_bytes: int
    hypervisor: str | None = None  # None: any
    host_tag: str | None = None
    storage_tags: list[str] = dataclasses.field(default_factory=list)
    #: try this host first (a VM restarting where it ran before)
    preferred_host_id: int | None = None
    #: only this host (an admin's deployVirtualMachine hostid=)
    required_host_id: int | None = None
    avoid_hosts: set[int] = dataclasses.field(default_factory=set)
    avoid_clusters: set[int] = dataclasses.field(default_factory=set)
    avoid_pools: set[int] = dataclasses.field(default_factory=set)
    #: False when the root volume already sits on a pool (a restart)
    needs_pool: bool = True
    #: the pool the root volume already sits on; the host must reach it
    existing_pool_id: int | None = None

    @property
    def cpu_mhz(self) -> int:
        return self.cpu_count * self.cpu_speed

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * MiB


@dataclasses.dataclass
class Deployment:
    host: Host
    cluster: Cluster
    pool: StoragePool | None


@dataclasses.dataclass
class Thresholds:
    cluster_cpu: float = 0.85
    cluster_memory: float = 0.85
    pool: float = 0.85


def plan(session: Session, request: DeploymentRequest, thresholds: Thresholds, plugins=None) -> Deployment:
    reasons: list[str] = []
    clusters = _clusters(session, request, thresholds, reasons)
    hosts_by_cluster = _hosts(session, clusters, request, reasons, plugins)
    for cluster in clusters:
        for host in hosts_by_cluster.get(cluster.id, []):
            if not _reserve_host(session, host, cluster, request, reasons):
                continue
            pool = None
            if request.needs_pool:
                pool = _reserve_pool(session, cluster, request, thresholds, reasons)
                if pool is None:
                    _release_host(session, host, request)
                    break  # no pool for this cluster: the next host of it would not have one either
            return Deployment(host=host, cluster=cluster, pool=pool)
    detail = "; ".join(dict.fromkeys(reasons)) or "the zone has no enabled cluster, host or pool"
    raise InsufficientCapacityError(
        f"Unable to create a deployment for VM needing {request.cpu_count}x{request.cpu_speed} MHz, "
        f"{request.memory_mb} MiB: {detail}")


def suitable_hosts(session: Session, request: DeploymentRequest, thresholds: Thresholds, plugins=None) -> list[Host]:
    """The hosts ``plan`` would try for ``request``, in its order, reserving nothing: what fits
    now (findHostsForMigration). The pool is not looked at; give ``needs_pool=False``."""
    reasons: list[str] = []
    clusters = _clusters(session, request, thresholds, reasons)
    by_cluster = _hosts(session, clusters, request, reasons, plugins)
    return [host for cluster in clusters for host in by_cluster.get(cluster.id, [])]


def release(session: Session, host_id: int | None, cpu_mhz: int, memory_bytes: int) -> None:
    if host_id is None:
        return
    capacity.release(session, CapacityType.CPU, cpu_mhz, host_id=host_id)
    capacity.release(session, CapacityType.MEMORY, memory_bytes, host_id=host_id)


def _clusters(session: Session, request: DeploymentRequest, thresholds: Thresholds,
              reasons: list[str]) -> list[Cluster]:
    query = (select(Cluster).join(Pod, Pod.id == Cluster.pod_id)
             .where(Cluster.zone_id == request.zone_id, Cluster.removed.is_(None),
                    Cluster.allocation_state == AllocationState.ENABLED,
                    Pod.allocation_state == AllocationState.ENABLED)
             .order_by(Cluster.id))
    if request.hypervisor:
        query = query.where(func.lower(Cluster.hypervisor) == request.hypervisor.lower())
    if request.existing_pool_id:
        pool = session.get(StoragePool, request.existing_pool_id)
        if pool is not None and pool.scope == "CLUSTER":
            query = query.where(Cluster.id == pool.cluster_id)
    candidates = [c for c in session.scalars(query) if c.id not in request.avoid_clusters]
    allocated = _allocated_by_cluster(session, [c.id for c in candidates])
    clusters = []
    for cluster in candidates:
        (cpu_used, cpu_total), (mem_used, mem_total) = allocated.get(cluster.id, ((0, 0), (0, 0)))
        if _over(cpu_used, cpu_total, cluster.cpu_overprovisioning, request.cpu_mhz, thresholds.cluster_cpu):
            reasons.append(f"cluster {cluster.name} would exceed its CPU disable threshold")
        elif _over(mem_used, mem_total, cluster.memory_overprovisioning, request.memory_bytes,
                   thresholds.cluster_memory):
            reasons.append(f"cluster {cluster.name} would exceed its memory disable threshold")
        else:
            clusters.append(cluster)
    if request.preferred_host_id:
        preferred = session.get(Host, request.preferred_host_id)
        clusters.sort(key=lambda c: preferred is None or c.id != preferred.cluster_id)
    if not candidates:
        reasons.append(f"no enabled {request.hypervisor + ' ' if request.hypervisor else ''}cluster in the zone")
    return clusters


def _allocated_by_cluster(session: Session, cluster_ids: list[int]) -> dict[int, tuple]:
    """{cluster id: ((cpu used, cpu total), (memory used, memory total))} over its hosts, in one query."""
    rows = session.execute(
        select(Capacity.cluster_id, Capacity.capacity_type, func.sum(Capacity.used), func.sum(Capacity.total))
        .where(Capacity.cluster_id.in_(cluster_ids), Capacity.host_id.is_not(None),
               Capacity.capacity_type.in_([CapacityType.CPU, CapacityType.MEMORY]))
        .group_by(Capacity.cluster_id, Capacity.capacity_type)).all()
    found: dict[int, dict[int, tuple]] = {}
    for cluster_id, kind, used, total in rows:
        # SUM() comes back as Decimal on PostgreSQL and MariaDB
        found.setdefault(cluster_id, {})[kind] = (float(used or 0), float(total or 0))
    return {cid: (kinds.get(CapacityType.CPU, (0, 0)), kinds.get(CapacityType.MEMORY, (0, 0)))
            for cid, kinds in found.items()}


def _over(used: float, total: float, factor: float, extra: int, threshold: float) -> bool:
    return bool(total) and (used + extra) / (total * factor) > threshold


def _hosts(session: Session, clusters: list[Cluster], request: DeploymentRequest, reasons: list[str],
           plugins) -> dict[int, list[Host]]:
    """{cluster id: hosts that are Up, enabled, big enough and have room, in first-fit order}.
    The capacity test runs in SQL, in one query for the whole zone, so thousands of full
    hosts cost one query rather than one per host or cluster."""
    if not clusters:
        return {}
    cpu, memory = aliased(Capacity), aliased(Capacity)
    query = (
        select(Host)
        .join(Cluster, Cluster.id == Host.cluster_id)
        .join(cpu, (cpu.host_id == Host.id) & (cpu.capacity_type == CapacityType.CPU))
        .join(memory, (memory.host_id == Host.id) & (memory.capacity_type == CapacityType.MEMORY))
        .where(Host.cluster_id.in_([c.id for c in clusters]), Host.removed.is_(None), Host.host_type == "Routing",
               Host.status == HostStatus.UP, Host.resource_state == ResourceState.ENABLED,
               Host.cpu_speed >= request.cpu_speed, Host.cpu_cores >= request.cpu_count,  # cpu_cores: all cores
               cpu.used + request.cpu_mhz <= cpu.total * Cluster.cpu_overprovisioning,
               memory.used + request.memory_bytes <= memory.total * Cluster.memory_overprovisioning)
        .order_by(Host.id))
    if request.required_host_id:
        query = query.where(Host.id == request.required_host_id)
    if request.avoid_hosts:
        query = query.where(Host.id.not_in(request.avoid_hosts))
    usable = list(session.scalars(query))
    if request.host_tag:
        tagged = [h for h in usable if request.host_tag in h.tag_list]
        if usable and not tagged:
            reasons.append(f"no host with room has the host tag {request.host_tag!r}")
        usable = tagged
    elif not usable:
        reasons.append(_required_host_problem(session, request) or
                       f"no host is Up, enabled and has {request.cpu_count}x{request.cpu_speed} MHz and "
                       f"{request.memory_mb} MiB free")
    if plugins is not None and usable:
        avoided = plugins.planner_avoid_hosts(request, usable)
        usable = [h for h in usable if h.id not in avoided]
    if request.preferred_host_id:
        usable.sort(key=lambda h: h.id != request.preferred_host_id)
    by_cluster: dict[int, list[Host]] = {}
    for host in usable:
        by_cluster.setdefault(host.cluster_id, []).append(host)
    return by_cluster


def _required_host_problem(session: Session, request: DeploymentRequest) -> str | None:
    """Why the host the request names cannot be used when it is not Up and Enabled (the
    planner leaves such hosts out), so the 533 says so; None otherwise."""
    host = session.get(Host, request.required_host_id) if request.required_host_id else None
    if host is None or (host.status == HostStatus.UP and host.resource_state == ResourceState.ENABLED):
        return None
    return f"host {host.name} is not Up and Enabled (status {host.status}, resource state {host.resource_state})"


def _reserve_host(session: Session, host: Host, cluster: Cluster, request: DeploymentRequest,
                  reasons: list[str]) -> bool:
    _, cpu_total = capacity.used_and_total(session, CapacityType.CPU, host_id=host.id)
    _, mem_total = capacity.used_and_total(session, CapacityType.MEMORY, host_id=host.id)
    if not capacity.reserve(session, CapacityType.CPU, request.cpu_mhz, cpu_total * cluster.cpu_overprovisioning,
                            host_id=host.id):
        reasons.append(f"host {host.name} has not enough free CPU")
        return False
    if not capacity.reserve(session, CapacityType.MEMORY, request.memory_bytes,
                            mem_total * cluster.memory_overprovisioning, host_id=host.id):
        capacity.release(session, CapacityType.CPU, request.cpu_mhz, host_id=host.id)
        reasons.append(f"host {host.name} has not enough free memory")
        return False
    return True


def _release_host(session: Session, host: Host, request: DeploymentRequest) -> None:
    release(session, host.id, request.cpu_mhz, request.memory_bytes)


def _reserve_pool(session: Session, cluster: Cluster, request: DeploymentRequest, thresholds: Thresholds,
                  reasons: list[str]) -> StoragePool | None:
    pools = session.scalars(
        select(StoragePool).where(
            StoragePool.zone_id == cluster.zone_id, StoragePool.removed.is_(None), StoragePool.status == "Up",
            (StoragePool.scope == "ZONE") | (StoragePool.cluster_id == cluster.id))
        .order_by(StoragePool.id)).all()
    for pool in pools:
        if pool.id in request.avoid_pools:
            continue
        if not set(request.storage_tags) <= set(pool.tag_list):
            reasons.append(f"no pool has the storage tags {','.join(request.storage_tags)}")
            continue
        limit = pool.capacity_bytes * pool.overprovisioning * thresholds.pool
        if capacity.reserve(session, CapacityType.STORAGE_ALLOCATED, request.root_size_bytes, limit,
                            pool_id=pool.id):
            return pool
        reasons.append(f"pool {pool.name} has not enough free space")
    if not pools:
        reasons.append(f"cluster {cluster.name} reaches no primary storage pool that is Up")
    return None
