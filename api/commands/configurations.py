"""Global settings: listConfigurations, updateConfiguration (through ``cloud.config``).

Besides global values, the overprovisioning factors can be read and set per
resource, as in CloudStack: ``cpu.overprovisioning.factor`` and
``mem.overprovisioning.factor`` with ``clusterid`` (the cluster's overcommit
ratios), ``storage.overprovisioning.factor`` with ``storageid`` (the pool's
factor). No setting is kept per zone, account or domain yet; asking for one is 431.
"""

from __future__ import annotations

from sqlalchemy import func, select

from api.views.operations import CONFIGURATION_FIELDS, configuration_view
from core.commands import ROOT_ONLY, P, api_command
from core.model import Cluster, Configuration, StoragePool

from .zones import invalid

#: setting name -> column of the resource that keeps its own value
CLUSTER_SCOPED = {"cpu.overprovisioning.factor": "cpu_overprovisioning",
                  "mem.overprovisioning.factor": "memory_overprovisioning"}
POOL_SCOPED = {"storage.overprovisioning.factor": "overprovisioning"}

_UNSCOPED = {"zoneid": "zone", "accountid": "account", "domainid": "domain"}

_SCOPE_PARAMS = {
    "clusterid": P.uuid("the cluster whose own values to show or set"),
    "storageid": P.uuid("the primary storage pool whose own values to show or set"),
    "zoneid": P.uuid("not supported: no setting is kept per zone"),
    "accountid": P.uuid("not supported: no setting is kept per account"),
    "domainid": P.uuid("not supported: no setting is kept per domain"),
}


def _scope(ctx, p: dict):
    """(scope name, resource row, {setting: column}) of the request; global when none is given."""
    for param, what in _UNSCOPED.items():
        if param in p:
            raise invalid(ctx, param, f"no setting is kept per {what} in Strato; use clusterid, storageid or none")
    if "clusterid" in p and "storageid" in p:
        raise invalid(ctx, "storageid", "give clusterid or storageid, not both")
    if "clusterid" in p:
        return "cluster", ctx.get(Cluster, p["clusterid"], "clusterid"), CLUSTER_SCOPED
    if "storageid" in p:
        return "storagepool", ctx.get(StoragePool, p["storageid"], "storageid"), POOL_SCOPED
    return "global", None, None


def _view(row: Configuration, scope: str, resource, columns) -> dict:
    if scope == "global":
        return configuration_view(row)
    return configuration_view(row, value=str(getattr(resource, columns[row.name])), scope=scope,
                              scope_uuid=resource.uuid)


@api_command("listConfigurations", response="configuration", is_list=True, roles=ROOT_ONLY,
             response_fields=CONFIGURATION_FIELDS, params={
                 "name": P.string("(part of) the name of the settings"),
                 "category": P.string("the category of the settings, e.g. Advanced"),
                 **_SCOPE_PARAMS,
             })
def list_configurations(ctx, p):
    """Lists settings, with a cluster's or pool's own values when clusterid or storageid is given."""
    scope, resource, columns = _scope(ctx, p)
    query = select(Configuration)
    if columns is not None:
        query = query.where(Configuration.name.in_(list(columns)))
    if "name" in p:
        query = query.where(Configuration.name.contains(p["name"], autoescape=True))
    if "category" in p:
        query = query.where(func.lower(Configuration.category) == p["category"].strip().lower())
    total, rows = ctx.page(query, name_column=Configuration.name, order_by=Configuration.name)
    return total, [_view(row, scope, resource, columns) for row in rows]


@api_command("updateConfiguration", response="configuration", roles=ROOT_ONLY,
             response_fields=CONFIGURATION_FIELDS, params={
                 "name": P.string("the name of the setting", required=True),
                 "value": P.text("the new value", required=True, max_length=4096),
                 **_SCOPE_PARAMS,
             })
def update_configuration(ctx, p):
    """Changes a setting globally, or for one cluster or pool."""
    scope, resource, columns = _scope(ctx, p)
    name, value = p["name"].strip(), p["value"].strip()
    if scope == "global":
        row = ctx.cloud.config.set(ctx.session, name, value)
        shown = "*****" if "password" in name.lower() else value  # CloudStack's rule: no secret in events
        ctx.event("CONFIGURATION.VALUE.EDIT", f"Set {name} to {shown}")
        return configuration_view(row)
    if name not in columns:
        raise invalid(ctx, "name", f"{name} cannot be set per {scope}; these can: {', '.join(columns)}")
    number = ctx.cloud.config.keys[name].parse(value)
    if number <= 0:
        raise invalid(ctx, "value", f"{name} must be greater than 0")
    setattr(resource, columns[name], float(number))
    ctx.event("CONFIGURATION.VALUE.EDIT", f"Set {name} to {value} for {scope} {resource.name}", resource)
    return _view(ctx.session.get(Configuration, name), scope, resource, columns)
