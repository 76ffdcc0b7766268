"""Helpers for testing plugins: the driver contract suites a plugin's tests subclass."""

from .hypervisor_contract import HypervisorDriverContract

__all__ = ["HypervisorDriverContract"]
