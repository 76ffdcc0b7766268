"""Views of what users choose from: service and disk offerings, OS types and OS
categories (CloudStack's ServiceOfferingResponse, DiskOfferingResponse,
GuestOSResponse, GuestOSCategoryResponse)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.model import Domain, DiskOffering, OsCategory, OsType, ServiceOffering

from .common import compact, cs_date

GiB = 1024**3


def _domain_fields(session: Session, domain_id: int | None) -> dict:
    if domain_id is None:
        return {}
    domain = session.get(Domain, domain_id)
    return {"domainid": domain.uuid, "domain": domain.name}


SERVICE_OFFERING_FIELDS = {
    "id": "the id of the service offering", "name": "the name of the service offering",
    "displaytext": "an alternate display text of the service offering", "cpunumber": "the number of CPU",
    "cpuspeed": "the clock rate CPU speed in Mhz", "memory": "the memory in MB",
    "created": "the date this service offering was created",
    "storagetype": "the storage type for this service offering",
    "offerha": "the ha support in the service offering",
    "limitcpuuse": "restrict the CPU usage to committed service offering",
    "isvolatile": "true if the vm needs to be volatile", "tags": "the tags for the service offering (storage tags)",
    "storagetags": "the storage tags of the service offering", "hosttags": "the host tag for the service offering",
    "issystem": "is this a system vm offering", "defaultuse": "is this a default system vm offering",
    "iscustomized": "is true if the offering is customized", "rootdisksize": "Root disk size in GB",
    "provisioningtype": "provisioning type used to create volumes", "state": "state of the service offering",
    "domainid": "the domain id of the service offering", "domain": "the domain name of the service offering",
}


def service_offering_view(session: Session, offering: ServiceOffering) -> dict:
    return compact({
        "id": offering.uuid, "name": offering.name, "displaytext": offering.display_text,
        "cpunumber": offering.cpu_number, "cpuspeed": offering.cpu_speed, "memory": offering.memory,
        "created": cs_date(offering.created), "storagetype": offering.storage_type, "offerha": offering.offer_ha,
        "limitcpuuse": offering.limit_cpu_use, "isvolatile": False, "tags": offering.storage_tags,
        "storagetags": offering.storage_tags, "hosttags": offering.host_tag, "issystem": offering.is_system,
        "defaultuse": False, "iscustomized": False,
        "rootdisksize": offering.root_disk_size // GiB if offering.root_disk_size else None,
        "provisioningtype": "thin", "state": offering.state, **_domain_fields(session, offering.domain_id),
    })


DISK_OFFERING_FIELDS = {
    "id": "unique ID of the disk offering", "name": "the name of the disk offering",
    "displaytext": "an alternate display text of the disk offering", "disksize": "the size of the disk offering in GB",
    "created": "the date this disk offering was created", "iscustomized": "true if disk offering uses custom size",
    "tags": "the tags for the disk offering", "storagetype": "the storage type for this disk offering",
    "provisioningtype": "provisioning type used to create volumes", "state": "state of the disk offering",
    "displayoffering": "whether to display the offering to the end user or not",
    "domainid": "the domain ID this disk offering belongs to",
    "domain": "the domain name this disk offering belongs to",
}


def disk_offering_view(session: Session, offering: DiskOffering) -> dict:
    return compact({
        "id": offering.uuid, "name": offering.name, "displaytext": offering.display_text,
        "disksize": offering.disk_size // GiB, "created": cs_date(offering.created),
        "iscustomized": offering.customized, "tags": offering.storage_tags, "storagetype": offering.storage_type,
        "provisioningtype": "thin", "state": offering.state, "displayoffering": True,
        **_domain_fields(session, offering.domain_id),
    })


OS_TYPE_FIELDS = {
    "id": "the ID of the OS type",
    "name": "the name of the OS type",
    "description": "the name/description of the OS type",
    "oscategoryid": "the ID of the OS category", "oscategoryname": "the name of the OS category",
    "isuserdefined": "is the guest OS user defined", "fordisplay": "is the guest OS visible for the users",
}


def os_type_view(session: Session, os_type: OsType) -> dict:
    return compact({
        "id": os_type.uuid, "name": os_type.description, "description": os_type.description,
        "oscategoryid": os_type.category.uuid, "oscategoryname": os_type.category.name,
        "isuserdefined": os_type.is_user_defined, "fordisplay": True,
    })


OS_CATEGORY_FIELDS = {"id": "the ID of the OS category", "name": "the name of the OS category"}


def os_category_view(session: Session, category: OsCategory) -> dict:
    return {"id": category.uuid, "name": category.name}
