"""Views of the physical side: zones, pods, clusters, hosts, primary storage pools and
image stores (CloudStack's ZoneResponse, PodResponse, ClusterResponse, HostResponse,
StoragePoolResponse, ImageStoreResponse).

Fields CloudStack fills from things Strato does not keep (zone tokens, host statistics
such as ``memoryused`` and ``cpuused``, IOPS) are left out rather than invented.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
from importlib import metadata
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.model import Capacity, CapacityType, Cluster, Host, ImageStore, Pod, StoragePool, Zone

from .common import compact, cs_date


def cs_decimal(value: float) -> str:
    """A number as Java's DecimalFormat("#.##") prints it (what CloudStack uses): at most
    two decimals, rounded half-even, no trailing zeros."""
    text = str(decimal.Decimal(repr(float(value))).quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_EVEN))
    return text.rstrip("0").rstrip(".") if "." in text else text


def cs_percent(part: float, whole: float) -> str:
    """CloudStack's allocated-percentage strings, e.g. "12.5%"."""
    return cs_decimal(part / whole * 100 if whole else 0) + "%"


@functools.cache
def _version() -> str | None:
    try:
        return metadata.version("strato")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return None


# -- zones ------------------------------------------------------------------------

ZONE_FIELDS = {
    "id": "Zone id", "name": "Zone name", "description": "Zone description",
    "dns1": "the first DNS for the Zone", "dns2": "the second DNS for the Zone",
    "internaldns1": "the first internal DNS for the Zone", "internaldns2": "the second internal DNS for the Zone",
    "guestcidraddress": "the guest CIDR address for the Zone",
    "domain": "Network domain name for the networks in the zone",
    "networktype": "the network type of the zone; can be Basic or Advanced",
    "securitygroupsenabled": "true if security groups support is enabled, false otherwise",
    "allocationstate": "the allocation state of the zone",
    "localstorageenabled": "true if local storage offering enabled",
    "type": "the type of the zone - core or edge", "tags": "the list of resource tags associated with zone",
}


def zone_view(session: Session, zone: Zone, *, admin: bool = True) -> dict:
    """Admins see the zone's DNS servers and guest CIDR; users do not (as CloudStack)."""
    data = {
        "id": zone.uuid, "name": zone.name, "description": zone.description, "networktype": zone.network_type,
        "securitygroupsenabled": zone.security_groups_enabled, "allocationstate": zone.allocation_state,
        "localstorageenabled": zone.local_storage_enabled, "type": "Core", "tags": [],
    }
    if admin:
        data.update(dns1=zone.dns1, dns2=zone.dns2, internaldns1=zone.internal_dns1, internaldns2=zone.internal_dns2,
                    guestcidraddress=zone.guest_cidr, domain=zone.domain_name)
    return compact(data)


# -- pods -------------------------------------------------------------------------

POD_FIELDS = {
    "id": "the ID of the Pod", "name": "the name of the Pod", "zoneid": "the Zone ID of the Pod",
    "zonename": "the Zone name of the Pod", "gateway": "the gateway of the Pod", "netmask": "the netmask of the Pod",
    "startip": "the starting IPs of the Pod's ranges", "endip": "the ending IPs of the Pod's ranges",
    "ipranges": "the IP ranges of the Pod", "allocationstate": "the allocation state of the Pod",
}


def pod_view(session: Session, pod: Pod) -> dict:
    end_ip = pod.end_ip or pod.start_ip
    return compact({
        "id": pod.uuid, "name": pod.name, "zoneid": pod.zone.uuid, "zonename": pod.zone.name,
        "gateway": pod.gateway, "netmask": pod.netmask, "startip": [pod.start_ip], "endip": [end_ip],
        "ipranges": [{"startip": pod.start_ip, "endip": end_ip, "forsystemvms": "0"}],
        "allocationstate": pod.allocation_state,
    })


# -- clusters ---------------------------------------------------------------------

CLUSTER_FIELDS = {
    "id": "the cluster ID", "name": "the cluster name", "podid": "the Pod ID of the cluster",
    "podname": "the Pod name of the cluster", "zoneid": "the Zone ID of the cluster",
    "zonename": "the Zone name of the cluster", "hypervisortype": "the hypervisor type of the cluster",
    "clustertype": "the type of the cluster", "allocationstate": "the allocation state of the cluster",
    "managedstate": "whether this cluster is managed by Strato",
    "cpuovercommitratio": "the CPU overcommit ratio of the cluster",
    "memoryovercommitratio": "the memory overcommit ratio of the cluster",
}


def cluster_view(session: Session, cluster: Cluster) -> dict:
    return compact({
        "id": cluster.uuid, "name": cluster.name, "podid": cluster.pod.uuid, "podname": cluster.pod.name,
        "zoneid": cluster.zone.uuid, "zonename": cluster.zone.name, "hypervisortype": cluster.hypervisor,
        "clustertype": cluster.cluster_type, "allocationstate": cluster.allocation_state,
        "managedstate": cluster.managed_state, "cpuovercommitratio": str(cluster.cpu_overprovisioning),
        "memoryovercommitratio": str(cluster.memory_overprovisioning),
    })


# -- hosts ------------------------------------------------------------------------

HOST_FIELDS = {
    "id": "the ID of the host", "name": "the name of the host", "state": "the state of the host",
    "resourcestate": "the resource state of the host", "type": "the host type",
    "zoneid": "the Zone ID of the host", "zonename": "the Zone name of the host",
    "podid": "the Pod ID of the host", "podname": "the Pod name of the host",
    "clusterid": "the cluster ID of the host", "clustername": "the cluster name of the host",
    "clustertype": "the cluster type of the cluster that host belongs to",
    "hypervisor": "the host hypervisor", "hypervisorversion": "the hypervisor version",
    "version": "the host (agent) version", "cpusockets": "the number of CPU sockets on the host",
    "cpunumber": "the CPU number of the host", "cpuspeed": "the CPU speed of the host",
    "cpuallocated": "the amount of the host's CPU currently allocated",
    "cpuallocatedvalue": "the amount of the host's CPU currently allocated in MHz",
    "cpuallocatedpercentage": "the amount of the host's CPU currently allocated in percentage",
    "cpuallocatedwithoverprovisioning": "the host's CPU allocated, after applying the cluster's CPU overcommit ratio",
    "cpuwithoverprovisioning": "the host's CPU after applying the cluster's CPU overcommit ratio",
    "memorytotal": "the memory total of the host (after the cluster's memory overcommit ratio)",
    "memorywithoverprovisioning": "the host's memory after applying the cluster's memory overcommit ratio",
    "memoryallocated": "the amount of the host's memory currently allocated (bytes)",
    "memoryallocatedbytes": "the amount of the host's memory currently allocated in bytes",
    "memoryallocatedpercentage": "the amount of the host's memory currently allocated in percentage",
    "hosttags": "comma-separated list of tags for the host", "capabilities": "capabilities of the host",
    "lastpinged": "the date and time the host was last pinged", "created": "the date and time the host was created",
    "islocalstorageactive": "true if local storage is active", "ipaddress": "the IP address of the host",
}


def host_view(session: Session, host: Host) -> dict:
    """Allocation figures come from the host's capacity rows, as CloudStack's do."""
    cluster = host.cluster
    cpu_used, cpu_total = _capacity(session, CapacityType.CPU, host_id=host.id)
    mem_used, mem_total = _capacity(session, CapacityType.MEMORY, host_id=host.id)
    cpu_total = cpu_total or host.cpu_cores * host.cpu_speed
    mem_total = mem_total or host.memory
    cpu_over = cpu_total * cluster.cpu_overprovisioning
    mem_over = mem_total * cluster.memory_overprovisioning
    return compact({
        "id": host.uuid, "name": host.name, "state": host.status, "resourcestate": host.resource_state,
        "type": host.host_type, "zoneid": host.zone.uuid, "zonename": host.zone.name,
        "podid": host.pod.uuid, "podname": host.pod.name, "clusterid": cluster.uuid, "clustername": cluster.name,
        "clustertype": cluster.cluster_type, "hypervisor": host.hypervisor,
        "hypervisorversion": host.hypervisor_version, "version": _version(),
        "ipaddress": urlparse(host.url).hostname, "cpusockets": host.cpu_sockets, "cpunumber": host.cpu_cores,
        "cpuspeed": host.cpu_speed, "cpuallocated": cs_percent(cpu_used, cpu_over),
        "cpuallocatedvalue": cpu_used, "cpuallocatedpercentage": cs_percent(cpu_used, cpu_over),
        "cpuallocatedwithoverprovisioning": cs_percent(cpu_used, cpu_over),
        "cpuwithoverprovisioning": cs_decimal(cpu_over),
        "memorytotal": int(mem_over), "memorywithoverprovisioning": cs_decimal(mem_over),
        "memoryallocated": mem_used, "memoryallocatedbytes": mem_used,
        "memoryallocatedpercentage": cs_percent(mem_used, mem_over),
        "hosttags": host.host_tags, "capabilities": host.capabilities,
        "lastpinged": cs_date(dt.datetime.fromtimestamp(host.last_pinged, dt.timezone.utc).replace(tzinfo=None))
        if host.last_pinged else None,
        "created": cs_date(host.created), "islocalstorageactive": False,
    })


def _capacity(session: Session, kind: int, *, host_id=None, pool_id=None) -> tuple[int, int]:
    owner = Capacity.host_id == host_id if host_id is not None else Capacity.pool_id == pool_id
    row = session.scalar(select(Capacity).where(owner, Capacity.capacity_type == kind))
    return (row.used, row.total) if row else (0, 0)


# -- primary storage --------------------------------------------------------------

STORAGE_POOL_FIELDS = {
    "id": "the ID of the storage pool", "name": "the name of the storage pool",
    "zoneid": "the Zone ID of the storage pool", "zonename": "the Zone name of the storage pool",
    "podid": "the Pod ID of the storage pool", "podname": "the Pod name of the storage pool",
    "clusterid": "the ID of the cluster for the storage pool",
    "clustername": "the name of the cluster for the storage pool",
    "ipaddress": "the IP address of the storage pool", "path": "the storage pool path",
    "created": "the date and time the storage pool was created", "type": "the storage pool type",
    "disksizetotal": "the total disk size of the storage pool",
    "disksizeallocated": "the pool's currently allocated disk size",
    "disksizeused": "the pool's currently used disk size", "tags": "the tags for the storage pool",
    "istagarule": "whether the tags are a rule (always false)", "state": "the state of the storage pool",
    "scope": "the scope of the storage pool", "overprovisionfactor": "the overprovisionfactor for the storage pool",
    "hypervisor": "the hypervisor type of the storage pool", "provider": "Storage provider for this pool",
}


def storage_pool_view(session: Session, pool: StoragePool) -> dict:
    allocated, _ = _capacity(session, CapacityType.STORAGE_ALLOCATED, pool_id=pool.id)
    parsed = urlparse(pool.url)
    return compact({
        "id": pool.uuid, "name": pool.name, "zoneid": pool.zone.uuid, "zonename": pool.zone.name,
        "podid": pool.pod.uuid if pool.pod else None, "podname": pool.pod.name if pool.pod else None,
        "clusterid": pool.cluster.uuid if pool.cluster else None,
        "clustername": pool.cluster.name if pool.cluster else None,
        "ipaddress": parsed.hostname, "path": parsed.path or None, "created": cs_date(pool.created),
        "type": pool.pool_type, "disksizetotal": pool.capacity_bytes, "disksizeallocated": allocated,
        "disksizeused": pool.used_bytes, "tags": pool.tags, "istagarule": False, "state": pool.status,
        "scope": pool.scope, "overprovisionfactor": str(pool.overprovisioning), "hypervisor": pool.hypervisor,
        "provider": pool.provider,
    })


# -- image stores -----------------------------------------------------------------

IMAGE_STORE_FIELDS = {
    "id": "the ID of the image store", "name": "the name of the image store", "url": "the url of the image store",
    "protocol": "the protocol of the image store", "providername": "the provider name of the image store",
    "scope": "the scope of the image store", "zoneid": "the Zone ID of the image store",
    "zonename": "the Zone name of the image store", "readonly": "defines if store is read-only",
    "disksizetotal": "the total disk size of the host", "disksizeused": "the host's currently used disk size",
}


def image_store_view(session: Session, store: ImageStore) -> dict:
    return compact({
        "id": store.uuid, "name": store.name, "url": store.url, "protocol": store.protocol,
        "providername": store.provider, "scope": "ZONE" if store.zone_id else "REGION",
        "zoneid": store.zone.uuid if store.zone else None, "zonename": store.zone.name if store.zone else None,
        "readonly": store.read_only, "disksizetotal": store.capacity_bytes, "disksizeused": store.used_bytes,
    })
