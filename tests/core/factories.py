"""Rows for core tests, written straight through the ORM (the API tests use the commands)."""

from __future__ import annotations

from core.model import Cluster, Host, Pod, StoragePool, Zone
from core.orchestration import capacity

GiB = 1024**3
MiB = 1024**2


def zone_with_cluster(session, *, name="z1", cpu_factor=1.0, mem_factor=1.0):
    zone = Zone(name=name, network_type="Basic")
    session.add(zone)
    session.flush()
    pod = Pod(name=f"{name}-pod", zone_id=zone.id, gateway="10.0.0.1", netmask="255.255.255.0",
              start_ip="10.0.0.10", end_ip="10.0.0.200")
    session.add(pod)
    session.flush()
    cluster = add_cluster(session, zone, pod, f"{name}-c0", cpu_factor=cpu_factor, mem_factor=mem_factor)
    return zone, pod, cluster


def add_cluster(session, zone, pod, name, *, hypervisor="Simulator", cpu_factor=1.0, mem_factor=1.0):
    cluster = Cluster(name=name, pod_id=pod.id, zone_id=zone.id, hypervisor=hypervisor,
                      cpu_overprovisioning=cpu_factor, memory_overprovisioning=mem_factor)
    session.add(cluster)
    session.flush()
    return cluster


def add_host(session, cluster, name, *, cores=4, mhz=2000, memory_mib=8192, tags=None, status="Up",
             resource_state="Enabled"):
    host = Host(name=name, zone_id=cluster.zone_id, pod_id=cluster.pod_id, cluster_id=cluster.id,
                hypervisor=cluster.hypervisor, url=f"http://sim/{cluster.name}/{name}", cpu_cores=cores,
                cpu_speed=mhz, memory=memory_mib * MiB, host_tags=tags, status=status,
                resource_state=resource_state, details={"sim_key": f"sim/{cluster.name}/{name}"})
    session.add(host)
    session.flush()
    capacity.create_host_capacity(session, host)
    session.flush()
    return host


def add_pool(session, cluster, name, *, capacity_gib=1000, tags=None, scope="CLUSTER", status="Up"):
    pool = StoragePool(name=name, zone_id=cluster.zone_id, pod_id=cluster.pod_id,
                       cluster_id=cluster.id if scope == "CLUSTER" else None, scope=scope, url=f"sim://{name}",
                       provider="simulator", capacity_bytes=capacity_gib * GiB, tags=tags, status=status,
                       overprovisioning=1.0)
    session.add(pool)
    session.flush()
    capacity.create_pool_capacity(session, pool)
    session.flush()
    return pool
