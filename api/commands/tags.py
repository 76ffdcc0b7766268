"""Resource tags: createTags, deleteTags, listTags, and the ``tags[i].key`` / ``tags[i].value``
filter list commands take (``tag_filter``).

A tag belongs to the account (and domain) that owns the tagged resource, so the
ownership rules of the resource apply to its tags: whoever may act on the resource may
tag it, and lists of tags follow the listall/account/domainid/projectid rules. Resource
types are CloudStack's ResourceObjectType names, matched ignoring case; other resource
families add theirs with ``register_taggable``.
"""

from __future__ import annotations

from sqlalchemy import and_, exists, select
from sqlalchemy.exc import IntegrityError

from api.views.identity import TAG_FIELDS, tag_view
from core.commands import SUCCESS, P, api_command
from core.errors import InvalidParameterError
from core.jobs import job_handler
from core.model import Network, Project, ResourceTag, Template, VirtualMachine, Volume

from .zones import invalid

#: ResourceObjectType name -> model, for the types Strato can tag
TAGGABLE: dict[str, type] = {"UserVm": VirtualMachine, "Volume": Volume, "Template": Template, "ISO": Template,
                             "Network": Network, "Project": Project}


def register_taggable(name: str, model: type) -> None:
    """Let ``createTags`` tag rows of ``model`` as resource type ``name`` (CloudStack's spelling)."""
    TAGGABLE[name] = model


def _optional_models() -> None:
    """The resource families that may or may not be installed in this tree yet."""
    import core.model as models

    for name, attribute in (("Snapshot", "Snapshot"), ("PublicIpAddress", "PublicIpAddress"),
                            ("VMSnapshot", "VmSnapshot")):
        model = getattr(models, attribute, None)
        if model is not None and name not in TAGGABLE:
            TAGGABLE[name] = model


def resource_type(ctx, name: str) -> tuple[str, type]:
    """The canonical name and model of a resource type; 431 for one Strato cannot tag."""
    _optional_models()
    for canonical, model in TAGGABLE.items():
        if canonical.lower() == name.strip().lower():
            return canonical, model
    raise invalid(ctx, "resourcetype", f"'{name}' is not a taggable resource type ({', '.join(sorted(TAGGABLE))})")


def tag_filter(model, resource_type_name: str, tags: list[dict]):
    """The WHERE clause keeping rows of ``model`` that carry every ``{key, value}`` of ``tags``
    (a missing value matches any value)."""
    clauses = []
    for tag in tags:
        if not tag.get("key"):
            raise InvalidParameterError("every tags[i] filter needs a key")
        match = and_(ResourceTag.resource_type == resource_type_name, ResourceTag.resource_id == model.id,
                     ResourceTag.key == tag["key"])
        if tag.get("value") not in (None, ""):
            match = and_(match, ResourceTag.value == tag["value"])
        clauses.append(exists(select(ResourceTag.id).where(match)))
    return and_(*clauses) if clauses else True


def _resources(ctx, p: dict):
    name, model = resource_type(ctx, p["resourcetype"])
    rows = [ctx.get(model, uuid, "resourceids") for uuid in p["resourceids"]]
    if not rows:
        raise invalid(ctx, "resourceids", "name at least one resource")
    return name, rows


def _owner_ids(ctx, row) -> tuple[int | None, int | None]:
    account_id, domain_id = getattr(row, "account_id", None), getattr(row, "domain_id", None)
    if account_id is None and domain_id is None and not ctx.caller.is_root_admin:
        from core.errors import PermissionDenied

        raise PermissionDenied("only root admins tag resources no account owns")
    return account_id, domain_id


@api_command("createTags", response="success", is_async=True, description="Creates resource tag(s)", params={
    "resourceids": P.list("the IDs of the resources to tag", required=True, item=P.uuid()),
    "resourcetype": P.string("the type of the resources: UserVm, Volume, Template, ...", required=True),
    "tags": P.map("the tags: tags[0].key=k&tags[0].value=v", required=True),
    "customer": P.string("the customer the tags are for (free text)"),
})
def create_tags(ctx, p):
    name, rows = _resources(ctx, p)
    pairs = [(tag.get("key"), tag.get("value", "")) for tag in p["tags"]]
    if any(not key for key, _ in pairs):
        raise invalid(ctx, "tags", "every tag needs a key")
    if len({key for key, _ in pairs}) != len(pairs):
        raise invalid(ctx, "tags", "a key may appear once")
    work = []
    for row in rows:
        account_id, domain_id = _owner_ids(ctx, row)
        taken = ctx.session.scalar(select(ResourceTag.key).where(
            ResourceTag.resource_type == name, ResourceTag.resource_id == row.id,
            ResourceTag.key.in_([key for key, _ in pairs])).limit(1))
        if taken is not None:
            raise invalid(ctx, "tags", f"resource {row.uuid} already has a tag {taken}")
        work += [{"resource_type": name, "resource_id": row.id, "resource_uuid": row.uuid, "account_id": account_id,
                  "domain_id": domain_id, "key": key, "value": value, "customer": p.get("customer")}
                 for key, value in pairs]
    ctx.event("CREATE_TAGS", f"Tagging {len(rows)} {name} resource(s) with {', '.join(k for k, _ in pairs)}")
    return ctx.start_job("tags.create", {"tags": work})


@job_handler("tags.create")
def create_tags_job(ctx):
    try:
        with ctx.transaction() as session:
            session.add_all(ResourceTag(**tag) for tag in ctx.params["tags"])
    except IntegrityError:
        raise InvalidParameterError("a resource already has a tag with one of these keys") from None
    return SUCCESS


@api_command("deleteTags", response="success", is_async=True, description="Deleting resource tag(s)", params={
    "resourceids": P.list("the IDs of the resources whose tags go", required=True, item=P.uuid()),
    "resourcetype": P.string("the type of the resources", required=True),
    "tags": P.map("the tags to delete (tags[0].key, optionally tags[0].value); default: all"),
})
def delete_tags(ctx, p):
    name, rows = _resources(ctx, p)
    for row in rows:
        _owner_ids(ctx, row)
    ctx.event("DELETE_TAGS", f"Deleting tags of {len(rows)} {name} resource(s)")
    return ctx.start_job("tags.delete", {"resource_type": name, "resource_ids": [row.id for row in rows],
                                         "tags": [{"key": t.get("key"), "value": t.get("value")}
                                                  for t in p.get("tags", [])]})


@job_handler("tags.delete")
def delete_tags_job(ctx):
    with ctx.transaction() as session:
        query = select(ResourceTag).where(ResourceTag.resource_type == ctx.params["resource_type"],
                                          ResourceTag.resource_id.in_(ctx.params["resource_ids"]))
        wanted = ctx.params["tags"]
        for tag in session.scalars(query):
            if not wanted or any(w["key"] == tag.key and w.get("value") in (None, "", tag.value) for w in wanted):
                session.delete(tag)
    return SUCCESS


@api_command("listTags", response="tag", is_list=True, response_fields=TAG_FIELDS,
             description="List resource tag(s)", params={
                 "key": P.string("list by key"), "value": P.string("list by value"),
                 "resourceid": P.string("list by the ID of the tagged resource"),
                 "resourcetype": P.string("list by the type of the tagged resource"),
                 "customer": P.string("list by customer"),
             })
def list_tags(ctx, p):
    query = select(ResourceTag).where(ctx.owner_filter(ResourceTag, by_id="resourceid" in p))
    if "resourcetype" in p:
        query = query.where(ResourceTag.resource_type == resource_type(ctx, p["resourcetype"])[0])
    for param, column in (("key", ResourceTag.key), ("value", ResourceTag.value),
                          ("resourceid", ResourceTag.resource_uuid), ("customer", ResourceTag.customer)):
        if param in p:
            query = query.where(column == p[param])
    total, tags = ctx.page(query, name_column=ResourceTag.key, order_by=ResourceTag.id)
    return total, [tag_view(ctx.session, tag) for tag in tags]
