"""Shared fixtures: a fresh cloud on the database under test, a signed API client, a live server.

The database comes from ``STRATO_TEST_DB``: ``sqlite`` (default), ``postgresql``
or ``mariadb`` (the servers on 127.0.0.1; see scripts/test.sh). Each test gets a
database of its own, made from one migrated template per run.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid

import pytest
import sqlalchemy as sa

from core.config import Settings
from tests.helpers import ApiClient, LiveServer, database_backend

BACKEND = os.environ.get("STRATO_TEST_DB", "sqlite")


def pytest_report_header(config):
    return f"strato database backend: {BACKEND}"


@pytest.fixture(scope="session")
def db_backend(tmp_path_factory):
    backend = database_backend(BACKEND, tmp_path_factory.mktemp("db"))
    yield backend
    backend.drop_all()


@pytest.fixture
def database_url(db_backend):
    return db_backend.fresh()


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


#: every test database starts from the same ids, so instance names (i-<account>-<vm>-<instance.name>)
#: would be alike in two test sessions deploying on this machine's one libvirtd at once
INSTANCE_NAME = f"T{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cloud(settings):
    from core.cloud import Cloud

    cloud = Cloud(settings, migrate=False)
    cloud.start()
    with cloud.db.transaction() as session:
        cloud.config.set(session, "instance.name", INSTANCE_NAME)
    yield cloud
    cloud.close()


@pytest.fixture
def app(cloud):
    from api.app import create_app

    return create_app(cloud)


@pytest.fixture
def admin(app, cloud) -> ApiClient:
    """A client signed with the root admin's keys, through the Flask test client."""
    return ApiClient.for_user(app, cloud, "admin")


@pytest.fixture
def live_server(app):
    server = LiveServer(app)
    yield server
    server.stop()
