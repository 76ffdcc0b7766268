"""An example plugin: one API command, one global setting, and a VM lifecycle listener."""

from core import ALL_ROLES, ConfigKey, P, api_command, hookimpl

#: VM transitions seen by this process, newest last (what ``listHelloTransitions`` shows)
TRANSITIONS: list[dict] = []


@api_command("sayHello", response="hello", roles=ALL_ROLES, description="Greets the caller",
             params={"name": P.string("who to greet")})
def say_hello(ctx, p):
    greeting = ctx.cloud.config.get(ctx.session, "hello.greeting")
    return {"greeting": f"{greeting}, {p.get('name') or ctx.caller.username}!"}


@hookimpl
def strato_api_commands():
    return [say_hello]


@hookimpl
def strato_configuration_keys():
    return [ConfigKey("hello.greeting", "Plugins", "Hello", "How sayHello greets")]


@hookimpl
def strato_vm_state_changed(vm_uuid, old_state, new_state, reason):
    TRANSITIONS.append({"vm": vm_uuid, "from": old_state, "to": new_state, "reason": reason})
