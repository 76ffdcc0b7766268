"""How an API command is declared: its name, parameters, access and response.

The API layer (``api/``) and plugins both declare commands with ``@api_command``.
One marshmallow schema per command, built from the ``params`` given, validates
the request and describes the command in ``listApis``.

    @api_command("listZones", response="zone", is_list=True, roles=ALL_ROLES,
                 params={"id": P.uuid("the zone"), "name": P.string("the zone's name")})
    def list_zones(ctx, p): ...

A handler gets a ``CommandContext`` and the validated parameters (a dict with
lowercase names; absent optional parameters are absent). It returns:

* a list command: ``(total_count, [object dicts])``;
* a synchronous command: an object dict (wrapped under ``response``; with
  ``response=""`` its fields sit directly under ``<command>response``, as
  queryAsyncJobResult's do), or ``SUCCESS`` for CloudStack's ``{"success": true}``;
* an async command: the ``core.jobs.JobHandle`` from ``ctx.start_job``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid as uuidlib
from typing import Any, Callable

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from .errors import InvalidParameterError

ADMIN, DOMAIN_ADMIN, USER = "Admin", "DomainAdmin", "User"
ALL_ROLES = frozenset({ADMIN, DOMAIN_ADMIN, USER})
ADMINS = frozenset({ADMIN, DOMAIN_ADMIN})
ROOT_ONLY = frozenset({ADMIN})

SUCCESS = {"success": True}

_MAP_KEY = re.compile(r"^([a-z0-9_]+)\[(\d+)\]\.([a-z0-9_]+)$")


class _Typed:
    """Mixin giving a field the CloudStack type ``listApis`` shows."""

    cs_type = "string"


class String(_Typed, fields.String):
    def __init__(self, max_length: int | None = 255, **kw):
        self.max_length = max_length
        super().__init__(**kw)

    def _deserialize(self, value, attr, data, **kw):
        value = super()._deserialize(value, attr, data, **kw)
        if self.max_length and len(value) > self.max_length:
            raise ValidationError(f"must be at most {self.max_length} characters")
        return value


class Uuid(_Typed, fields.String):
    cs_type = "uuid"

    def _deserialize(self, value, attr, data, **kw):
        value = super()._deserialize(value, attr, data, **kw).strip()
        try:
            return str(uuidlib.UUID(value))
        except ValueError:
            raise ValidationError(f"'{value}' is not a valid uuid") from None


#: the ``projectid`` value that lists the resources of all the caller's projects
ALL_PROJECTS = "-1"


class ProjectId(Uuid):
    """A list command's ``projectid``: a project's uuid, or CloudStack's ``-1`` for every project
    the caller belongs to (root admins: every project; ``ALL_PROJECTS``)."""

    def _deserialize(self, value, attr, data, **kw):
        if str(value).strip() == ALL_PROJECTS:
            return ALL_PROJECTS
        return super()._deserialize(value, attr, data, **kw)


class Integer(_Typed, fields.Integer):
    """CloudStack's INTEGER: a Java ``int``, so a value outside 32 bits is refused (431)
    rather than reaching the database, which could not store or compare it."""

    cs_type = "integer"
    #: the range of the type itself; ``minimum``/``maximum`` narrow it
    LIMITS = (-2**31, 2**31 - 1)

    def __init__(self, minimum: int | None = None, maximum: int | None = None, **kw):
        low, high = self.LIMITS
        self.minimum = low if minimum is None else max(minimum, low)
        self.maximum = high if maximum is None else min(maximum, high)
        super().__init__(strict=False, **kw)

    def _deserialize(self, value, attr, data, **kw):
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValidationError(f"'{value}' is not a whole number") from None
        if self.minimum is not None and number < self.minimum:
            raise ValidationError(f"must be at least {self.minimum}")
        if self.maximum is not None and number > self.maximum:
            raise ValidationError(f"must be at most {self.maximum}")
        return number


class Long(Integer):
    """CloudStack's LONG: a Java ``long`` (64 bits)."""

    cs_type = "long"
    LIMITS = (-2**63, 2**63 - 1)


class Float(_Typed, fields.Float):
    """A finite number (nan and infinity are refused), within ``minimum``/``maximum`` when given."""

    cs_type = "float"

    def __init__(self, minimum: float | None = None, maximum: float | None = None, **kw):
        self.minimum, self.maximum = minimum, maximum
        super().__init__(**kw)

    def _deserialize(self, value, attr, data, **kw):
        number = super()._deserialize(value, attr, data, **kw)
        if self.minimum is not None and number < self.minimum:
            raise ValidationError(f"must be at least {self.minimum:g}")
        if self.maximum is not None and number > self.maximum:
            raise ValidationError(f"must be at most {self.maximum:g}")
        return number


class Boolean(_Typed, fields.Field):
    cs_type = "boolean"

    def _deserialize(self, value, attr, data, **kw):
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValidationError(f"'{value}' is not true or false")


class ListOf(_Typed, fields.Field):
    """CloudStack's comma-separated list parameter."""

    cs_type = "list"

    def __init__(self, item: fields.Field | None = None, **kw):
        self.item = item or String()
        super().__init__(**kw)

    def _deserialize(self, value, attr, data, **kw):
        parts = value if isinstance(value, list) else str(value).split(",")
        return [self.item.deserialize(part.strip()) for part in parts if str(part).strip()]


class MapOf(_Typed, fields.Field):
    """CloudStack's map parameter, sent as ``name[0].key=value&name[0].other=...``.

    Deserialises to a list of dicts, one per index, in index order.
    """

    cs_type = "map"

    def _deserialize(self, value, attr, data, **kw):
        if isinstance(value, dict):
            return [value[k] for k in sorted(value)]
        raise ValidationError("must be given as name[0].key=value")


class Date(_Typed, fields.Field):
    cs_type = "date"

    def _deserialize(self, value, attr, data, **kw):
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"):
            try:
                return dt.datetime.strptime(str(value), fmt)
            except ValueError:
                continue
        raise ValidationError(f"'{value}' is not a date (yyyy-MM-dd or yyyy-MM-dd HH:mm:ss)")


class P:
    """Short constructors for parameters: ``P.uuid("the zone", required=True)``."""

    @staticmethod
    def _make(cls, description: str, required: bool, **kw):
        return cls(required=required, metadata={"description": description}, **kw)

    @classmethod
    def string(cls, description="", required=False, max_length=255):
        return cls._make(String, description, required, max_length=max_length)

    @classmethod
    def text(cls, description="", required=False, max_length=1048576):
        return cls._make(String, description, required, max_length=max_length)

    @classmethod
    def uuid(cls, description="", required=False):
        return cls._make(Uuid, description, required)

    @classmethod
    def integer(cls, description="", required=False, minimum=None, maximum=None):
        return cls._make(Integer, description, required, minimum=minimum, maximum=maximum)

    @classmethod
    def long(cls, description="", required=False, minimum=None, maximum=None):
        return cls._make(Long, description, required, minimum=minimum, maximum=maximum)

    @classmethod
    def float(cls, description="", required=False, minimum=None, maximum=None):
        return cls._make(Float, description, required, minimum=minimum, maximum=maximum)

    @classmethod
    def boolean(cls, description="", required=False):
        return cls._make(Boolean, description, required)

    @classmethod
    def list(cls, description="", required=False, item=None):
        return cls._make(ListOf, description, required, item=item)

    @classmethod
    def map(cls, description="", required=False):
        return cls._make(MapOf, description, required)

    @classmethod
    def date(cls, description="", required=False):
        return cls._make(Date, description, required)


#: the largest size in GiB a size parameter takes (8 PiB): in bytes it stays exact in a
#: float and adds up with any other size far below the databases' 64-bit limit
MAX_GIB = 2**53 // 2**30

#: the paging parameters of every list (``CommandContext.page_window``)
PAGING_PARAMS = {
    "page": P.integer("the page to return, from 1 (0 is the first page too)", minimum=0),
    "pagesize": P.integer("the number of items per page; -1 for all of them", minimum=-1),
}

#: parameters every list command takes
LIST_PARAMS = {
    "keyword": P.string("list by keyword (matches the name)"),
    **PAGING_PARAMS,
    "listall": P.boolean("list all resources the caller may see, not only its own"),
    "account": P.string("list resources of this account (with domainid)"),
    "domainid": P.uuid("list resources of this domain"),
    "isrecursive": P.boolean("with domainid, also list the subdomains' resources"),
    "projectid": ProjectId(metadata={"description": "list resources of this project; -1: of all the caller's "
                                                    "projects"}),
}


@dataclasses.dataclass
class ApiCommand:
    name: str
    handler: Callable[..., Any]
    schema: Schema
    response: str
    description: str
    is_async: bool = False
    is_list: bool = False
    roles: frozenset[str] = ALL_ROLES
    #: response fields for listApis: {name: description}
    response_fields: dict[str, str] = dataclasses.field(default_factory=dict)
    since: str = "4.0.0"

    @property
    def lower_name(self) -> str:
        return self.name.lower()

    @property
    def params(self) -> dict[str, fields.Field]:
        return dict(self.schema.fields)

    def validate(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Turn the request's parameters into typed values; 431 naming the parameter otherwise."""
        data = fold_map_params(raw)
        for name, field in self.schema.fields.items():
            # a value of blanks is no value: CloudStack trims parameters and then finds nothing
            if field.required and (data.get(name) is None or str(data[name]).strip() == ""):
                raise InvalidParameterError(
                    f"Unable to execute API command {self.lower_name} due to missing parameter {name}")
        try:
            return self.schema.load({k: v for k, v in data.items() if v != "" or k not in self.schema.fields})
        except ValidationError as exc:
            name, problems = next(iter(exc.normalized_messages().items()))
            problem = problems[0] if isinstance(problems, list) else problems
            raise InvalidParameterError(
                f"Unable to execute API command {self.lower_name} due to invalid value for parameter "
                f"{name}: {problem}") from None


def fold_map_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Lowercase names, and gather ``name[i].key=value`` pairs into ``{name: {i: {key: value}}}``."""
    folded: dict[str, Any] = {}
    for key, value in raw.items():
        lower = key.lower()
        match = _MAP_KEY.match(lower)
        if match:
            if len(match.group(2)) > 6:
                raise InvalidParameterError(f"the index of map parameter {match.group(1)} is too large: {key[:40]}")
            name, index, sub = match.group(1), int(match.group(2)), match.group(3)
            folded.setdefault(name, {}).setdefault(index, {})[sub] = value
        else:
            folded[lower] = value
    return folded


def api_command(name: str, *, response: str, params: dict[str, fields.Field] | None = None,
                description: str = "", is_async: bool = False, is_list: bool = False,
                roles: frozenset[str] = ALL_ROLES, response_fields: dict[str, str] | None = None,
                since: str = "4.0.0", list_params: bool | None = None):
    """Declare an API command. The decorated function becomes ``ApiCommand.handler``;
    the decorator returns the ``ApiCommand``. ``is_list`` shapes the response as a list;
    ``list_params`` (default: ``is_list``) adds the paging and ownership parameters."""

    def decorate(handler: Callable[..., Any]) -> ApiCommand:
        declared = dict(LIST_PARAMS) if (is_list if list_params is None else list_params) else {}
        declared.update(params or {})
        schema_class = Schema.from_dict(declared, name=f"{name}Params")
        return ApiCommand(
            name=name, handler=handler, schema=schema_class(unknown=EXCLUDE), response=response,
            description=description or (handler.__doc__ or "").strip().split("\n")[0],
            is_async=is_async, is_list=is_list, roles=frozenset(roles),
            response_fields=dict(response_fields or {}), since=since)

    return decorate


def collect(module_or_namespace) -> list[ApiCommand]:
    """Every ``ApiCommand`` defined at the top level of a module."""
    items = vars(module_or_namespace).values() if not isinstance(module_or_namespace, dict) \
        else module_or_namespace.values()
    return [item for item in items if isinstance(item, ApiCommand)]


class CommandContext:
    """What a command handler works with: the cloud, the caller, and the one
    transaction the command's change happens in (``session``)."""

    def __init__(self, cloud, session, caller, command: ApiCommand, params: dict[str, Any]):
        self.cloud = cloud
        self.session = session
        self.caller = caller
        self.command = command
        self.params = params

    # -- lookups -------------------------------------------------------------

    def get(self, model, uuid: str | None, param: str = "id", *, check_owner: bool = True,
            include_removed: bool = False):
        """The row with this public id; 431 naming ``param`` when there is none,
        531 when the caller may not reach it."""
        from sqlalchemy import select

        from .access import check_owner as _check_owner

        row = None
        if uuid is not None:
            query = select(model).where(model.uuid == uuid)
            if hasattr(model, "removed") and not include_removed:
                query = query.where(model.removed.is_(None))
            row = self.session.scalar(query)
        if row is None:
            raise InvalidParameterError(
                f"Unable to execute API command {self.command.lower_name} due to invalid value. "
                f"Invalid parameter {param} value={uuid} due to incorrect long value format, "
                f"or entity does not exist or due to incorrect parameter annotation for the field in api cmd class.")
        if check_owner:
            _check_owner(self.session, self.caller, row, self.cloud.plugins, self.command.name)
        return row

    def page(self, query, *, name_column=None, order_by=None) -> tuple[int, list]:
        """Apply ``keyword``, ``page`` and ``pagesize``; return (total matching, rows of the page)."""
        from sqlalchemy import func, select

        keyword = self.params.get("keyword")
        if keyword and name_column is not None:
            query = query.where(name_column.ilike(f"%{escape_like(keyword)}%", escape="\\"))
        window = self.page_window()
        total = self.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        if order_by is not None:
            query = query.order_by(*order_by) if isinstance(order_by, (list, tuple)) else query.order_by(order_by)
        size = None if window.stop is None else window.stop - window.start
        rows = self.session.scalars(query.limit(size).offset(window.start)).all()
        return total, rows

    def page_window(self) -> slice:
        """The items of a list request's page, as a slice of the whole list: ``pagesize``
        defaults to ``default.page.size`` and may not exceed it (431, as CloudStack: a
        silently shorter page would end a client's paging early); ``pagesize=-1`` is all
        of them (without ``page``); ``page`` counts from 1, and 0 is the first page too."""
        limit = self.cloud.config.get(self.session, "default.page.size")
        size, page = self.params.get("pagesize"), self.params.get("page")
        if size == -1:
            if page is not None:
                raise InvalidParameterError("Can't specify page parameter when pagesize is -1 (Unlimited)")
            return slice(0, None)
        if size == 0:
            raise InvalidParameterError("pagesize must be a positive number, or -1 for all items")
        size = size or limit
        if size > limit:
            raise InvalidParameterError(f"Page size can't exceed max allowed page size value: {limit}")
        start = (max(page or 1, 1) - 1) * size
        return slice(start, start + size)

    def owner_filter(self, model, *, by_id: bool = False):
        """The WHERE clause of a list command (``core.access.owner_filter``). ``by_id``: the
        request names resources by id, which CloudStack treats as ``listall=true``: every
        resource the caller may reach, and nothing else."""
        from .access import owner_filter

        params = {**self.params, "listall": True} if by_id else self.params
        return owner_filter(self.session, self.caller, model, params, self.command.name)

    # -- changes -------------------------------------------------------------

    def start_job(self, handler: str, params: dict[str, Any], *, instance=None, instance_type: str | None = None):
        """Queue the async part of this command once its transaction commits."""
        return self.cloud.jobs.submit(
            self.session, command=self.command.name, handler=handler, params=params, caller=self.caller,
            instance_type=instance_type or (type(instance).__name__ if instance is not None else None),
            instance_uuid=getattr(instance, "uuid", None))

    def event(self, event_type: str, description: str, resource=None, **kw):
        from . import events

        return events.record(self.session, event_type, description, caller=self.caller, resource=resource,
                             plugins=self.cloud.plugins, **kw)


def escape_like(text: str) -> str:
    """``text`` for a LIKE pattern, its wildcards taken literally (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
