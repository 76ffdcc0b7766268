"""The resource model: every table Strato keeps, one module per resource family."""

from .base import Base, new_uuid, utcnow
from .compute import Nic, VirtualMachine, Volume, VolumeState
from .identity import Account, AccountType, Domain, LoginSession, User
from .images import DownloadState, OsCategory, OsType, Template, TemplateState, TemplateStoreRef
from .infrastructure import (
    AllocationState,
    Cluster,
    Host,
    HostStatus,
    ImageStore,
    Pod,
    ResourceState,
    StoragePool,
    Zone,
)
from .network import Network
from .offerings import DiskOffering, ServiceOffering
from .operations import AsyncJob, Capacity, CapacityType, Configuration, Event, JobStatus

__all__ = [name for name in dir() if not name.startswith("_")]
