"""Virtual routers (admins): listRouters, stopRouter, startRouter, rebootRouter.

A router is its network's namespace on the management host; stopping it stops DHCP, DNS,
NAT and the rest for the network (its guests stay linked to each other on the bridge);
starting it builds it again from the database.
"""

from __future__ import annotations

from sqlalchemy import select

from api.views.network import ROUTER_FIELDS, router_view
from core.commands import ADMINS, ROOT_ONLY, P, api_command
from core.errors import InvalidParameterError
from core.jobs import job_handler
from core.model import Network, Router, RouterState, Zone
from core.orchestration import networking

from .zones import choice


def _router(ctx, p) -> Router:
    return ctx.get(Router, p["id"], "id")


def _render(ctx, router_uuid: str) -> dict:
    with ctx.transaction() as session:
        router = session.scalar(select(Router).where(Router.uuid == router_uuid))
        return {"router": router_view(session, router)}


@api_command("listRouters", response="router", is_list=True, roles=ADMINS, response_fields=ROUTER_FIELDS,
             description="List routers.", params={
                 "id": P.uuid("the ID of the disk router"), "name": P.string("the name of the router"),
                 "state": P.string("the state of the router"), "zoneid": P.uuid("the Zone ID of the router"),
                 "networkid": P.uuid("list by network id"),
                 "podid": P.uuid("the Pod ID of the router"), "hostid": P.uuid("the host ID of the router"),
                 "vpcid": P.uuid("List networks by VPC"), "forvpc": P.boolean("if true is passed for this "
                                                                              "parameter, list only VPC routers"),
                 "version": P.string("list virtual router elements by version"),
                 "healthchecksfailed": P.boolean("if this parameter is passed, list only routers by health check "
                                                 "results"),
             })
def list_routers(ctx, p):
    query = select(Router).where(Router.removed.is_(None), ctx.owner_filter(Router, by_id="id" in p)
                                 if not ctx.caller.is_root_admin else True)
    if "id" in p:
        query = query.where(Router.uuid == p["id"])
    if "name" in p:
        query = query.where(Router.name == p["name"])
    if "state" in p:
        query = query.where(Router.state == choice(ctx, "state", p["state"], (
            RouterState.STARTING, RouterState.RUNNING, RouterState.STOPPING, RouterState.STOPPED, RouterState.ERROR)))
    if "zoneid" in p:
        query = query.where(Router.zone_id == ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False).id)
    if "networkid" in p:
        query = query.where(Router.network_id == ctx.get(Network, p["networkid"], "networkid", check_owner=False).id)
    if p.get("forvpc") or "vpcid" in p or "podid" in p or "hostid" in p:
        query = query.where(Router.id.is_(None))  # routers run on the management host, in no pod or VPC
    if "version" in p:
        query = query.where(Router.version == p["version"])
    if "healthchecksfailed" in p:
        query = query.where((Router.state == RouterState.ERROR) == p["healthchecksfailed"])
    total, rows = ctx.page(query, name_column=Router.name, order_by=Router.id)
    return total, [router_view(ctx.session, r) for r in rows]


@api_command("stopRouter", response="router", is_async=True, roles=ROOT_ONLY, response_fields=ROUTER_FIELDS,
             description="Stops a router.", params={"id": P.uuid("the ID of the router", required=True),
                                                    "forced": P.boolean("Force stop the VM")})
def stop_router(ctx, p):
    router = _router(ctx, p)
    if router.state == RouterState.STOPPED:
        raise InvalidParameterError(f"router {router.name} is already Stopped")
    return ctx.start_job("router.stop", {"router": router.uuid}, instance=router, instance_type="DomainRouter")


def _network_uuid(ctx, router_uuid: str) -> str:
    with ctx.transaction() as session:
        router = session.scalar(select(Router).where(Router.uuid == router_uuid))
        return session.get(Network, router.network_id).uuid


@job_handler("router.stop")
def stop_router_job(ctx):
    networking.stop_router(ctx.cloud, _network_uuid(ctx, ctx.params["router"]), caller=ctx.caller)
    return _render(ctx, ctx.params["router"])


@api_command("startRouter", response="router", is_async=True, roles=ROOT_ONLY, response_fields=ROUTER_FIELDS,
             description="Starts a router.", params={"id": P.uuid("the ID of the router", required=True)})
def start_router(ctx, p):
    router = _router(ctx, p)
    if router.state == RouterState.RUNNING:
        raise InvalidParameterError(f"router {router.name} is already Running")
    return ctx.start_job("router.start", {"router": router.uuid}, instance=router, instance_type="DomainRouter")


@job_handler("router.start")
def start_router_job(ctx):
    networking.implement(ctx.cloud, _network_uuid(ctx, ctx.params["router"]), caller=ctx.caller)
    return _render(ctx, ctx.params["router"])


@api_command("rebootRouter", response="router", is_async=True, roles=ROOT_ONLY, response_fields=ROUTER_FIELDS,
             description="Reboots a router.", params={"id": P.uuid("the ID of the router", required=True),
                                                     "forced": P.boolean("Force reboot the router")})
def reboot_router(ctx, p):
    router = _router(ctx, p)
    if router.state != RouterState.RUNNING:
        raise InvalidParameterError(f"router {router.name} is {router.state}; only a Running router can be rebooted")
    return ctx.start_job("router.reboot", {"router": router.uuid}, instance=router, instance_type="DomainRouter")


@job_handler("router.reboot")
def reboot_router_job(ctx):
    network_uuid = _network_uuid(ctx, ctx.params["router"])
    networking.stop_router(ctx.cloud, network_uuid, caller=ctx.caller)
    networking.implement(ctx.cloud, network_uuid, caller=ctx.caller)
    return _render(ctx, ctx.params["router"])
