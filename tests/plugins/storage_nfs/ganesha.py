"""Moved to ``tests/nfs_server.py`` (one NFS server per test session, shared by every suite);
importable here under its old name for the suites and benchmarks that use it."""

from tests.nfs_server import (  # noqa: F401 (re-exported)
    LOCK_NAME,
    LOCK_WAIT,
    PSEUDO,
    Ganesha,
    GaneshaUnavailable,
    start_server,
    unavailable_reason,
)
