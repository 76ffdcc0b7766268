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
        if self.path == ":memory:":
            self._uri = f"file:sim{id(self)}?mode=memory&cache=shared"
            self._keepalive = sqlite3.connect(self._uri, uri=True)  # the memory database lives while this does
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._uri = Path(self.path).absolute().as_uri()
        self._local = threading.local()
        self._connection().executescript(SCHEMA)  # executescript manages its own transaction

    def _connection(self) -> sqlite3.Connection:
        # one connection per thread: sqlite3 connections must not cross threads;
        # ":memory:" is shared through the URI form so every thread sees one world
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._uri, timeout=30, isolation_level=None, uri=True,
                                   check_same_thread=False)
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def cursor(self):
        """One write transaction; concurrent processes wait for each other."""
        cur = self._connection().cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
