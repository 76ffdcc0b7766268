"""``listApis`` and ``listCapabilities``: what this cloud answers, for clients to discover.

``listApis`` is what ``cmk sync`` reads: every command the caller may call, with
its parameters (CloudStack's types, from each field's ``cs_type``) and response
fields. ``listCapabilities`` reports the version clients check and the switches
CloudStack's UI and cmk read.
"""

from __future__ import annotations

from sqlalchemy import select

from core.commands import ALL_ROLES, ApiCommand, P, api_command
from core.model import Zone

from api.native.envelope import CLOUDSTACK_VERSION

#: CloudStack's length for a parameter that states none
DEFAULT_LENGTH = 255

API_FIELDS = {
    "name": "the name of the api command", "description": "description of the api",
    "since": "version of CloudStack the api was introduced in", "isasync": "true if api is asynchronous",
    "related": "comma separated related apis", "params": "the list params the api accepts",
    "response": "api response fields",
}


@api_command("listApis", response="api", is_list=True, roles=ALL_ROLES, response_fields=API_FIELDS,
             description="lists all available apis on the server, provided by the Api Discovery plugin",
             params={"name": P.string("API name")})
def list_apis(ctx, p):
    """The commands the caller's role may call; ``name`` picks one (ignoring case), ``keyword``
    filters by name, ``page``/``pagesize`` page the list."""
    commands = ctx.commands.available_to(ctx.caller, ctx.session)
    if p.get("name"):
        commands = [c for c in commands if c.lower_name == p["name"].lower()]
    if p.get("keyword"):
        commands = [c for c in commands if p["keyword"].lower() in c.lower_name]
    return len(commands), [describe(command) for command in commands[ctx.page_window()]]


def describe(command: ApiCommand) -> dict:
    """CloudStack's ApiDiscoveryResponse of one command."""
    params = []
    for name, field in sorted(command.params.items()):
        params.append({
            "name": name,
            "description": field.metadata.get("description", ""),
            "type": getattr(field, "cs_type", "string"),
            "length": getattr(field, "max_length", None) or DEFAULT_LENGTH,
            "required": bool(field.required),
            "since": field.metadata.get("since", command.since),
            "related": "",
        })
    return {
        "name": command.name, "description": command.description, "since": command.since,
        "isasync": command.is_async, "related": "", "params": params,
        "response": [{"name": name, "description": description, "type": "string"}
                     for name, description in sorted(command.response_fields.items())],
    }


#: Switches for features Strato does not have (or has always off), as CloudStack names them.
FIXED_CAPABILITIES = {
    "dynamicrolesenabled": True,
    "userpublictemplateenabled": True,
    "supportELB": "false",
    "allowusercreateprojects": True,
    "customdiskofferingminsize": 1,
    "customdiskofferingmaxsize": 1024,
    "regionsecondaryenabled": False,
    "kvmsnapshotenabled": False,
    "allowuserexpungerecovervolume": True,
    "allowuserviewalldomainaccounts": False,
    "kubernetesserviceenabled": False,
    "kubernetesclusterexperimentalfeaturesenabled": False,
    "customhypervisordisplayname": "Custom",
    "defaultuipagesize": 20,
    "instancesstatsretentiontime": 720,
    "instancesstatsuseronly": False,
    "instancesdisksstatsretentionenabled": False,
    "instancesdisksstatsretentiontime": 720,
}

CAPABILITY_FIELDS = {
    "cloudstackversion": "version of the cloud stack",
    "securitygroupsenabled": "true if security groups support is enabled, false otherwise",
    "apilimitinterval": "time interval (in seconds) to reset api count",
    "apilimitmax": "Max allowed number of api requests within the specified interval",
    "allowusercreateprojects": "true if regular user is allowed to create projects",
    "customdiskofferingmaxsize": "maximum size that can be specified when create disk from disk offering "
                                 "with custom size",
    "kvmsnapshotenabled": "true if snapshot is supported for KVM host, false otherwise",
    "regionsecondaryenabled": "true if region wide secondary is enabled, false otherwise",
    "userpublictemplateenabled": "true if user and domain admins can set templates to be shared, false otherwise",
}


@api_command("listCapabilities", response="capability", roles=ALL_ROLES, response_fields=CAPABILITY_FIELDS,
             description="Lists capabilities")
def list_capabilities(ctx, p):
    """CloudStack's CapabilitiesResponse: the version, and security groups on when any zone has them."""
    security_groups = ctx.session.scalar(
        select(Zone.id).where(Zone.security_groups_enabled.is_(True), Zone.removed.is_(None)).limit(1)) is not None
    setting = ctx.cloud.config.get
    return {"cloudstackversion": CLOUDSTACK_VERSION, "securitygroupsenabled": security_groups,
            **FIXED_CAPABILITIES,
            "allowuserviewdestroyedvm": setting(ctx.session, "allow.user.view.destroyed.vm"),
            "projectinviterequired": setting(ctx.session, "project.invite.required"),
            "allowuserexpungerecovervm": setting(ctx.session, "allow.user.expunge.recover.vm"),
            "apilimitinterval": setting(ctx.session, "api.throttling.interval"),
            "apilimitmax": setting(ctx.session, "api.throttling.max")}
