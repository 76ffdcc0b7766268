"""Guest OS types and their categories: listOsTypes, listOsCategories."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api.views.offerings import OS_CATEGORY_FIELDS, OS_TYPE_FIELDS, os_category_view, os_type_view
from core.commands import ALL_ROLES, P, api_command
from core.model import OsCategory, OsType


@api_command("listOsTypes", response="ostype", is_list=True, roles=ALL_ROLES, response_fields=OS_TYPE_FIELDS,
             params={
                 "id": P.uuid("the ID of the OS type"),
                 "oscategoryid": P.uuid("the OS category of the OS types"),
                 "description": P.string("(part of) the description of the OS type"),
             })
def list_os_types(ctx, p):
    """Lists the guest OS types templates can declare."""
    query = select(OsType).where(OsType.removed.is_(None)).options(selectinload(OsType.category))
    if "id" in p:
        query = query.where(OsType.uuid == p["id"])
    if "oscategoryid" in p:
        query = query.where(OsType.category_id == ctx.get(OsCategory, p["oscategoryid"], "oscategoryid").id)
    if "description" in p:
        query = query.where(OsType.description.contains(p["description"], autoescape=True))
    total, rows = ctx.page(query, name_column=OsType.description, order_by=OsType.id)
    return total, [os_type_view(ctx.session, row) for row in rows]


@api_command("listOsCategories", response="oscategory", is_list=True, roles=ALL_ROLES,
             response_fields=OS_CATEGORY_FIELDS, params={
                 "id": P.uuid("the ID of the OS category"),
                 "name": P.string("the name of the OS category"),
             })
def list_os_categories(ctx, p):
    """Lists the OS categories."""
    query = select(OsCategory).where(OsCategory.removed.is_(None))
    if "id" in p:
        query = query.where(OsCategory.uuid == p["id"])
    if "name" in p:
        query = query.where(OsCategory.name == p["name"])
    total, rows = ctx.page(query, name_column=OsCategory.name, order_by=OsCategory.id)
    return total, [os_category_view(ctx.session, row) for row in rows]
