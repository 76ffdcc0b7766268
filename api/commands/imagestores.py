"""Image stores (secondary storage): addImageStore, listImageStores, deleteImageStore.

``provider`` names the storage plugin, case-insensitively (CloudStack's ``NFS``
is the ``nfs`` plugin, ``Simulator`` the ``simulator`` one). A store with a zone
serves that zone; one without serves every zone (CloudStack's REGION scope).
"""

from __future__ import annotations

from sqlalchemy import func, select

from api.views.infrastructure import IMAGE_STORE_FIELDS, image_store_view
from core.commands import ROOT_ONLY, SUCCESS, P, api_command
from core.errors import InvalidParameterError
from core.model import ImageStore, Zone
from core.orchestration import infrastructure

from .zones import invalid


@api_command("addImageStore", response="imagestore", roles=ROOT_ONLY, response_fields=IMAGE_STORE_FIELDS, params={
    "name": P.string("the name of the image store (default: the URL)"),
    "url": P.string("the URL of the image store, as its plugin takes it", required=True, max_length=1024),
    "zoneid": P.uuid("the zone the store serves (none: every zone)"),
    "provider": P.string("the storage plugin serving the store, e.g. NFS or Simulator", required=True),
    "details": P.map("details handed to the storage plugin"),
})
def add_image_store(ctx, p):
    """Adds an image store."""
    zone = ctx.get(Zone, p["zoneid"], "zoneid") if "zoneid" in p else None
    url = p["url"].strip()
    details = {k: v for item in p.get("details", []) for k, v in item.items()}
    provider = p["provider"].strip()
    try:
        ctx.cloud.plugins.image_store(provider.lower())
    except InvalidParameterError as exc:
        raise invalid(ctx, "provider", exc.message) from None
    store = infrastructure.add_image_store(ctx.cloud, ctx.session, name=(p.get("name") or url).strip(), url=url,
                                           provider=provider, zone=zone, details=details)
    ctx.event("IMAGE.STORE.ADD", f"Added image store {store.name} at {url}", store)
    return image_store_view(ctx.session, store)


@api_command("listImageStores", response="imagestore", is_list=True, roles=ROOT_ONLY,
             response_fields=IMAGE_STORE_FIELDS, params={
                 "id": P.uuid("the ID of the image store"),
                 "name": P.string("the name of the image store"),
                 "zoneid": P.uuid("the zone of the stores"),
                 "provider": P.string("the storage plugin of the stores"),
                 "protocol": P.string("the URL scheme of the stores, e.g. nfs"),
                 "readonly": P.boolean("list only read-only (true) or writable (false) stores"),
             })
def list_image_stores(ctx, p):
    """Lists image stores."""
    query = select(ImageStore).where(ImageStore.removed.is_(None))
    if "id" in p:
        query = query.where(ImageStore.uuid == p["id"])
    if "name" in p:
        query = query.where(ImageStore.name == p["name"])
    if "zoneid" in p:
        query = query.where(ImageStore.zone_id == ctx.get(Zone, p["zoneid"], "zoneid").id)
    if "provider" in p:
        query = query.where(ImageStore.provider == p["provider"].strip().lower())
    if "protocol" in p:
        query = query.where(func.lower(ImageStore.protocol) == p["protocol"].strip().lower())
    if "readonly" in p:
        query = query.where(ImageStore.read_only == p["readonly"])
    total, stores = ctx.page(query, name_column=ImageStore.name, order_by=ImageStore.id)
    return total, [image_store_view(ctx.session, store) for store in stores]


@api_command("deleteImageStore", response="success", roles=ROOT_ONLY, params={
    "id": P.uuid("the ID of the image store", required=True),
})
def delete_image_store(ctx, p):
    """Deletes an image store that holds no templates (536 otherwise)."""
    store = ctx.get(ImageStore, p["id"], "id")
    infrastructure.remove_image_store(ctx.session, store)
    ctx.event("IMAGE.STORE.DELETE", f"Deleted image store {store.name}", store)
    return SUCCESS
