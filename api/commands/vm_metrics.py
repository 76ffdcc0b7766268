"""listVirtualMachinesMetrics (CloudStack's metrics plugin): listVirtualMachines with every
Running VM's statistics and the metrics view's summaries (VmMetricsResponse)."""

from __future__ import annotations

from api.views.compute import VM_FIELDS
from api.views.vm_stats import METRICS_FIELDS, STATS_FIELDS, metrics_fields
from core.commands import ALL_ROLES, LIST_PARAMS, api_command

from .vms import add_stats, list_virtual_machines


@api_command("listVirtualMachinesMetrics", response="virtualmachine", is_list=True, roles=ALL_ROLES, since="4.9.3",
             response_fields={**VM_FIELDS, **STATS_FIELDS, **METRICS_FIELDS},
             description="Lists VM metrics",
             params={name: field for name, field in list_virtual_machines.params.items() if name not in LIST_PARAMS})
def list_virtual_machines_metrics(ctx, p):
    # every Running VM's stats, whatever ``details`` says (it is checked all the same)
    total, views = list_virtual_machines.handler(ctx, {**p, "details": [d for d in p.get("details", [])
                                                                        if d.lower() not in ("stats", "all")]})
    add_stats(ctx, views)
    for view in views:
        view.update(metrics_fields(view))
    return total, views
