"""The management server's periodic work: settle jobs whose worker died (and what they
left: VMs, template downloads), ping hosts, follow their power reports, expunge VMs
destroyed longer than ``expunge.delay`` ago, and the storage steps (``snapshots.STEPS``:
scheduled snapshots, volumes and snapshots left stuck, pools' copies of deleted templates).

One daemon thread per serving process; each pass is a sequence of short
transactions, and a failing step is logged and retried on the next pass.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import select

from ..model import VirtualMachine, utcnow
from . import infrastructure, recovery, snapshots, usage, vm_snapshots
from . import vm as vm_ops

log = logging.getLogger(__name__)


def one_pass(cloud) -> None:
    """Everything the periodic thread does, once (tests call it directly)."""
    # dead jobs first: a VM whose job died is "busy" for the steps after until its job is settled
    for name, step in (("settle dead jobs", _settle_dead_jobs), ("ping hosts", infrastructure.ping_hosts),
                       ("power-state sync", recovery.sync_power_states),
                       ("settle stuck VMs", recovery.settle_transitional_vms),
                       ("settle template downloads", recovery.settle_template_downloads),
                       ("settle VM snapshots", vm_snapshots.settle_interrupted), ("expunge", expunge_due),
                       *snapshots.STEPS, *usage.STEPS):
        try:
            step(cloud)
        except Exception:  # keep the other steps and the next pass going; the log says what broke
            log.exception("periodic step %r failed", name)


def _settle_dead_jobs(cloud) -> list[str]:
    return cloud.jobs.recover(startup=False)


def expunge_due(cloud) -> list[str]:
    """Expunge every VM destroyed more than ``expunge.delay`` seconds ago."""
    with cloud.db.transaction() as session:
        cutoff = utcnow() - dt.timedelta(seconds=cloud.config.get(session, "expunge.delay"))
        due = list(session.scalars(select(VirtualMachine.uuid).where(
            VirtualMachine.state == "Destroyed", VirtualMachine.removed.is_(None),
            VirtualMachine.updated <= cutoff)))
    for vm_uuid in due:
        vm_ops.expunge_vm(cloud, vm_uuid)
    return due


class Background:
    def __init__(self, cloud):
        self.cloud = cloud
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="strato-periodic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while True:
            with self.cloud.db.transaction() as session:
                interval = self.cloud.config.get(session, "ping.interval")
            if self._stop.wait(max(interval, 1)):
                return
            one_pass(self.cloud)
