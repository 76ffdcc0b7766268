"""The composition of one Strato process: settings, database, plugins, jobs.

Everything else receives a ``Cloud`` rather than reaching for globals, so tests
can run several clouds (on SQLite, PostgreSQL and MariaDB) side by side.
"""

from __future__ import annotations

import logging

from .config import Settings
from .db import Database
from .globalconfig import CORE_KEYS, GlobalConfig
from .jobs import JobQueue
from .plugins import PluginManager

log = logging.getLogger(__name__)


class Cloud:
    def __init__(self, settings: Settings, *, plugins: PluginManager | None = None, migrate: bool = True):
        self.settings = settings
        self.db = Database(settings.database_url)
        if migrate:
            self.db.upgrade()
        self.plugins = plugins or PluginManager(settings).load()
        from .orchestration import usage

        usage.install(self)  # built-in plugins: usage events, identity and limit settings
        self.config = GlobalConfig(CORE_KEYS + self.plugins.configuration_keys())
        self.jobs = JobQueue(self, settings.broker, settings.worker_threads, settings.queue)
        self._background = None
        from .bootstrap import bootstrap

        with self.db.transaction() as session:
            bootstrap(session)
            self.config.seed(session)

    def start(self, *, worker: bool | None = None, periodic: bool = False) -> None:
        """Settle what a previous process left unfinished, then take jobs.

        ``worker`` defaults to True with the embedded broker (this process is the
        only worker) and False with Redis, where ``strato worker`` processes run jobs.
        ``periodic`` starts the host ping / power sync / expunge thread (a serving
        management server wants it; tests call ``background.one_pass`` instead).
        """
        from .orchestration.background import Background
        from .orchestration.recovery import recover

        self._warn_about_unserved_resources()
        recover(self)
        if worker if worker is not None else self.jobs.embedded:
            self.jobs.start_worker()
        if periodic and self._background is None:
            self._background = Background(self)
            self._background.start()

    def _warn_about_unserved_resources(self) -> None:
        """Hosts and pools whose plugin is not enabled in this process cannot be used: say so at start-up."""
        from sqlalchemy import select

        from .model import Host, StoragePool

        hypervisors = {d.hypervisor_type.lower() for d in self.plugins.hypervisors.values()}
        with self.db.transaction() as session:
            kinds = session.scalars(select(Host.hypervisor).distinct().where(Host.removed.is_(None))).all()
            providers = session.scalars(select(StoragePool.provider).distinct().where(
                StoragePool.removed.is_(None))).all()
        for kind in kinds:
            if kind.lower() not in hypervisors:
                log.warning("hosts of hypervisor %s exist but no enabled plugin drives them: VMs on them "
                            "cannot start, stop or be synchronised", kind)
        for provider in providers:
            if provider.lower() not in self.plugins.storage:
                log.warning("storage pools of provider %r exist but that storage plugin is not enabled: "
                            "volumes on them cannot be created or removed", provider)

    def has_zones(self) -> bool:
        from sqlalchemy import select

        from .model import Zone

        with self.db.transaction() as session:
            return session.scalar(select(Zone.id).where(Zone.removed.is_(None)).limit(1)) is not None

    def close(self) -> None:
        if self._background is not None:
            self._background.stop()
        self.jobs.stop_worker()
        self.plugins.close()
        self.db.dispose()
