"""Templates onto image stores: registration queues a download per store; the
download job records progress and ends DOWNLOADED or DOWNLOAD_ERROR with the reason."""

from __future__ import annotations

import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import StratoError
from ..model import Account, DownloadState, ImageStore, Template, TemplateStoreRef, Zone, utcnow
from . import limits, usage
from .refs import pool_ref, template_ref

log = logging.getLogger(__name__)


def stores_for(session: Session, zone_id: int | None) -> list[ImageStore]:
    query = select(ImageStore).where(ImageStore.removed.is_(None), ImageStore.role == "Image")
    if zone_id is not None:
        query = query.where((ImageStore.zone_id == zone_id) | ImageStore.zone_id.is_(None))
    return list(session.scalars(query.order_by(ImageStore.id)))


def add_store_refs(session: Session, template: Template) -> list[TemplateStoreRef]:
    refs = []
    for store in stores_for(session, template.zone_id):
        ref = TemplateStoreRef(template_id=template.id, store_id=store.id)
        session.add(ref)
        refs.append(ref)
    session.flush()
    return refs


def download(cloud, template_uuid: str) -> None:
    """Fetch the template into every store that does not have it yet. Each store's
    outcome is recorded on its own; one failing store does not stop the others."""
    with cloud.db.transaction() as session:
        template = session.scalar(select(Template).where(Template.uuid == template_uuid))
        work = [(ref.id, ref.store.provider, pool_ref(ref.store)) for ref in template.stores
                if ref.download_state in (DownloadState.NOT_DOWNLOADED, DownloadState.DOWNLOAD_IN_PROGRESS)]
        tref = template_ref(template)
    for ref_id, provider, store in work:
        _set(cloud, ref_id, download_state=DownloadState.DOWNLOAD_IN_PROGRESS, download_percent=0, error=None)
        try:
            result = cloud.plugins.image_store(provider).register_template(store, tref, _progress(cloud, ref_id))
        except StratoError as exc:
            _set(cloud, ref_id, download_state=DownloadState.DOWNLOAD_ERROR, error=exc.message)
            continue
        except Exception as exc:  # a driver bug must still end in a visible state
            log.exception("template download into %s failed", store.name)
            _set(cloud, ref_id, download_state=DownloadState.DOWNLOAD_ERROR, error=f"{type(exc).__name__}: {exc}")
            continue
        with cloud.db.transaction() as session:
            ref = session.get(TemplateStoreRef, ref_id)
            ref.download_state, ref.download_percent = DownloadState.DOWNLOADED, 100
            ref.install_path, ref.size = result.install_path, result.size_bytes or 0
            ref.physical_size = result.size_bytes or 0
            template = session.get(Template, ref.template_id)
            template.size = template.size or (result.size_bytes or 0)
            if result.format and result.format != template.format:
                template.format = result.format
            _account_download(session, template, ref)


def _account_download(session: Session, template: Template, ref: TemplateStoreRef) -> None:
    """A finished download counts against secondary storage and starts template usage."""
    owner = session.get(Account, template.account_id)
    limits.reserve_many(session, owner, {limits.ResourceType.SECONDARY_STORAGE: ref.size}, check=False)
    zone = session.get(Zone, ref.store.zone_id) if ref.store.zone_id else None
    usage.record(session, "TEMPLATE.CREATE", account_id=template.account_id, domain_id=template.domain_id,
                 resource_type="Template", resource_uuid=template.uuid, resource_name=template.name,
                 zone_uuid=zone.uuid if zone else None, size=ref.size)


def _progress(cloud, ref_id: int):
    last = {"at": 0.0, "percent": -1}

    def report(percent: int) -> None:
        # at most one write a second: progress is for people, not a write per chunk
        now = time.monotonic()
        if percent != last["percent"] and (now - last["at"] >= 1 or percent >= 100):
            last.update(at=now, percent=percent)
            _set(cloud, ref_id, download_percent=int(percent))

    return report


def _set(cloud, ref_id: int, **values) -> None:
    with cloud.db.transaction() as session:
        ref = session.get(TemplateStoreRef, ref_id)
        for key, value in values.items():
            setattr(ref, key, value)


def delete(cloud, template_uuid: str) -> None:
    """Remove the template's files from every store, then mark it removed."""
    with cloud.db.transaction() as session:
        template = session.scalar(select(Template).where(Template.uuid == template_uuid))
        work = [(ref.store.provider, pool_ref(ref.store), template_ref(template, ref.install_path))
                for ref in template.stores if ref.install_path]
    for provider, store, tref in work:
        cloud.plugins.image_store(provider).delete_template(store, tref)
    with cloud.db.transaction() as session:
        template = session.scalar(select(Template).where(Template.uuid == template_uuid))
        if template.removed is None:  # give back what registration and downloads counted, end usage
            downloaded = sum(ref.size or 0 for ref in template.stores if ref.download_state == DownloadState.DOWNLOADED)
            limits.release_many(session, template.account_id, {limits.ResourceType.TEMPLATE: 1,
                                                               limits.ResourceType.SECONDARY_STORAGE: downloaded})
            usage.record(session, "TEMPLATE.DELETE", account_id=template.account_id, domain_id=template.domain_id,
                         resource_type="Template", resource_uuid=template.uuid, resource_name=template.name)
        for ref in list(template.stores):
            session.delete(ref)
        template.removed, template.state = utcnow(), "Inactive"
