"""Fixtures the plugin suites share.

``nfs_server``: the one NFS server (nfs-ganesha, ``tests/nfs_server.py``) of the whole test
session. rpcbind maps a single NFS server per machine and NFSv3 clients (libnfs, QEMU)
find the server through it, so every suite that needs NFS uses this one, each with
exports of its own (``nfs_server.add_export``). Where it cannot run, the tests that need
it are skipped with the reason, which is also raised as a warning so it shows in every
summary.
"""

from __future__ import annotations

import warnings

import pytest

from tests.nfs_server import Ganesha, GaneshaUnavailable, start_server


@pytest.fixture(scope="session")
def nfs_server(tmp_path_factory) -> Ganesha:
    try:
        server = start_server(tmp_path_factory.mktemp("nfs-server"))
    except GaneshaUnavailable as exc:
        warnings.warn(pytest.PytestWarning(f"nfs server: {exc}"))
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.shutdown()
