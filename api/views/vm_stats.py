"""Statistics fields of a VM: UserVmResponse's and VmMetricsResponse's (CloudStack's metrics plugin)."""

from __future__ import annotations

from core.drivers import VmStats

STATS_FIELDS = {
    "cpuused": "the amount of the VM's CPU used, in percent", "memorykbs": "the memory used by the VM, in KiB",
    "networkkbsread": "the VM's network read in KiB", "networkkbswrite": "the VM's network write in KiB",
    "diskkbsread": "the VM's disk read in KiB", "diskkbswrite": "the VM's disk write in KiB",
}

METRICS_FIELDS = {
    "ipaddress": "the VM's primary IP address", "cputotal": "the total CPU capacity in GHz",
    "memorytotal": "the total memory capacity in GiB", "networkread": "network read in MiB",
    "networkwrite": "network write in MiB", "diskread": "disk read in MiB", "diskwrite": "disk write in MiB",
}


def stats_fields(stats: VmStats) -> dict:
    """UserVmResponse's statistics (KiB counters; CPU as CloudStack writes it, "12.34%")."""
    return {"cpuused": f"{stats.cpu_used_percent:.2f}%", "memorykbs": int(stats.memory_kbs),
            "networkkbsread": stats.network_read_bytes // 1024, "networkkbswrite": stats.network_write_bytes // 1024,
            "diskkbsread": stats.disk_read_bytes // 1024, "diskkbswrite": stats.disk_write_bytes // 1024}


def metrics_fields(view: dict) -> dict:
    """VmMetricsResponse's summaries of a VM view (with or without its stats fields)."""
    data = {"cputotal": f"{view['cpunumber'] * view['cpuspeed'] / 1000.0:.1f} Ghz",
            "memorytotal": f"{view['memory'] / 1024.0:.2f} GiB"}
    if view.get("nic") and view["nic"][0].get("ipaddress"):
        data["ipaddress"] = view["nic"][0]["ipaddress"]
    for kbs, mib in (("networkkbsread", "networkread"), ("networkkbswrite", "networkwrite"),
                     ("diskkbsread", "diskread"), ("diskkbswrite", "diskwrite")):
        if kbs in view:
            data[mib] = f"{view[kbs] / 1024.0:.2f} MiB"
    return data
