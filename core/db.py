"""The database: one engine per process, sessions and the one-transaction helper.

SQLite is the embedded default; PostgreSQL and MariaDB are reached through their
SQLAlchemy URLs. The schema is made by Alembic only (``upgrade``), never by
``create_all``, so every installation runs the same migrations.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


class Database:
    def __init__(self, url: str):
        self.url = url
        self.engine = _make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One state change: commits when the block ends, rolls back if it raises."""
        with self.sessions.begin() as session:
            yield session

    def session(self) -> Session:
        return self.sessions()

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision`` with Alembic."""
        from alembic import command

        command.upgrade(alembic_config(self.url), revision)

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL lets the API read while a worker writes; foreign keys are off by default in SQLite.
            # Autocommit mode off and BEGIN IMMEDIATE below make each transaction take the write
            # lock up front, so two writers serialise instead of failing at commit.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith(("mysql", "mariadb")):
        return create_engine(url, pool_pre_ping=True, pool_recycle=3600, isolation_level="READ COMMITTED")
    return create_engine(url, pool_pre_ping=True)


def is_unique_violation(exc: IntegrityError) -> bool:
    """Did ``exc`` break a unique key (not a foreign key or NOT NULL)? SQLSTATE 23505 on
    PostgreSQL, error 1062 on MariaDB, SQLite says so in its message."""
    orig = exc.orig
    if getattr(orig, "pgcode", None):
        return orig.pgcode == "23505"
    if type(orig).__module__.startswith("pymysql"):
        return bool(orig.args) and orig.args[0] == 1062
    return "UNIQUE constraint failed" in str(orig)


def after_commit(session: Session, callback) -> None:
    """Run ``callback()`` once ``session``'s transaction has committed (never if it rolls back).

    For work that must not happen unless the change is durable: queueing a job,
    notifying plugins.
    """
    session.info.setdefault("after_commit", []).append(callback)


def on_rollback(session: Session, undo) -> None:
    """Run ``undo()`` if ``session``'s transaction rolls back (never if it commits).

    For compensating a driver call made before the rows that record it are
    committed. ``undo`` should not raise; if it does, the error is logged and the
    original failure still goes up.
    """
    session.info.setdefault("on_rollback", []).append(undo)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    session.info.pop("on_rollback", None)
    for callback in session.info.pop("after_commit", []):
        callback()


@event.listens_for(Session, "after_rollback")
def _run_on_rollback(session: Session) -> None:
    session.info.pop("after_commit", None)
    for undo in reversed(session.info.pop("on_rollback", [])):
        try:
            undo()
        except Exception:  # compensation failed: the operator must know; the first error still goes up
            log.exception("undoing a driver call after a rollback failed")
