"""The simulated world, kept in a small SQLite file so that the API server and
any number of ``strato worker`` processes on this machine see the same hosts,
VMs and injected faults (CloudStack's simulator keeps its mock world in the database
for the same reason)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS sim_host (url TEXT PRIMARY KEY, up INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS sim_vm (name TEXT PRIMARY KEY, host_url TEXT NOT NULL, power TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sim_fault (
    id INTEGER PRIMARY KEY AUTOINCREMENT, host_url TEXT NOT NULL, action TEXT NOT NULL,
    remaining INTEGER NOT NULL, delay REAL NOT NULL DEFAULT 0, message TEXT);
CREATE TABLE IF NOT EXISTS sim_volume (path TEXT PRIMARY KEY, pool_url TEXT NOT NULL, size INTEGER NOT NULL);
"""


class SimulatorState:
    def __init__(self, path: Path | str):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self.cursor() as cur:
            cur.executescript(SCHEMA)

    @contextlib.contextmanager
    def cursor(self):
        """One write transaction; concurrent processes wait for each other."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.conn = conn
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
