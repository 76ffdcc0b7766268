"""Breaker findings: updatePortForwardingRule's customid (the rule's new id).

Each test fails today and should pass once fixed."""

from __future__ import annotations

import pytest

from tests.api.test_network_api import (  # noqa: F401 (fixtures)
    alice,
    network_of,
    settings,
    stopped_vm,
    zone,
)
from tests.helpers import ApiError


@pytest.fixture
def pf_rule(alice, cloud, zone):
    network = network_of(alice, zone)
    vm = stopped_vm(alice, cloud, zone, network)
    ip = alice.wait(alice("associateIpAddress", networkid=network["id"]))["ipaddress"]
    return alice.wait(alice("createPortForwardingRule", ipaddressid=ip["id"], protocol="tcp", publicport=80,
                            privateport=80, virtualmachineid=vm["id"]))["portforwardingrule"]


def _set_customid(admin, rule, customid):
    """The update, or None when it is refused with 431 (an acceptable answer)."""
    try:
        return admin.wait(admin("updatePortForwardingRule", id=rule["id"], customid=customid))["portforwardingrule"]
    except ApiError as exc:
        assert exc.status == 431 and "customid" in exc.body["errortext"], exc.body
        return None


def test_a_customid_that_is_no_uuid_leaves_the_rule_reachable(admin, alice, pf_rule):
    """updatePortForwardingRule id=<rule> customid=my-rule (root admin) answers success and the rule's id
    becomes "my-rule" (listPortForwardingRules shows it), but every command that names a rule takes a
    uuid: deletePortForwardingRule id=my-rule answers 431 "'my-rule' is not a valid uuid", so the rule
    can never be updated or deleted again through the API. CloudStack addresses a rule by its custom
    id afterwards. Expected: the rule is deletable by its new id, or the customid is refused (431)."""
    updated = _set_customid(admin, pf_rule, "my-rule")
    if updated is None:
        return
    assert updated["id"] == "my-rule"
    assert alice.wait(alice("deletePortForwardingRule", id="my-rule")) == {"success": True}


def test_a_long_customid_is_refused_with_431_not_530(admin, alice, pf_rule):
    """updatePortForwardingRule id=<rule> customid=<200 characters>: the parameter takes 255 characters
    but the uuid column holds 40. PostgreSQL/MariaDB: 530 "Internal error executing command"; SQLite
    stores it and the rule is then unreachable (not a uuid). Expected: 431 naming customid (or a rule
    reachable by that id)."""
    customid = "c" * 200
    updated = _set_customid(admin, pf_rule, customid)
    if updated is None:
        return
    assert alice.wait(alice("deletePortForwardingRule", id=customid)) == {"success": True}


def test_a_uuid_customid_becomes_the_rules_id(admin, alice, pf_rule):
    """CloudStack's customid: a uuid (any case), for root admins only (531), unique among rules (431);
    the rule answers to it from then on."""
    new_id = "6F1C2B0A-1D2E-4F3A-9B8C-7D6E5F4A3B2C"
    with pytest.raises(ApiError) as caught:
        alice("updatePortForwardingRule", id=pf_rule["id"], customid=new_id)
    assert caught.value.status == 531, caught.value.body
    updated = admin.wait(admin("updatePortForwardingRule", id=pf_rule["id"], customid=new_id))["portforwardingrule"]
    assert updated["id"] == new_id.lower()
    other = alice.wait(alice("createPortForwardingRule", ipaddressid=pf_rule["ipaddressid"], protocol="tcp",
                             publicport=81, privateport=81,
                             virtualmachineid=pf_rule["virtualmachineid"]))["portforwardingrule"]
    with pytest.raises(ApiError) as caught:
        admin("updatePortForwardingRule", id=other["id"], customid=new_id)
    assert caught.value.status == 431 and "customid" in caught.value.body["errortext"], caught.value.body
    assert alice.wait(alice("deletePortForwardingRule", id=new_id.lower())) == {"success": True}
