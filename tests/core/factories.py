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


def add_image_store(session, zone, name="store0"):
    from core.model import ImageStore

    store = ImageStore(name=name, zone_id=zone.id, url=f"sim://{name}", provider="simulator")
    session.add(store)
    session.flush()
    return store


def add_template(session, store, name="tiny", *, public=True, hypervisor="Simulator", account_name="admin"):
    """A template already downloaded into ``store`` (what registerTemplate ends with)."""
    from sqlalchemy import select

    from core.model import Account, DownloadState, OsType, Template, TemplateStoreRef

    owner = session.scalar(select(Account).where(Account.name == account_name))
    os_type = session.scalar(select(OsType).where(OsType.description == "Other Linux (64-bit)"))
    template = Template(name=name, display_text=name, format="QCOW2", hypervisor=hypervisor, url="sim://t",
                        os_type_id=os_type.id, account_id=owner.id, domain_id=owner.domain_id, is_public=public,
                        is_featured=public, size=2 * GiB)
    session.add(template)
    session.flush()
    session.add(TemplateStoreRef(template_id=template.id, store_id=store.id,
                                 download_state=DownloadState.DOWNLOADED, download_percent=100,
                                 install_path=f"template/{template.uuid}.qcow2", size=2 * GiB))
    session.flush()
    return template


def simulated_zone(cloud, *, hosts=2, cores=4, mhz=2000, memory_mib=8192, pool_gib=1000):
    """A zone with one cluster of simulated hosts, a pool, a store and a ready public template.
    Returns a dict of public ids."""
    with cloud.db.transaction() as session:
        zone, pod, cluster = zone_with_cluster(session)
        host_rows = [add_host(session, cluster, f"h{i}", cores=cores, mhz=mhz, memory_mib=memory_mib)
                     for i in range(hosts)]
        pool = add_pool(session, cluster, "p0", capacity_gib=pool_gib)
        store = add_image_store(session, zone)
        template = add_template(session, store)
        return {"zone": zone.uuid, "pod": pod.uuid, "cluster": cluster.uuid, "pool": pool.uuid,
                "hosts": [h.uuid for h in host_rows], "host_keys": [h.details["sim_key"] for h in host_rows],
                "template": template.uuid}
