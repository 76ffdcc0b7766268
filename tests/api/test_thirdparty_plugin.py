"""The example third-party plugin (tests/thirdparty_plugin, its own distribution) and the
access hook, exercised through the API as a vendor's plugin would be."""

from __future__ import annotations

import pytest

from api.app import create_app
from core.cloud import Cloud
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, make_account, offering_id


@pytest.fixture
def hello_cloud(settings):
    settings.plugins["api"] = ["simulator", "hello"]
    cloud = Cloud(settings, migrate=False)
    cloud.start()
    yield cloud
    cloud.close()


def test_plugin_command_setting_and_listener(hello_cloud):
    """strato_api_commands adds sayHello, strato_configuration_keys adds hello.greeting,
    strato_vm_state_changed sees the transitions."""
    import strato_hello

    app = create_app(hello_cloud)
    admin = ApiClient.for_user(app, hello_cloud, "admin")
    assert admin("sayHello", name="world") == {"hello": {"greeting": "Hello, world!"}}
    with hello_cloud.db.transaction() as session:
        hello_cloud.config.set(session, "hello.greeting", "Howdy")
    assert admin("sayHello")["hello"]["greeting"] == "Howdy, admin!"
    names = [api["name"] for api in admin("listApis", name="sayHello")["api"]]
    assert names == ["sayHello"]

    zone = simulated_zone(hello_cloud)
    strato_hello.TRANSITIONS.clear()
    job = admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(hello_cloud),
                templateid=zone["template"])
    admin.wait(job)
    assert [(t["from"], t["to"]) for t in strato_hello.TRANSITIONS if t["vm"] == job["id"]] == [
        ("Stopped", "Starting"), ("Starting", "Running")]


def test_access_hook_can_refuse_and_allow(app, cloud):
    """strato_check_access: False refuses with 531, True allows, None leaves it to the core."""
    from core import hookimpl

    zone = simulated_zone(cloud)
    alice = ApiClient.for_user(app, cloud, make_account(cloud, "alice"))
    bob = ApiClient.for_user(app, cloud, make_account(cloud, "bob"))
    vm_id = alice.wait(alice("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                             templateid=zone["template"]))["virtualmachine"]["id"]

    class Policy:
        @hookimpl
        def strato_check_access(self, caller, command, resource):
            if command == "rebootVirtualMachine":
                return False  # nobody reboots, not even the owner
            if command == "stopVirtualMachine" and caller.account_name == "bob":
                return True  # bob is the operator on duty
            return None

    cloud.plugins.register(Policy(), "policy")
    with pytest.raises(ApiError) as err:
        alice("rebootVirtualMachine", id=vm_id)
    assert err.value.status == 531
    assert bob.wait(bob("stopVirtualMachine", id=vm_id))["virtualmachine"]["state"] == "Stopped"
    with pytest.raises(ApiError) as err:
        bob("startVirtualMachine", id=vm_id)
    assert err.value.status == 531, "with no opinion, the core's ownership rule refuses bob"
