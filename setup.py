"""The ``strato`` distribution: the core, the API and the in-tree plugins.

The in-tree plugins are declared by entry point exactly as a third-party
distribution would declare its own (see tests/thirdparty_plugin/ for one).
"""

from setuptools import find_packages, setup

setup(
    name="strato",
    version="0.1.0",
    description="An Infrastructure-as-a-Service cloud orchestrator that speaks CloudStack's API",
    python_requires=">=3.11",
    packages=find_packages(include=["core*", "api*", "plugins*"]),
    include_package_data=True,
    package_data={"core": ["migrations/*.py", "migrations/versions/*.py", "alembic.ini"],
                  "api": ["ui/*", "ui/**/*"]},
    install_requires=[
        "pluggy>=1.5",
        "stevedore>=5.0",
        "Flask>=3.0",
        "marshmallow>=3.20",
        "SQLAlchemy>=2.0",
        "alembic>=1.13",
        "dramatiq[redis]>=1.16",
        "redis>=5.0",
        "click>=8.1",
        "rich>=13.0",
        "requests>=2.31",
    ],
    extras_require={
        "postgresql": ["psycopg2-binary>=2.9"],
        "mysql": ["PyMySQL>=1.1"],
        "kvm": ["libvirt-python>=9.0"],
        "test": ["pytest>=8", "hypothesis>=6.100", "cs>=3.0", "apache-libcloud>=3.8",
                 "psycopg2-binary>=2.9", "PyMySQL>=1.1", "aiosmtpd>=1.4"],
    },
    entry_points={
        "console_scripts": ["strato = api.cli:main"],
        "strato.hypervisors": [
            "simulator = plugins.hypervisor_simulator.hypervisor:SimulatorHypervisor",
            "kvm = plugins.hypervisor_kvm.driver:LibvirtDriver",
        ],
        "strato.storage": [
            "simulator = plugins.hypervisor_simulator.storage:SimulatorStorage",
            "nfs = plugins.storage_nfs.driver:NfsStorage",
        ],
        "strato.network": [
            "vr = plugins.network_vr.element:VirtualRouterElement",
        ],
        "strato.api": [
            "simulator = plugins.hypervisor_simulator.api",
        ],
    },
)
