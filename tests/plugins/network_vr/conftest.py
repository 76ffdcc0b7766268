"""Fixtures for the virtual router's tests: a cloud with the ``vr`` plugin enabled, the
namespace world (``world.py``), and an Advanced zone built through the API.

The tests need root (namespaces, bridges, nftables) and the tools of scripts/apt/network.txt;
without them they skip, saying why (also in the warnings summary).
"""

from __future__ import annotations

import os
import warnings

import pytest

from tests.helpers import ApiClient

from . import world as world_module


def pytest_configure(config):
    # test_kvm_guest.py reuses the KVM plugin's fixtures, whose module marks its tests "kvm"
    config.addinivalue_line("markers", "kvm: needs the real libvirtd and QEMU (scripts/services/libvirtd.sh)")


def skip_loudly(reason: str):
    warnings.warn(pytest.PytestWarning(f"network_vr: {reason}"))
    pytest.skip(reason)


@pytest.fixture(scope="session")
def vr_host():
    """This machine can run routers: root and the tools. Sweeps leftovers before and after."""
    if os.geteuid() != 0:
        skip_loudly("the virtual router's tests need root (network namespaces, bridges, nftables)")
    missing = world_module.missing_tools()
    if missing:
        skip_loudly(f"{', '.join(missing)} not installed (scripts/apt/network.txt; run scripts/install-system.sh)")
    world_module.sweep()
    yield
    world_module.sweep()


@pytest.fixture
def world(vr_host):
    built = world_module.World()
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def vr_settings(settings, tmp_path):
    settings.plugins = {**settings.plugins, "network": ["vr"]}
    settings.plugin_config = {**settings.plugin_config,
                              "vr": {"prefix": world_module.ROUTER_PREFIX, "state_dir": str(tmp_path / "vr")}}
    return settings


@pytest.fixture
def vr_cloud(vr_host, vr_settings):
    from core.cloud import Cloud

    cloud = Cloud(vr_settings, migrate=False)
    cloud.start()
    try:
        yield cloud
    finally:
        _tear_down_routers(cloud)
        cloud.close()


def _tear_down_routers(cloud) -> None:
    """Remove every router this cloud made (what a test leaves up)."""
    from sqlalchemy import select

    from core.model import Network
    from core.orchestration.networking import network_spec

    element = cloud.plugins.network.get("vr")
    with cloud.db.transaction() as session:
        specs = [network_spec(session, n, router_state="Stopped")
                 for n in session.scalars(select(Network).where(Network.provider == "vr"))]
    for spec in specs:
        element.shutdown_network(spec)


@pytest.fixture
def vr_app(vr_cloud):
    from api.app import create_app

    return create_app(vr_cloud)


@pytest.fixture
def vr_admin(vr_app, vr_cloud) -> ApiClient:
    return ApiClient.for_user(vr_app, vr_cloud, "admin")
