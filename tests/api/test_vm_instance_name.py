"""CloudStack's ``instance.name`` setting: new VMs are named i-<account id>-<vm id>-<instance.name>,
and a VM keeps the name it was made with (the hypervisor knows it by that name)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.model import Host
from core.orchestration.refs import host_ref
from tests.conftest import INSTANCE_NAME
from tests.core.factories import simulated_zone
from tests.helpers import ApiError, offering_id


def deploy(admin, cloud, zone, name: str) -> dict:
    job = admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                templateid=zone["template"], name=name)
    return admin.wait(job)["virtualmachine"]


def test_instance_names_end_in_the_setting_and_never_change(admin, cloud):
    zone = simulated_zone(cloud)
    setting = admin("listConfigurations", name="instance.name")["configuration"][0]
    # the test sessions each set their own (tests/conftest.py); CloudStack's default is VM
    assert setting["value"] == INSTANCE_NAME and setting["defaultvalue"] == "VM"
    first = deploy(admin, cloud, zone, "first")
    assert first["instancename"].startswith("i-") and first["instancename"].endswith(f"-{INSTANCE_NAME}")
    account_id, vm_id = first["instancename"].split("-")[1:3]
    assert int(account_id) > 0 and int(vm_id) > 0

    admin("updateConfiguration", name="instance.name", value="CLOUD2")
    second = deploy(admin, cloud, zone, "second")
    assert second["instancename"].endswith("-CLOUD2")
    admin.wait(admin("stopVirtualMachine", id=first["id"]))
    restarted = admin.wait(admin("startVirtualMachine", id=first["id"]))["virtualmachine"]
    assert restarted["instancename"] == first["instancename"]
    with cloud.db.transaction() as session:
        ref = host_ref(session.scalars(sa.select(Host).where(Host.uuid == restarted["hostid"])).one())
    assert first["instancename"] in cloud.plugins.hypervisors["simulator"].power_states(ref), \
        "the hypervisor runs it under its first name"


@pytest.mark.parametrize("value", ["a/b", "two words", "with-hyphen", "c+d", "x" * 33, "näme"])
def test_a_value_that_cannot_end_an_instance_name_is_refused(admin, value):
    with pytest.raises(ApiError) as err:
        admin("updateConfiguration", name="instance.name", value=value)
    text = err.value.body["errortext"]
    assert err.value.status == 431 and "instance.name" in text and "letters and digits" in text, err.value.body
    assert admin("listConfigurations", name="instance.name")["configuration"][0]["value"] == INSTANCE_NAME


def test_the_longest_allowed_value_is_taken(admin):
    admin("updateConfiguration", name="instance.name", value="A1" * 16)
    assert admin("listConfigurations", name="instance.name")["configuration"][0]["value"] == "A1" * 16
