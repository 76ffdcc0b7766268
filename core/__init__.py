"""Strato's core: the resource model, the orchestration and the plugin contracts.

Plugin authors import what they need from here and nothing else:

    from core import hookimpl, HypervisorDriver, api_command, P
"""

import pluggy

from .commands import ADMINS, ALL_ROLES, ROOT_ONLY, SUCCESS, P, api_command
from .drivers import (
    HostInfo,
    HostRef,
    HypervisorDriver,
    ImageStoreDriver,
    NetworkElement,
    NicSpec,
    PoolInfo,
    PoolRef,
    PowerState,
    PrimaryStorageDriver,
    SnapshotBackup,
    TemplateRef,
    VmSpec,
    VmStats,
    VolumeSpec,
)
from .errors import (
    InsufficientCapacityError,
    InvalidParameterError,
    PermissionDenied,
    ResourceUnavailableError,
    StratoError,
    UnsupportedError,
)
from .globalconfig import ConfigKey

hookimpl = pluggy.HookimplMarker("strato")

__all__ = [name for name in dir() if not name.startswith("_") and name != "pluggy"]
