"""The contract every hypervisor driver passes: a pytest suite to subclass.

    from core.testing import HypervisorDriverContract

    class TestMyDriver(HypervisorDriverContract):
        @pytest.fixture
        def driver(self): ...            # a HypervisorDriver instance
        @pytest.fixture
        def host_url(self): ...          # a URL connect_host accepts, of a host that is up
        @pytest.fixture
        def vm_spec(self): ...           # factory: vm_spec() -> a new VmSpec that can start on it

The fixtures may also come from a conftest. ``vm_spec`` must clean up whatever it made
(volumes) at teardown; the suite destroys every VM it started. Optional fixtures, with
their defaults (override them in the subclass):

- ``host_credentials`` -> ``(username, password)`` for connect_host, default ``(None, None)``
- ``bad_host_urls`` -> URLs connect_host must refuse with ``InvalidParameterError`` or
  ``ResourceUnavailableError``; default: an unknown scheme and an empty URL. Add an
  unreachable host of the driver's own scheme.
- ``broken_vm_spec`` -> a VmSpec whose start fails on the host (a missing disk, say)
- ``foreign_vm`` -> the name of a VM made on the host behind the driver's back

Tests needing an optional fixture that is not given skip, saying which fixture is missing.
What the suite holds drivers to is the docstrings of ``core.drivers.HypervisorDriver``.
"""

from __future__ import annotations

import uuid

import pytest

from core.drivers import HostInfo, HostRef, HypervisorDriver, PowerState, VmSpec, VmStats
from core.errors import InvalidParameterError, ResourceUnavailableError, StratoError

CAPABILITY_KEYS = {"live_migration", "volume_hotplug", "vm_snapshots", "stats", "max_guests_per_host"}


class HypervisorDriverContract:
    """Subclass it (name the subclass ``Test...``) and provide the fixtures above."""

    # -- optional fixtures (override in the subclass) ----------------------------------

    @pytest.fixture
    def host_credentials(self) -> tuple[str | None, str | None]:
        return (None, None)

    @pytest.fixture
    def bad_host_urls(self) -> list[str]:
        return ["nosuchscheme://nowhere.invalid/", ""]

    @pytest.fixture
    def broken_vm_spec(self) -> VmSpec:
        pytest.skip("the driver's test gives no broken_vm_spec fixture (a VmSpec whose start fails)")

    @pytest.fixture
    def foreign_vm(self) -> str:
        pytest.skip("the driver's test gives no foreign_vm fixture (a VM made behind the driver's back)")

    # -- the suite's own fixtures ------------------------------------------------------

    @pytest.fixture
    def host(self, driver: HypervisorDriver, host_url: str, host_credentials) -> HostRef:
        info = driver.connect_host(host_url, *host_credentials)
        ref = HostRef(uuid=str(uuid.uuid4()), name=info.name, url=host_url, details=dict(info.details))
        yield ref
        driver.disconnect_host(ref)

    @pytest.fixture
    def start(self, driver: HypervisorDriver, host: HostRef):
        """start(spec) starts a VM and destroys it at teardown, whatever the test did."""
        started: list[VmSpec] = []

        def start(spec: VmSpec) -> VmSpec:
            started.append(spec)
            details = driver.start_vm(host, spec)
            assert isinstance(details, dict)
            return spec

        yield start
        for spec in started:
            driver.destroy_vm(host, spec)

    @pytest.fixture
    def running(self, start, vm_spec) -> VmSpec:
        return start(vm_spec())

    # -- the driver class ----------------------------------------------------------------

    def test_declares_name_type_and_known_capabilities(self, driver: HypervisorDriver):
        assert isinstance(driver.name, str) and driver.name
        assert isinstance(driver.hypervisor_type, str) and driver.hypervisor_type
        assert set(driver.capabilities) <= CAPABILITY_KEYS, set(driver.capabilities) - CAPABILITY_KEYS

    # -- hosts -------------------------------------------------------------------------

    def test_connect_host_reports_positive_capacity(self, driver, host_url, host_credentials):
        info = driver.connect_host(host_url, *host_credentials)
        assert isinstance(info, HostInfo)
        assert info.name
        assert info.cpu_sockets > 0
        assert info.cpu_cores > 0
        assert info.cpu_speed_mhz > 0
        assert info.memory_bytes > 0

    def test_connect_host_refuses_bad_urls(self, driver, bad_host_urls, host_credentials):
        assert bad_host_urls
        for url in bad_host_urls:
            with pytest.raises((InvalidParameterError, ResourceUnavailableError)) as caught:
                driver.connect_host(url, *host_credentials)
            assert caught.value.message, f"{url!r}: the error says nothing"

    def test_ping_of_a_connected_host_answers(self, driver, host):
        assert driver.ping_host(host) is True

    # -- VM lifecycle ----------------------------------------------------------------------

    def test_start_powers_on(self, driver, host, running):
        assert driver.power_states(host).get(running.instance_name) == PowerState.ON

    def test_stop_powers_off(self, driver, host, running):
        driver.stop_vm(host, running)
        # the contract lets the definition stay (then it is off) or go
        assert driver.power_states(host).get(running.instance_name, PowerState.OFF) == PowerState.OFF

    def test_forced_stop_powers_off(self, driver, host, running):
        driver.stop_vm(host, running, force=True)
        assert driver.power_states(host).get(running.instance_name, PowerState.OFF) == PowerState.OFF

    def test_stop_of_a_stopped_vm_succeeds(self, driver, host, running):
        driver.stop_vm(host, running, force=True)
        driver.stop_vm(host, running)
        assert driver.power_states(host).get(running.instance_name, PowerState.OFF) == PowerState.OFF

    def test_stop_of_a_missing_vm_succeeds(self, driver, host, vm_spec):
        spec = vm_spec()
        driver.stop_vm(host, spec)
        driver.stop_vm(host, spec, force=True)
        assert spec.instance_name not in driver.power_states(host)

    def test_start_after_stop_powers_on_again(self, driver, host, running):
        driver.stop_vm(host, running, force=True)
        driver.start_vm(host, running)
        assert driver.power_states(host).get(running.instance_name) == PowerState.ON

    def test_reboot_keeps_the_vm_on(self, driver, host, running):
        driver.reboot_vm(host, running)
        assert driver.power_states(host).get(running.instance_name) == PowerState.ON

    def test_reboot_of_a_stopped_vm_raises(self, driver, host, running):
        driver.stop_vm(host, running, force=True)
        with pytest.raises(StratoError):
            driver.reboot_vm(host, running)

    def test_reboot_of_a_missing_vm_raises(self, driver, host, vm_spec):
        with pytest.raises(StratoError):
            driver.reboot_vm(host, vm_spec())

    def test_destroy_removes_the_vm_and_is_idempotent(self, driver, host, running):
        driver.destroy_vm(host, running)
        assert running.instance_name not in driver.power_states(host)
        driver.destroy_vm(host, running)
        assert running.instance_name not in driver.power_states(host)

    def test_destroy_of_a_never_started_vm_succeeds(self, driver, host, vm_spec):
        spec = vm_spec()
        driver.destroy_vm(host, spec)
        assert spec.instance_name not in driver.power_states(host)

    def test_destroy_of_a_stopped_vm_removes_it(self, driver, host, running):
        driver.stop_vm(host, running, force=True)
        driver.destroy_vm(host, running)
        assert running.instance_name not in driver.power_states(host)

    def test_power_states_list_a_vm_strato_does_not_know(self, driver, host, foreign_vm):
        states = driver.power_states(host)
        assert foreign_vm in states
        assert isinstance(states[foreign_vm], PowerState)

    def test_power_states_are_power_states(self, driver, host, running):
        states = driver.power_states(host)
        assert states and all(isinstance(name, str) and isinstance(s, PowerState) for name, s in states.items())

    def test_start_failure_raises_a_strato_error_and_leaves_nothing(self, driver, host, broken_vm_spec):
        with pytest.raises(StratoError) as caught:
            driver.start_vm(host, broken_vm_spec)
        assert caught.value.message
        assert broken_vm_spec.instance_name not in driver.power_states(host)
        # and nothing stops a later destroy from reporting success
        driver.destroy_vm(host, broken_vm_spec)

    # -- optional capabilities -----------------------------------------------------------

    def test_stats_of_a_running_vm(self, driver, host, running):
        if not driver.capabilities.get("stats"):
            pytest.skip(f"{driver.name} does not declare the stats capability")
        stats = driver.vm_stats(host, running)
        assert isinstance(stats, VmStats)
        assert 0.0 <= stats.cpu_used_percent <= 100.0
        assert stats.memory_kbs > 0
        assert min(stats.disk_read_bytes, stats.disk_write_bytes,
                   stats.network_read_bytes, stats.network_write_bytes) >= 0

    # VM snapshots (capability vm_snapshots): see HypervisorDriver.create_vm_snapshot and friends

    def _needs_vm_snapshots(self, driver) -> None:
        if not driver.capabilities.get("vm_snapshots"):
            pytest.skip(f"{driver.name} does not declare the vm_snapshots capability")

    def test_vm_snapshot_of_a_running_vm_create_list_revert_delete(self, driver, host, running):
        self._needs_vm_snapshots(driver)
        driver.create_vm_snapshot(host, running, "contract-1", "the first")
        driver.create_vm_snapshot(host, running, "contract-2")
        assert sorted(driver.list_vm_snapshots(host, running)) == ["contract-1", "contract-2"]
        driver.revert_vm_snapshot(host, running, "contract-1")
        # taken running (with its memory): running after the revert
        assert driver.power_states(host).get(running.instance_name) == PowerState.ON
        driver.delete_vm_snapshot(host, running, "contract-1")
        assert driver.list_vm_snapshots(host, running) == ["contract-2"]
        driver.delete_vm_snapshot(host, running, "contract-1")  # idempotent
        assert driver.list_vm_snapshots(host, running) == ["contract-2"]

    def test_vm_snapshot_of_a_stopped_vm_reverts_to_stopped(self, driver, host, running):
        self._needs_vm_snapshots(driver)
        driver.stop_vm(host, running, force=True)
        driver.create_vm_snapshot(host, running, "contract-cold")
        driver.start_vm(host, running)
        driver.revert_vm_snapshot(host, running, "contract-cold")
        assert driver.power_states(host).get(running.instance_name, PowerState.OFF) == PowerState.OFF
        assert driver.list_vm_snapshots(host, running) == ["contract-cold"]

    def test_vm_snapshot_failures_raise_and_leave_no_snapshot(self, driver, host, running, vm_spec):
        self._needs_vm_snapshots(driver)
        with pytest.raises(StratoError):
            driver.revert_vm_snapshot(host, running, "contract-never-taken")
        with pytest.raises(StratoError):
            driver.create_vm_snapshot(host, vm_spec(), "contract-of-nothing")  # a VM the host does not have
        driver.create_vm_snapshot(host, running, "contract-once")
        with pytest.raises(StratoError):
            driver.create_vm_snapshot(host, running, "contract-once")  # the name is taken
        assert driver.list_vm_snapshots(host, running) == ["contract-once"]
