"""Bad input found by trying to break the API: each answer is CloudStack's envelope
with 431 (or 531) and a message naming what to fix, never 530, and nothing is written."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.model import Configuration, ServiceOffering, Template, VirtualMachine
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, make_account, offering_id

HUGE = "99999999999999999999"


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud, hosts=1)


def refused(client, command, **params) -> ApiError:
    with pytest.raises(ApiError) as info:
        client(command, **params)
    return info.value


def count(cloud, model) -> int:
    with cloud.db.transaction() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


def test_numbers_beyond_the_parameter_type_are_431_naming_the_parameter(cloud, admin, zone):
    for command, params, name in (
            ("listZones", {"page": HUGE, "pagesize": 10}, "page"),
            ("listAccounts", {"accounttype": f"-{HUGE}"}, "accounttype"),
            ("createServiceOffering", {"name": "big", "cpunumber": HUGE, "cpuspeed": 1, "memory": 1}, "cpunumber"),
            ("createDiskOffering", {"name": "big", "disksize": HUGE}, "disksize"),
            ("deployVirtualMachine", {"zoneid": zone["zone"], "serviceofferingid": offering_id(cloud),
                                      "templateid": zone["template"], "rootdisksize": HUGE}, "rootdisksize")):
        offerings, vms = count(cloud, ServiceOffering), count(cloud, VirtualMachine)
        exc = refused(admin, command, **params)
        assert exc.status == 431 and f"parameter {name}: must be at " in exc.body["errortext"], exc.body
        assert (count(cloud, ServiceOffering), count(cloud, VirtualMachine)) == (offerings, vms)


def test_a_page_size_beyond_the_maximum_is_431_and_count_stays_the_total(admin, zone):
    # a page silently cut to 500 would end a client's paging early; CloudStack refuses it
    for command, extra in (("listHosts", {}), ("listApis", {}), ("listTemplates", {"templatefilter": "all"})):
        exc = refused(admin, command, page=1, pagesize=501, **extra)
        assert exc.status == 431 and "can't exceed max allowed page size value: 500" in exc.body["errortext"]
    assert admin("listHosts", page=7, pagesize=1) == {"count": 1}  # past the end: the total, no items
    assert admin("listHosts", page=1, pagesize=500)["count"] == 1


def test_pagesize_minus_one_lists_everything_and_page_zero_is_the_first_page(cloud, admin, zone):
    with cloud.db.transaction() as session:
        session.merge(Configuration(name="default.page.size", value="2"))
    for n in range(3):
        admin("createDiskOffering", name=f"paged-{n}", disksize=1)
    everything = admin("listDiskOfferings", pagesize=-1)
    assert everything["count"] == len(everything["diskoffering"]) >= 3  # beyond the maximum page of 2
    for command, extra in (("listDiskOfferings", {}), ("listApis", {}), ("listTemplates", {"templatefilter": "all"})):
        whole = admin(command, pagesize=-1, **extra)
        first = admin(command, page=0, pagesize=2, **extra)
        key = next(k for k in whole if k != "count")
        assert first[key] == whole[key][:2] and first["count"] == whole["count"]
    exc = refused(admin, "listDiskOfferings", page=1, pagesize=-1)
    assert exc.status == 431 and "Can't specify page parameter when pagesize is -1" in exc.body["errortext"]
    for bad in (0, -2):
        exc = refused(admin, "listDiskOfferings", page=1, pagesize=bad)
        assert exc.status == 431 and "pagesize" in exc.body["errortext"], exc.body


def test_a_required_parameter_of_blanks_is_missing(cloud, admin):
    before = count(cloud, ServiceOffering)
    exc = refused(admin, "createServiceOffering", name="   ", cpunumber=1, cpuspeed=100, memory=64)
    assert exc.status == 431 and exc.body["errortext"].endswith("due to missing parameter name")
    assert count(cloud, ServiceOffering) == before


def test_register_template_with_a_malformed_zone_id_is_431(cloud, admin, zone):
    before = count(cloud, Template)
    for value in ("abc", "1,2", "é中"):
        exc = refused(admin, "registerTemplate", name="t", displaytext="t", url="http://sim/t.qcow2", zoneid=value,
                      format="QCOW2", hypervisor="Simulator")
        assert exc.status == 431 and "parameter zoneid" in exc.body["errortext"], exc.body
    assert count(cloud, Template) == before


def test_list_templates_keyword_matches_percent_and_underscore_literally(admin, zone):
    for name in ("a%b", "a_b", "axb"):
        admin("registerTemplate", name=name, displaytext=name, url="http://sim/t.qcow2", zoneid=zone["zone"],
              format="QCOW2", hypervisor="Simulator")
    names = lambda keyword: sorted(t["name"] for t in admin("listTemplates", templatefilter="all",  # noqa: E731
                                                                keyword=keyword).get("template", []))
    assert names("%") == ["a%b"]
    assert names("_") == ["a_b"]


def test_an_offering_of_another_domain_is_not_usable(app, cloud, admin, zone):
    domain = admin("createDomain", name="other")["domain"]
    theirs = admin("createServiceOffering", name="theirs", cpunumber=1, cpuspeed=100, memory=64,
                   domainid=domain["id"])["serviceoffering"]
    tenant = ApiClient.for_user(app, cloud, make_account(cloud, "tess"))
    assert "theirs" not in [o["name"] for o in tenant("listServiceOfferings")["serviceoffering"]]
    before = count(cloud, VirtualMachine)
    exc = refused(tenant, "deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=theirs["id"],
                  templateid=zone["template"])
    assert exc.status == 531 and "service offering" in exc.body["errortext"]
    assert count(cloud, VirtualMachine) == before
    vm = tenant.wait(tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                            templateid=zone["template"], startvm=False))["virtualmachine"]
    assert refused(tenant, "changeServiceForVirtualMachine", id=vm["id"], serviceofferingid=theirs["id"]).status == 531
    assert tenant("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["serviceofferingname"] == "Small Instance"


BROKEN_SETTINGS = [
    ("default.page.size", "0"), ("default.page.size", HUGE), ("ping.interval", "0"), ("ping.interval", HUGE),
    ("expunge.delay", "-1"), ("expunge.delay", HUGE), ("cluster.cpu.allocated.capacity.disablethreshold", "nan"),
    ("pool.storage.allocated.capacity.disablethreshold", "2"), ("storage.overprovisioning.factor", "inf"),
    ("cpu.overprovisioning.factor", "0"), ("mem.overprovisioning.factor", "1e308"),
]


def test_settings_the_cloud_cannot_work_with_are_refused(cloud, admin):
    # each of these was taken, and then broke every list (page size), the periodic thread
    # (ping.interval, expunge.delay) or every deploy (thresholds, factors)
    for name, value in BROKEN_SETTINGS:
        with cloud.db.transaction() as session:
            before = session.get(Configuration, name).value
        exc = refused(admin, "updateConfiguration", name=name, value=value)
        assert exc.status == 431 and name in exc.body["errortext"] and "takes a value" in exc.body["errortext"]
        with cloud.db.transaction() as session:
            assert session.get(Configuration, name).value == before
    assert admin("listServiceOfferings")["count"] >= 1


def test_overcommit_ratios_are_bounded(admin, zone):
    exc = refused(admin, "updateCluster", id=zone["cluster"], cpuovercommitratio="1e308")
    assert exc.status == 431 and "cpuovercommitratio: must be at most 1000" in exc.body["errortext"]
    assert admin("listHosts")["host"][0]["cpuwithoverprovisioning"] == "8000"  # listHosts answered 530 after it


def test_a_refused_configure_simulator_changes_nothing(cloud, admin, zone):
    sim = cloud.plugins.hypervisors["simulator"]
    host, key = zone["hosts"][0], zone["host_keys"][0]
    assert refused(admin, "configureSimulator", hostid=host, state="down", name="bogus").status == 431
    sim.inject(key, "stop", count=1, message="kept")
    assert refused(admin, "configureSimulator", hostid=host, clear=True, state="sideways").status == 431
    exc = refused(admin, "configureSimulator", hostid=host, name="ping", delay="1e308", fail=False)
    assert exc.status == 431 and "parameter delay: must be at most" in exc.body["errortext"]
    with sim.state.cursor() as cur:
        up = cur.execute("SELECT up FROM sim_host WHERE url = ?", (key,)).fetchone()
        faults = cur.execute("SELECT action, message FROM sim_fault WHERE host_url = ?", (key,)).fetchall()
    assert up in (None, (1,)), "the host was taken down by a refused request"
    assert faults == [("stop", "kept")], "faults were cleared or added by refused requests"
