"""Helpers the fixtures and tests share (importable, unlike conftest)."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path

import sqlalchemy as sa
from werkzeug.serving import make_server

from api.inprocess import ApiError, InProcessClient, sign, user_keys  # noqa: F401 (re-exported)
from core.db import Database

PG_ADMIN_URL = os.environ.get("STRATO_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN_URL = os.environ.get("STRATO_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")


def prepare(db: Database) -> None:
    """Migrate and bootstrap a template database once, so each test's copy skips both
    (bootstrap hashes the admin password, which is slow on purpose)."""
    from core.bootstrap import bootstrap

    db.upgrade()
    with db.transaction() as session:
        bootstrap(session)
    db.dispose()


class SqliteBackend:
    """Migrates one file, then copies it for every test (much faster than migrating each time)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.template = workdir / "template.db"
        prepare(Database(f"sqlite:///{self.template}"))

    def fresh(self) -> str:
        path = self.workdir / f"{uuid.uuid4().hex}.db"
        shutil.copy(self.template, path)
        return f"sqlite:///{path}"

    def drop_all(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class PostgresBackend:
    """One migrated template database; each test gets CREATE DATABASE ... TEMPLATE of it."""

    def __init__(self):
        self.admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.prefix = f"strato_t{uuid.uuid4().hex[:8]}"
        self.template = f"{self.prefix}_template"
        self.made: list[str] = []
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.template}"')
        prepare(Database(self._url(self.template)))

    def _url(self, name: str) -> str:
        return str(sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False))

    def fresh(self) -> str:
        name = f"{self.prefix}_{len(self.made)}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.made.append(name)
        return self._url(name)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in [*self.made, self.template]:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.dispose()


class MariadbBackend:
    """MariaDB has no template databases: one is migrated and bootstrapped, and each test's
    database is made from its tables' own DDL (foreign keys included) and rows, which takes
    a fraction of a migration."""

    def __init__(self):
        self.admin = sa.create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.prefix = f"strato_t{uuid.uuid4().hex[:8]}"
        self.template = f"{self.prefix}_template"
        self.made: list[str] = []
        self._create(self.template)
        prepare(Database(self._url(self.template)))
        with self.admin.connect() as conn:
            self.tables = [row[0] for row in conn.exec_driver_sql(f"SHOW TABLES FROM `{self.template}`")]
            self.ddl = [conn.exec_driver_sql(f"SHOW CREATE TABLE `{self.template}`.`{table}`").one()[1]
                        for table in self.tables]

    def _url(self, name: str) -> str:
        return str(sa.engine.make_url(MARIADB_ADMIN_URL).set(database=name).render_as_string(hide_password=False))

    def _create(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")

    def fresh(self) -> str:
        name = f"{self.prefix}_{len(self.made)}"
        self._create(name)
        self.made.append(name)
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"USE `{name}`")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")  # tables in any order; the rows are consistent
            for ddl in self.ddl:
                conn.exec_driver_sql(ddl)
            for table in self.tables:
                conn.exec_driver_sql(f"INSERT INTO `{table}` SELECT * FROM `{self.template}`.`{table}`")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
        return self._url(name)

    def drop_all(self) -> None:
        self.admin.dispose()  # its connections' USE would hold the last database
        with self.admin.connect() as conn:
            for name in [*self.made, self.template]:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        self.admin.dispose()


def database_backend(name: str, workdir: Path):
    if name == "sqlite":
        return SqliteBackend(workdir)
    if name == "postgresql":
        return PostgresBackend()
    if name == "mariadb":
        return MariadbBackend()
    raise ValueError(f"STRATO_TEST_DB={name!r}: use sqlite, postgresql or mariadb")


class ApiClient(InProcessClient):
    """A signed in-process client for a user (keys are made on first use)."""

    @classmethod
    def for_user(cls, app, cloud, username: str, domain_id: int | None = None) -> ApiClient:
        return cls(app, *user_keys(cloud, username, domain_id))


class LiveServer:
    """The app on a real HTTP port (for the cs and libcloud clients)."""

    def __init__(self, app, host: str = "127.0.0.1"):
        self.server = make_server(host, 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}/client/api"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


def make_account(cloud, name: str, *, account_type: int = 0, domain_path: str = "/", password: str = "secret"):
    """An account with one user of the same name, straight through the ORM; returns the user's name."""
    from core.model import Account, Domain, User
    from core.passwords import hash_password

    with cloud.db.transaction() as session:
        domain = session.scalars(sa.select(Domain).where(Domain.path == domain_path)).one()
        account = Account(name=name, account_type=account_type, domain_id=domain.id)
        session.add(account)
        session.flush()
        session.add(User(username=name, password_hash=hash_password(password), account_id=account.id,
                         domain_id=domain.id, firstname=name, lastname="Tester"))
    return name


def offering_id(cloud, name: str = "Small Instance") -> str:
    from core.model import ServiceOffering

    with cloud.db.transaction() as session:
        return session.scalars(sa.select(ServiceOffering.uuid).where(ServiceOffering.name == name)).one()


def capacity_used(cloud) -> dict:
    """{(capacity type, host or pool uuid): used} for every capacity row."""
    from core.model import Capacity, Host, StoragePool

    with cloud.db.transaction() as session:
        rows = session.execute(sa.select(Capacity, Host.uuid, StoragePool.uuid)
                               .outerjoin(Host, Host.id == Capacity.host_id)
                               .outerjoin(StoragePool, StoragePool.id == Capacity.pool_id)).all()
        return {(c.capacity_type, host or pool): c.used for c, host, pool in rows}
