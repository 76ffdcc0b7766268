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

        recover(self)
        if worker if worker is not None else self.jobs.embedded:
            self.jobs.start_worker()
        if periodic and self._background is None:
            self._background = Background(self)
            self._background.start()

    def close(self) -> None:
        if self._background is not None:
            self._background.stop()
        self.jobs.stop_worker()
        self.plugins.close()
        self.db.dispose()
