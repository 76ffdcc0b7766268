"""The management server's periodic work: ping hosts, follow their power reports,
settle anything stuck, expunge VMs destroyed longer than ``expunge.delay`` ago, and take
the snapshots policies schedule (``snapshots.storage_pass``, which also settles volumes
and snapshots left stuck).

One daemon thread per serving process; each pass is a sequence of short
transactions, and a failing step is logged and retried on the next pass.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import select

from ..model import VirtualMachine, utcnow
from . import infrastructure, recovery, snapshots
from . import vm as vm_ops

log = logging.getLogger(__name__)


def one_pass(cloud) -> None:
    """Everything the periodic thread does, once (tests call it directly)."""
    for name, step in (("ping hosts", infrastructure.ping_hosts), ("power-state sync", recovery.sync_power_states),
                       ("settle stuck VMs", recovery.settle_transitional_vms), ("expunge", expunge_due),
                       ("storage", snapshots.storage_pass)):
        try:
            step(cloud)
        except Exception:  # keep the other steps and the next pass going; the log says what broke
            log.exception("periodic step %r failed", name)


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
