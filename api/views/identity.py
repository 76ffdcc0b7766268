"""Views of the tenancy: domains, accounts, users and API keys, roles, projects, resource
limits and counts, usage records and resource tags (CloudStack's DomainResponse,
AccountResponse, UserResponse, RegisterResponse, RoleResponse, RolePermissionResponse,
ProjectResponse, ProjectAccountResponse, ProjectRoleResponse, ProjectRolePermissionResponse,
ProjectInvitationResponse, ResourceLimitResponse, ResourceCountResponse,
UsageRecordResponse, ResourceTagResponse)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.model import (
    Account,
    AccountType,
    Domain,
    Project,
    ProjectAccount,
    ProjectInvitation,
    ProjectMemberRole,
    ProjectRole,
    ProjectRolePermission,
    ResourceCount,
    ResourceTag,
    Role,
    RolePermission,
    UsageRecord,
    User,
    VirtualMachine,
)
from core.orchestration import limits
from core.orchestration.limits import ResourceType

from .common import OWNER_FIELDS, compact, cs_date, owner_fields


def domain_path(domain: Domain) -> str:
    """CloudStack's printed path: ROOT, ROOT/child, ROOT/child/grandchild."""
    return "ROOT" + domain.path.rstrip("/") if domain.path != "/" else "ROOT"


DOMAIN_FIELDS = {
    "id": "the ID of the domain", "name": "the name of the domain", "level": "the level of the domain",
    "parentdomainid": "the domain ID of the parent domain", "parentdomainname": "the domain name of the parent domain",
    "haschild": "whether the domain has one or more sub-domains", "path": "the path of the domain",
    "state": "the state of the domain",
    "networkdomain": "the network domain",
    "created": "the date when this domain was created",
}

#: AccountResponse/DomainResponse/ProjectResponse prefixes of each resource type's limit fields
LIMIT_PREFIXES = {
    ResourceType.USER_VM: "vm", ResourceType.PUBLIC_IP: "ip", ResourceType.VOLUME: "volume",
    ResourceType.SNAPSHOT: "snapshot", ResourceType.TEMPLATE: "template", ResourceType.PROJECT: "project",
    ResourceType.NETWORK: "network", ResourceType.VPC: "vpc", ResourceType.CPU: "cpu", ResourceType.MEMORY: "memory",
    ResourceType.PRIMARY_STORAGE: "primarystorage", ResourceType.SECONDARY_STORAGE: "secondarystorage",
}
LIMIT_FIELDS = {f"{prefix}{what}": f"the {what} of {rtype.api_name} (Unlimited for no limit)"
                for rtype, prefix in LIMIT_PREFIXES.items() for what in ("limit", "total", "available")}
DOMAIN_FIELDS.update(LIMIT_FIELDS)


def limit_fields(session: Session, *, account: Account | None = None, domain: Domain | None = None) -> dict:
    """``vmlimit``, ``vmtotal``, ``vmavailable`` and the rest: limits and counts in the API's units
    (storage in GiB), "Unlimited" where there is no limit. Projects have no project limit."""
    owner = (ResourceCount.account_id == account.id) if account is not None else (ResourceCount.domain_id == domain.id)
    counts = dict(session.execute(select(ResourceCount.resource_type, ResourceCount.count).where(owner)).all())
    fields: dict = {}
    for rtype, prefix in LIMIT_PREFIXES.items():
        if rtype == ResourceType.PROJECT and account is not None and account.account_type == AccountType.PROJECT:
            continue
        maximum = (limits.account_limit(session, account, rtype) if account is not None
                   else limits.domain_limit(session, domain, rtype))
        total = counts.get(int(rtype), 0)
        if rtype in limits.STORAGE:
            total = round(total / limits.GiB, 2) if total % limits.GiB else total // limits.GiB
        fields[f"{prefix}limit"] = "Unlimited" if maximum == limits.UNLIMITED else str(maximum)
        fields[f"{prefix}total"] = total
        fields[f"{prefix}available"] = "Unlimited" if maximum == limits.UNLIMITED else str(max(maximum - total, 0))
    return fields


def domain_view(session: Session, domain: Domain) -> dict:
    parent = domain.parent
    has_child = session.scalar(select(Domain.id).where(Domain.parent_id == domain.id, Domain.removed.is_(None))
                               .limit(1)) is not None
    return compact({
        "id": domain.uuid, "name": domain.name, "level": domain.level,
        "parentdomainid": parent.uuid if parent else None, "parentdomainname": parent.name if parent else None,
        "haschild": has_child, "path": domain_path(domain), "state": domain.state,
        "networkdomain": domain.network_domain, "created": cs_date(domain.created),
        **limit_fields(session, domain=domain),
    })


USER_FIELDS = {
    "id": "the user ID", "username": "the user name", "firstname": "the user firstname",
    "lastname": "the user lastname",
    "email": "the user email address",
    "created": "the date and time the user account was created",
    "state": "the user state", "account": "the account name of the user", "accountid": "the account ID of the user",
    "accounttype": "the account type of the user", "roletype": "the type of the role",
    "domainid": "the domain ID of the user", "domain": "the domain name of the user",
    "timezone": "the timezone user was created in", "isdefault": "true if user is default, false otherwise",
    "apikey": "the api key of the user", "roleid": "the ID of the role", "rolename": "the name of the role",
}


def user_view(session: Session, user: User) -> dict:
    """The secret key is never listed: only ``getUserKeys`` and ``registerUserKeys`` show it."""
    account = user.account
    domain = session.get(Domain, user.domain_id)
    return compact({
        "id": user.uuid, "username": user.username, "firstname": user.firstname, "lastname": user.lastname,
        "email": user.email, "created": cs_date(user.created), "state": user.state, "account": account.name,
        "accountid": account.uuid, "accounttype": account.account_type, **_role_fields(session, account),
        "domainid": domain.uuid, "domain": domain.name, "timezone": user.timezone, "isdefault": user.is_default,
        "apikey": user.api_key,
    })


def _role_fields(session: Session, account: Account) -> dict:
    from core import roles

    role = session.get(Role, account.role_id) if account.role_id else roles.role_for_account_type(
        session, account.account_type)
    return {"roleid": role.uuid, "rolename": role.name, "roletype": role.role_type}


ACCOUNT_FIELDS = {
    "id": "the id of the account", "name": "the name of the account",
    "accounttype": "account type (admin, domain-admin, user)",
    "roletype": "the type of the role (Admin, DomainAdmin, User)",
    "domainid": "id of the Domain the account belongs to", "domain": "name of the Domain the account belongs to",
    "domainpath": "path of the Domain the account belongs to", "state": "the state of the account",
    "networkdomain": "the network domain", "created": "the date when this account was created",
    "isdefault": "true if account is default, false otherwise", "user": "the list of users associated with account",
    "roleid": "the ID of the role", "rolename": "the name of the role",
    "vmrunning": "the total number of virtual machines running for this account",
    "vmstopped": "the total number of virtual machines stopped for this account",
    **LIMIT_FIELDS,
}


def account_view(session: Session, account: Account) -> dict:
    domain = account.domain
    users = session.scalars(select(User).where(User.account_id == account.id, User.removed.is_(None))
                            .order_by(User.id)).all()
    states = dict(session.execute(select(VirtualMachine.state, func.count()).where(
        VirtualMachine.account_id == account.id, VirtualMachine.removed.is_(None), VirtualMachine.vm_type == "User")
        .group_by(VirtualMachine.state)).all())
    return compact({
        "id": account.uuid, "name": account.name, "accounttype": account.account_type,
        **_role_fields(session, account), "domainid": domain.uuid, "domain": domain.name,
        "domainpath": domain_path(domain), "state": account.state, "networkdomain": account.network_domain,
        "created": cs_date(account.created),
        # the two accounts every installation starts with
        "isdefault": account.name in ("system", "admin") and domain.parent_id is None,
        "user": [user_view(session, user) for user in users],
        "vmrunning": states.get("Running", 0), "vmstopped": states.get("Stopped", 0),
        **limit_fields(session, account=account),
    })


USER_KEYS_FIELDS = {"apikey": "the api key of the registered user",
                    "secretkey": "the secret key of the registered user"}


def user_keys_view(user: User) -> dict:
    return {"apikey": user.api_key, "secretkey": user.secret_key}


ROLE_FIELDS = {"id": "the ID of the role", "name": "the name of the role", "type": "the type of the role",
               "description": "the description of the role", "isdefault": "true if the role is a default role",
               "state": "the state of the role"}


def role_view(role: Role) -> dict:
    return compact({"id": role.uuid, "name": role.name, "type": role.role_type, "description": role.description,
                    "isdefault": role.is_default, "state": role.state.capitalize()})


ROLE_PERMISSION_FIELDS = {"id": "the ID of the role permission", "roleid": "the ID of the role",
                          "rolename": "the name of the role", "rule": "the api name or wildcard rule",
                          "permission": "the permission type of the api name or wildcard rule, allow/deny",
                          "description": "the description of the role permission"}


def role_permission_view(rule: RolePermission, role: Role) -> dict:
    return compact({"id": rule.uuid, "roleid": role.uuid, "rolename": role.name, "rule": rule.rule,
                    "permission": rule.permission, "description": rule.description})


PROJECT_FIELDS = {
    "id": "the id of the project", "name": "the name of the project", "displaytext": "the displaytext of the project",
    "domainid": "the domain id the project belongs to", "domain": "the domain name where the project belongs to",
    "domainpath": "path of the Domain the project belongs to", "account": "the account name of the project's owner",
    "owner": "the account(s) owning the project", "state": "the state of the project",
    "created": "the date this project was created", "tags": "the list of resource tags associated with the project",
    **LIMIT_FIELDS,
}


def project_view(session: Session, project: Project) -> dict:
    owners = session.scalars(select(ProjectAccount).where(
        ProjectAccount.project_id == project.id, ProjectAccount.role == ProjectMemberRole.ADMIN)
        .order_by(ProjectAccount.account_id, ProjectAccount.id)).all()
    domain = project.domain
    return compact({
        "id": project.uuid, "name": project.name, "displaytext": project.display_text, "domainid": domain.uuid,
        "domain": domain.name, "domainpath": domain_path(domain),
        "account": owners[0].account.name if owners else None,
        "owner": [compact({"account": owner.account.name, "accountid": owner.account.uuid,
                           "user": owner.user.username if owner.user else None,
                           "userid": owner.user.uuid if owner.user else None}) for owner in owners],
        "state": project.state, "created": cs_date(project.created),
        "tags": tag_list(session, "Project", project.id),
        **limit_fields(session, account=project.project_account),
    })


PROJECT_ACCOUNT_FIELDS = {
    "projectid": "project id", "project": "project name", "accountid": "the id of the account",
    "account": "the name of the account", "accounttype": "account type (admin, domain-admin, user)",
    "role": "account role in the project (Regular, Admin)", "domainid": "id of the Domain the account belongs to",
    "domain": "name of the Domain the account belongs to", "domainpath": "path of the Domain the account belongs to",
    "user": "the list of users associated with account (a user member: that user)",
    "userid": "Id of the user (a user member, addUserToProject)", "username": "Name of the user (a user member)",
    "projectroleid": "the project role of the account in the project (restricting what it may call there)",
}


def project_account_view(session: Session, project: Project, member: ProjectAccount) -> dict:
    account = member.account
    domain = account.domain
    users = [member.user] if member.user else session.scalars(
        select(User).where(User.account_id == account.id, User.removed.is_(None)).order_by(User.id)).all()
    return compact({
        "projectid": project.uuid, "project": project.name, "accountid": account.uuid, "account": account.name,
        "accounttype": account.account_type, "role": member.role, "domainid": domain.uuid, "domain": domain.name,
        "domainpath": domain_path(domain), "user": [user_view(session, user) for user in users],
        "userid": member.user.uuid if member.user else None,
        "username": member.user.username if member.user else None,
        "projectroleid": session.get(ProjectRole, member.project_role_id).uuid if member.project_role_id else None,
    })


PROJECT_ROLE_FIELDS = {"id": "the ID of the role", "name": "the name of the role",
                       "description": "the description of the role", "projectid": "the id of the project"}


def project_role_view(role: ProjectRole, project: Project) -> dict:
    return compact({"id": role.uuid, "name": role.name, "description": role.description, "projectid": project.uuid})


PROJECT_ROLE_PERMISSION_FIELDS = {
    "id": "the ID of the project role permission", "projectid": "the ID of the project",
    "projectroleid": "the ID of the project role to which the role permission belongs",
    "projectrolename": "the name of the project role to which the role permission belongs",
    "rule": "the api name or wildcard rule", "permission": "the permission type of the api name or wildcard rule, "
    "allow/deny", "description": "the description of the role permission",
}


def project_role_permission_view(rule: ProjectRolePermission, role: ProjectRole, project: Project) -> dict:
    return compact({"id": rule.uuid, "projectid": project.uuid, "projectroleid": role.uuid,
                    "projectrolename": role.name, "rule": rule.rule, "permission": rule.permission,
                    "description": rule.description})


PROJECT_INVITATION_FIELDS = {
    "id": "the id of the invitation", "projectid": "the id of the project", "project": "the name of the project",
    "domainid": "the domain id the project belongs to", "domain": "the domain name where the project belongs to",
    "domainpath": "path of the Domain the project belongs to", "account": "the account name of the invited account",
    "email": "the email the invitation was sent to", "state": "the invitation state",
    "userid": "the User ID (an invitation of one user, addUserToProject)",
}


def project_invitation_view(invitation: ProjectInvitation) -> dict:
    project, domain = invitation.project, invitation.project.domain
    return compact({
        "id": invitation.uuid, "projectid": project.uuid, "project": project.name, "domainid": domain.uuid,
        "domain": domain.name, "domainpath": domain_path(domain),
        "account": invitation.account.name if invitation.account is not None else None,
        "email": invitation.email, "state": invitation.state,
        "userid": invitation.user.uuid if invitation.user is not None else None,
    })


RESOURCE_LIMIT_FIELDS = {
    "resourcetype": "resource type (0 user_vm ... 11 secondary_storage)", "resourcetypename": "resource type name",
    "max": "the maximum number of the resource (-1 unlimited; GiB for storage, MiB for memory)",
    **OWNER_FIELDS,
}


def resource_limit_view(session: Session, rtype: ResourceType, maximum: int, *, account: Account | None = None,
                        domain: Domain | None = None) -> dict:
    owner = owner_fields(session, account.id, account.domain_id) if account is not None else \
        owner_fields(session, None, domain.id)
    return compact({"resourcetype": str(int(rtype)), "resourcetypename": rtype.api_name, "max": maximum, **owner})


RESOURCE_COUNT_FIELDS = {
    "resourcetype": "resource type", "resourcetypename": "resource type name",
    "resourcecount": "the resource count (bytes for storage, MiB for memory)", **OWNER_FIELDS,
}


def resource_count_view(session: Session, rtype: ResourceType, count: int, *, account: Account | None = None,
                        domain: Domain | None = None) -> dict:
    owner = owner_fields(session, account.id, account.domain_id) if account is not None else \
        owner_fields(session, None, domain.id)
    return compact({"resourcetype": str(int(rtype)), "resourcetypename": rtype.api_name, "resourcecount": count,
                    **owner})


TAG_FIELDS = {
    "key": "tag key name", "value": "tag value", "resourcetype": "resource type", "resourceid": "id of the resource",
    "customer": "customer associated with the tag", **OWNER_FIELDS,
}


def tag_view(session: Session, tag: ResourceTag) -> dict:
    return compact({"key": tag.key, "value": tag.value, "resourcetype": tag.resource_type,
                    "resourceid": tag.resource_uuid, "customer": tag.customer,
                    **owner_fields(session, tag.account_id, tag.domain_id)})


def prefetch_tags(session: Session, resource_type: str, resource_ids: list[int]) -> None:
    """Load the tags of many resources in one query, for ``tag_list`` to answer from (list views)."""
    cache = session.info.setdefault("resource_tags", {})
    found: dict[int, list] = {resource_id: [] for resource_id in resource_ids}
    if resource_ids:
        for tag in session.scalars(select(ResourceTag).where(ResourceTag.resource_type == resource_type,
                                                             ResourceTag.resource_id.in_(resource_ids))
                                   .order_by(ResourceTag.id)):
            found[tag.resource_id].append(tag)
    for resource_id, tags in found.items():
        cache[(resource_type, resource_id)] = tags


def tag_list(session: Session, resource_type: str, resource_id: int) -> list[dict]:
    """The ``tags`` of a resource view (from ``prefetch_tags`` when it ran for this resource)."""
    cache = session.info.setdefault("resource_tags", {})
    tags = cache.get((resource_type, resource_id))
    if tags is None:
        tags = list(session.scalars(select(ResourceTag).where(ResourceTag.resource_type == resource_type,
                                                              ResourceTag.resource_id == resource_id)
                                    .order_by(ResourceTag.id)))
    return [tag_view(session, tag) for tag in tags]


USAGE_RECORD_FIELDS = {
    "account": "the user account name", "accountid": "the user account Id", "domainid": "the domain ID",
    "domain": "the domain the resource is associated with", "zoneid": "the zone ID",
    "description": "description of the usage record", "usage": "usage in hours", "usagetype": "usage type ID",
    "rawusage": "raw usage in hours (bytes for network usage)", "virtualmachineid": "virtual machine ID",
    "name": "resource or virtual machine name", "offeringid": "offering ID", "templateid": "template ID",
    "usageid": "id of the resource", "type": "resource type", "size": "resource size",
    "cpunumber": "number of cpu of resource", "cpuspeed": "speed of each cpu of resource",
    "memory": "memory allocated for the resource", "startdate": "start date of the usage record",
    "enddate": "end date of the usage record", "project": "the project name of the resource",
    "projectid": "the project id of the resource", "domainpath": "path of the domain of the usage record",
}


def usage_record_view(session: Session, record: UsageRecord) -> dict:
    return compact({
        **owner_fields(session, record.account_id, record.domain_id), "zoneid": record.zone_uuid,
        "description": record.description, "usage": record.usage_display, "usagetype": record.usage_type,
        "rawusage": f"{record.raw_usage:.6f}".rstrip("0").rstrip("."), "virtualmachineid": record.vm_uuid, "name": record.resource_name,
        "offeringid": record.offering_uuid, "templateid": record.template_uuid, "usageid": record.resource_uuid,
        "type": record.type, "size": record.size, "cpunumber": record.cpu_number, "cpuspeed": record.cpu_speed,
        "memory": record.memory, "startdate": cs_date(record.start_date), "enddate": cs_date(record.end_date),
    })


USAGE_TYPE_FIELDS = {"id": "usage type ID", "name": "usage type name", "description": "usage type description"}
