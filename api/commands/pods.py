"""Pods: createPod, listPods, updatePod, deletePod.

A pod's IP range must lie in the subnet its gateway and netmask describe, must not
contain the gateway, and must not overlap another pod's range in the zone (guests
of a basic zone take their addresses from it).
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import func, select

from api.views.infrastructure import POD_FIELDS, pod_view
from core.commands import ROOT_ONLY, SUCCESS, P, api_command
from core.errors import ResourceInUseError
from core.model import Cluster, Host, Pod, StoragePool, Zone, utcnow

from .zones import allocation_state, invalid, ipv4

_RANGE_PARAMS = {
    "gateway": P.string("the gateway of the pod", max_length=64),
    "netmask": P.string("the netmask of the pod", max_length=64),
    "startip": P.string("the first IP address of the pod's range", max_length=64),
    "endip": P.string("the last IP address of the pod's range (default: startip)", max_length=64),
    "allocationstate": P.string("Enabled or Disabled: whether the pod takes new resources"),
}


@api_command("createPod", response="pod", roles=ROOT_ONLY, response_fields=POD_FIELDS, params={
    "name": P.string("the name of the pod", required=True),
    "zoneid": P.uuid("the zone of the pod", required=True),
    **_RANGE_PARAMS,
    "gateway": P.string("the gateway of the pod", required=True, max_length=64),
    "netmask": P.string("the netmask of the pod", required=True, max_length=64),
    "startip": P.string("the first IP address of the pod's range", required=True, max_length=64),
})
def create_pod(ctx, p):
    """Creates a pod in a zone."""
    zone = ctx.get(Zone, p["zoneid"], "zoneid")
    name = p["name"].strip()
    _check_name(ctx, zone, name)
    pod = Pod(name=name, zone_id=zone.id)
    _apply(ctx, pod, zone, p)
    ctx.session.add(pod)
    ctx.session.flush()
    ctx.event("POD.CREATE", f"Created pod {pod.name} in zone {zone.name}", pod)
    return pod_view(ctx.session, pod)


@api_command("listPods", response="pod", is_list=True, roles=ROOT_ONLY, response_fields=POD_FIELDS, params={
    "id": P.uuid("the ID of the pod"),
    "name": P.string("the name of the pod"),
    "zoneid": P.uuid("the zone of the pods"),
    "allocationstate": P.string("Enabled or Disabled"),
})
def list_pods(ctx, p):
    """Lists pods."""
    query = select(Pod).where(Pod.removed.is_(None))
    if "id" in p:
        query = query.where(Pod.uuid == p["id"])
    if "name" in p:
        query = query.where(Pod.name == p["name"])
    if "zoneid" in p:
        query = query.where(Pod.zone_id == ctx.get(Zone, p["zoneid"], "zoneid").id)
    if "allocationstate" in p:
        query = query.where(Pod.allocation_state == allocation_state(ctx, p["allocationstate"]))
    total, pods = ctx.page(query, name_column=Pod.name, order_by=Pod.id)
    return total, [pod_view(ctx.session, pod) for pod in pods]


@api_command("updatePod", response="pod", roles=ROOT_ONLY, response_fields=POD_FIELDS, params={
    "id": P.uuid("the ID of the pod", required=True),
    "name": P.string("the new name of the pod"),
    **_RANGE_PARAMS,
})
def update_pod(ctx, p):
    """Updates a pod's name, IP range or allocation state."""
    pod = ctx.get(Pod, p["id"], "id")
    if "name" in p and p["name"].strip() != pod.name:
        _check_name(ctx, pod.zone, p["name"].strip())
        pod.name = p["name"].strip()
    _apply(ctx, pod, pod.zone, p)
    ctx.event("POD.EDIT", f"Updated pod {pod.name}", pod)
    return pod_view(ctx.session, pod)


@api_command("deletePod", response="success", roles=ROOT_ONLY, params={
    "id": P.uuid("the ID of the pod", required=True),
})
def delete_pod(ctx, p):
    """Deletes a pod without clusters, hosts or pools (536 otherwise)."""
    pod = ctx.get(Pod, p["id"], "id")
    for what, model in (("clusters", Cluster), ("hosts", Host), ("primary storage pools", StoragePool)):
        if ctx.session.scalar(select(func.count(model.id)).where(model.pod_id == pod.id, model.removed.is_(None))):
            raise ResourceInUseError(f"The pod {pod.name} is not deletable because there are {what} in it")
    pod.removed = utcnow()
    ctx.event("POD.DELETE", f"Deleted pod {pod.name}", pod)
    return SUCCESS


def _check_name(ctx, zone: Zone, name: str) -> None:
    if ctx.session.scalar(select(Pod.id).where(Pod.zone_id == zone.id, Pod.name == name, Pod.removed.is_(None))):
        raise invalid(ctx, "name", f"A pod with name {name} already exists in zone {zone.name}")


def _apply(ctx, pod: Pod, zone: Zone, p: dict) -> None:
    """Set the range fields given in ``p`` on ``pod``, then check the whole range."""
    gateway = str(ipv4(ctx, "gateway", p["gateway"])) if "gateway" in p else pod.gateway
    netmask = p["netmask"].strip() if "netmask" in p else pod.netmask
    start = ipv4(ctx, "startip", p["startip"]) if "startip" in p else ipaddress.IPv4Address(pod.start_ip)
    if "endip" in p:
        end = ipv4(ctx, "endip", p["endip"])
    else:  # keep a one-address range one address when only its start moves
        end = ipaddress.IPv4Address(pod.end_ip) if pod.end_ip and "startip" not in p else start
    try:
        subnet = ipaddress.IPv4Network(f"{gateway}/{netmask}", strict=False)
    except ValueError:
        raise invalid(ctx, "netmask", f"'{netmask}' is not a valid IPv4 netmask") from None
    if start not in subnet:
        raise invalid(ctx, "startip", f"{start} is not in the pod's subnet {subnet}")
    if end not in subnet:
        raise invalid(ctx, "endip", f"{end} is not in the pod's subnet {subnet}")
    if end < start:
        raise invalid(ctx, "endip", f"{end} comes before the start of the range {start}")
    if start <= ipaddress.IPv4Address(gateway) <= end:
        raise invalid(ctx, "gateway", f"the gateway {gateway} lies inside the range {start}-{end}")
    others = select(Pod).where(Pod.zone_id == zone.id, Pod.removed.is_(None))
    if pod.id is not None:
        others = others.where(Pod.id != pod.id)
    for other in ctx.session.scalars(others):
        other_start = ipaddress.IPv4Address(other.start_ip)
        other_end = ipaddress.IPv4Address(other.end_ip or other.start_ip)
        if start <= other_end and other_start <= end:
            raise invalid(ctx, "startip", f"the range {start}-{end} overlaps the range of pod {other.name}")
    pod.gateway, pod.netmask, pod.start_ip, pod.end_ip = gateway, str(subnet.netmask), str(start), str(end)
    if "allocationstate" in p:
        pod.allocation_state = allocation_state(ctx, p["allocationstate"])
