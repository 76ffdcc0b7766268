"""The resource model: every table Strato keeps, one module per resource family."""

from .base import Base, new_uuid, utcnow
from .compute import Nic, VirtualMachine, Volume, VolumeState
from .identity import (
    Account,
    AccountType,
    Domain,
    LoginSession,
    InvitationState,
    Project,
    ProjectAccount,
    ProjectInvitation,
    ProjectMemberRole,
    ProjectRole,
    ProjectRolePermission,
    ResourceCount,
    ResourceLimit,
    Role,
    RolePermission,
    RoleType,
    User,
)
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
from .network import Network, NetworkState
from .networking import (
    GuestVlan,
    IpState,
    LoadBalancerMember,
    NetworkOffering,
    NetworkOfferingService,
    NetworkRule,
    NetworkServiceProvider,
    PhysicalNetwork,
    PhysicalNetworkTrafficType,
    PublicIpAddress,
    RemoteAccessVpn,
    Router,
    RouterState,
    RuleState,
    StickinessPolicy,
    VlanIpRange,
    VpnUser,
)
from .offerings import DiskOffering, ServiceOffering
from .operations import AsyncJob, Capacity, CapacityType, Configuration, Event, JobStatus
from .snapshots import ImageExtract, IntervalType, Snapshot, SnapshotPolicy, SnapshotState
from .tags import ResourceTag
from .usage import UsageEvent, UsageJob, UsageNetworkCounter, UsageRecord
from .vm_snapshots import VmSnapshot, VmSnapshotState, VmSnapshotType

__all__ = [name for name in dir() if not name.startswith("_")]
