"""Templates between image stores: ``copyTemplate`` to another zone's stores, and the
download links of ``extractTemplate``.

A copy is recorded per destination store like a download (``TemplateStoreRef``: in
progress with its percentage, then DOWNLOADED, or DOWNLOAD_ERROR with the reason), so
listTemplates shows it in the destination zone as it goes. The destination store's
driver pulls the file from the source store (``ImageStoreDriver.copy_template``).

A download link is a random token in a URL the management server answers itself; only
the token's SHA-256 is stored, with the link's expiry, so a database reader cannot
rebuild a live URL and an expired link serves nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..errors import InvalidParameterError, ResourceUnavailableError, StratoError, UnsupportedError
from ..events import record
from ..model import DownloadState, ImageExtract, ImageStore, Template, TemplateStoreRef, Zone, utcnow
from .refs import pool_ref, template_ref
from .snapshots import account_template_copy
from .templates import _progress, _set  # one way to record a store copy's progress

log = logging.getLogger(__name__)

#: how long an extract link works (CloudStack's extract.url.expiration.interval default)
EXTRACT_TTL = dt.timedelta(hours=4)


# -- copy ------------------------------------------------------------------------------


def source_ref(session: Session, template: Template, zone_id: int | None = None) -> TemplateStoreRef:
    """A downloaded copy of the template (in zone ``zone_id`` when given); 431 when none."""
    query = (select(TemplateStoreRef).join(ImageStore, ImageStore.id == TemplateStoreRef.store_id)
             .where(TemplateStoreRef.template_id == template.id, ImageStore.removed.is_(None),
                    TemplateStoreRef.download_state == DownloadState.DOWNLOADED))
    if zone_id is not None:
        query = query.where(ImageStore.zone_id == zone_id)
    ref = session.scalar(query.order_by(TemplateStoreRef.id).limit(1))
    if ref is None:
        where = f"zone {session.get(Zone, zone_id).name}" if zone_id is not None else "any image store"
        raise InvalidParameterError(f"Template {template.name} is not ready in {where}")
    return ref


def add_copy_refs(session: Session, template: Template, zone: Zone) -> list[TemplateStoreRef]:
    """Mark the template as coming to every image store of ``zone`` that lacks a good copy
    (a failed earlier copy is tried again); 431 when the zone has no image store or every
    store has it already."""
    stores = list(session.scalars(select(ImageStore).where(
        ImageStore.zone_id == zone.id, ImageStore.removed.is_(None), ImageStore.role == "Image",
        ImageStore.read_only.is_(False)).order_by(ImageStore.id)))
    if not stores:
        raise InvalidParameterError(f"zone {zone.name} has no image store to copy the template to")
    refs = []
    for store in stores:
        ref = session.scalar(select(TemplateStoreRef).where(TemplateStoreRef.template_id == template.id,
                                                            TemplateStoreRef.store_id == store.id))
        if ref is None:
            ref = TemplateStoreRef(template_id=template.id, store_id=store.id)
            session.add(ref)
        elif ref.download_state == DownloadState.DOWNLOADED:
            continue
        elif ref.download_state == DownloadState.DOWNLOAD_IN_PROGRESS:
            raise InvalidParameterError(f"Template {template.name} is already being copied to store {store.name}")
        ref.download_state, ref.download_percent, ref.error = DownloadState.NOT_DOWNLOADED, 0, None
        refs.append(ref)
    if not refs:
        raise InvalidParameterError(f"Template {template.name} is already in zone {zone.name}")
    session.flush()
    return refs


def copy(cloud, template_uuid: str, source_zone_id: int | None, destination_zone_id: int, caller=None) -> None:
    """Copy the template into each destination store ``add_copy_refs`` marked. Each store's
    outcome is recorded on its own; when one fails (nothing partial stays on it) the others
    are still tried, and the first error goes up at the end."""
    with cloud.db.transaction() as session:
        template = session.scalar(select(Template).where(Template.uuid == template_uuid))
        source = source_ref(session, template, source_zone_id)
        tref = template_ref(template, source.install_path)
        tref.store_url, tref.store_details = source.store.url, dict(source.store.details or {})
        work = [(ref.id, ref.store.provider, pool_ref(ref.store)) for ref in template.stores
                if ref.store.zone_id == destination_zone_id and ref.download_state == DownloadState.NOT_DOWNLOADED]
    first_error: StratoError | None = None
    for ref_id, provider, store in work:
        _set(cloud, ref_id, download_state=DownloadState.DOWNLOAD_IN_PROGRESS, download_percent=0)
        driver = cloud.plugins.image_store(provider)
        try:
            try:
                result = driver.copy_template(store, tref, _progress(cloud, ref_id))
            except NotImplementedError:
                raise UnsupportedError(f"the {provider} storage plugin cannot copy templates") from None
        except Exception as exc:
            error = exc if isinstance(exc, StratoError) else ResourceUnavailableError(f"{type(exc).__name__}: {exc}")
            if not isinstance(exc, StratoError):
                log.exception("copying template %s to store %s failed", template_uuid, store.name)
            _set(cloud, ref_id, download_state=DownloadState.DOWNLOAD_ERROR, error=error.message)
            first_error = first_error or error
            continue
        with cloud.db.transaction() as session:
            ref = session.get(TemplateStoreRef, ref_id)
            ref.download_state, ref.download_percent, ref.error = DownloadState.DOWNLOADED, 100, None
            ref.install_path, ref.size = result.install_path, result.size_bytes or source.size
            ref.physical_size = source.physical_size
            account_template_copy(session, session.get(Template, ref.template_id), ref)
            record(session, "TEMPLATE.COPY", f"Copied template {tref.name} to image store {store.name}",
                   caller=caller, resource=session.get(Template, ref.template_id), plugins=cloud.plugins)
    if first_error is not None:
        raise first_error


# -- extract links ------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_link(session: Session, template: Template, ref: TemplateStoreRef, account_id: int | None,
                ttl: dt.timedelta = EXTRACT_TTL) -> tuple[ImageExtract, str]:
    """A new download link to the store copy ``ref``; returns it and its secret token (the
    part of the URL only its holder knows). Expired links are dropped on the way."""
    now = utcnow()
    session.execute(delete(ImageExtract).where(ImageExtract.expires < now))
    token = secrets.token_urlsafe(32)
    link = ImageExtract(token_hash=_hash(token), template_id=template.id, store_id=ref.store_id,
                        account_id=account_id, created=now, expires=now + ttl)
    session.add(link)
    session.flush()
    return link, token


class LinkError(Exception):
    """The link cannot serve: ``status`` is the HTTP status to answer (404 unknown, 410 expired)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def open_link(cloud, token: str):
    """The file a link serves: (file name, size, binary file to read and close). Raises
    ``LinkError`` for a link that does not exist or expired, or whose template is gone."""
    with cloud.db.transaction() as session:
        link = session.scalar(select(ImageExtract).where(ImageExtract.token_hash == _hash(token)))
        if link is None:
            raise LinkError(404, "no such download")
        if link.expires < utcnow():
            raise LinkError(410, "this download link has expired; ask for a new one with extractTemplate")
        template = session.get(Template, link.template_id)
        ref = session.scalar(select(TemplateStoreRef).where(TemplateStoreRef.template_id == link.template_id,
                                                            TemplateStoreRef.store_id == link.store_id))
        store = session.get(ImageStore, link.store_id)
        if (template.removed is not None or ref is None or store.removed is not None
                or ref.download_state != DownloadState.DOWNLOADED):
            raise LinkError(404, "the template of this link is gone")
        driver = cloud.plugins.image_store(store.provider)
        store_r, tref = pool_ref(store), template_ref(template, ref.install_path)
        name = ref.install_path.rsplit("/", 1)[-1]
    size, handle = driver.open_template(store_r, tref)
    return name, size, handle


__all__ = ["EXTRACT_TTL", "source_ref", "add_copy_refs", "copy", "create_link", "open_link", "LinkError"]
