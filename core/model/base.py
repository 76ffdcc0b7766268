"""Declarative base and the column habits every resource shares."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so Alembic migrations read the same on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def utcnow() -> dt.datetime:
    """Naive UTC: MariaDB has no time-zone-aware DATETIME, so every database stores UTC without zone."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {int: Integer, dict: JSON, dt.datetime: DateTime}


class Resource:
    """A resource with an internal integer key and a public UUID, as CloudStack's tables."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(40), unique=True, default=new_uuid)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: set when the resource is deleted; rows are kept for events and usage
    removed: Mapped[dt.datetime | None] = mapped_column(default=None)


def Bytes():  # noqa: N802 - reads as a column type
    return mapped_column(BigInteger, default=0)
