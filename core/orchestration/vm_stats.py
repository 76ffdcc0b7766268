"""Per-VM statistics, asked of the hypervisor drivers when a caller wants them.

Lists ask for them only on request (``listVirtualMachines details=stats``,
``listVirtualMachinesMetrics``): a driver call per VM is too slow for every list. The
calls for one list run side by side (``MAX_PARALLEL`` at once), because a driver may
sample over a while (LibvirtDriver measures CPU over a second on its first call per VM).
"""

from __future__ import annotations

import concurrent.futures
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..drivers import VmStats
from ..errors import StratoError, UnsupportedError
from ..model import VirtualMachine
from .refs import host_ref, vm_spec

log = logging.getLogger(__name__)

MAX_PARALLEL = 8


def running_vm_stats(cloud, session: Session, vm_uuids: list[str]) -> dict[str, VmStats]:
    """{vm uuid: stats} for the Running VMs among ``vm_uuids`` whose hypervisor reports stats.

    A VM whose host cannot answer now (a ``StratoError``: host unreachable, VM gone in
    between) is left out and logged, so one bad host does not fail the whole list; any
    other error goes up.
    """
    if not vm_uuids:
        return {}
    vms = session.scalars(select(VirtualMachine).where(
        VirtualMachine.uuid.in_(vm_uuids), VirtualMachine.state == "Running", VirtualMachine.host_id.is_not(None))
        .options(selectinload(VirtualMachine.host), selectinload(VirtualMachine.nics),
                 selectinload(VirtualMachine.volumes))).all()
    work = []
    for vm in vms:
        try:
            driver = cloud.plugins.hypervisor(vm.host.hypervisor)
        except UnsupportedError:
            continue  # its plugin is no longer enabled: nothing can be asked
        if driver.capabilities.get("stats"):
            work.append((vm.uuid, driver, host_ref(vm.host), vm_spec(session, vm)))
    if not work:
        return {}
    stats: dict[str, VmStats] = {}
    with concurrent.futures.ThreadPoolExecutor(min(MAX_PARALLEL, len(work)), "strato-vm-stats") as pool:
        futures = {pool.submit(driver.vm_stats, ref, spec): (vm_uuid, ref) for vm_uuid, driver, ref, spec in work}
        for future in concurrent.futures.as_completed(futures):
            vm_uuid, ref = futures[future]
            try:
                stats[vm_uuid] = future.result()
            except StratoError as exc:
                log.warning("no stats for VM %s from host %s: %s", vm_uuid, ref.name, exc.message)
    return stats

