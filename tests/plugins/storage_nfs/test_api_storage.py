"""The storage API on the real NFS plugin: a cloud with ``storage = ["simulator", "nfs"]``,
simulated hosts, and its primary pool and image store on a local directory, on a real
nfs-ganesha export through libnfs, and (where the kernel has NFS) on a kernel mount
(``backend`` in conftest.py; that one is skipped here with its reason).

The files behind the pool and the store are looked at directly, and images are opened
with qemu-img/qemu-io through the paths the API reports, as a hypervisor would.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from core.orchestration import snapshots as snapshot_ops
from tests.core.factories import add_host, zone_with_cluster
from tests.helpers import ApiClient, ApiError, make_account, offering_id

from .helpers import image_info, leftovers, qemu_io

GiB = 1024**3
MiB = 1024**2


@pytest.fixture
def settings(settings, backend, tmp_path):
    """The test cloud's settings with the nfs plugin enabled, reaching storage the backend's way."""
    settings.plugins = {**settings.plugins, "storage": ["simulator", "nfs"]}
    settings.plugin_config = {**settings.plugin_config, "nfs": {
        "access": backend.mode, "mount_root": str(tmp_path / "mnt"), "nfs_timeout_ms": 5000, "download_timeout": 10}}
    return settings


@pytest.fixture
def site(cloud, admin, backend):
    """A zone of simulated hosts whose primary pool and image store are NFS storage."""
    with cloud.db.transaction() as session:
        zone, _, cluster = zone_with_cluster(session, name="nfs-zone")
        for name in ("h0", "h1"):
            add_host(session, cluster, name)
        ids = {"zone": zone.uuid, "cluster": cluster.uuid}
    pool_url, pool_dir = backend.new("pool")
    store_url, store_dir = backend.new("store")
    pool = admin("createStoragePool", name="nfs-pool", url=pool_url, zoneid=ids["zone"],
                 clusterid=ids["cluster"])["storagepool"]
    store = admin("addImageStore", name="nfs-store", url=store_url, zoneid=ids["zone"],
                  provider="NFS")["imagestore"]
    assert pool["provider"] == "nfs" and store["providername"] == "nfs"
    return {**ids, "pool": pool["id"], "pool_dir": pool_dir, "store_dir": store_dir}


@pytest.fixture
def alice(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "alice"))


def fails(status, call, *args, **kw) -> dict:
    with pytest.raises(ApiError) as err:
        call(*args, **kw)
    assert err.value.status == status, err.value.body
    return err.value.body


def files(*directories: Path) -> list[str]:
    """Every regular file under the directories (empty directories do not count)."""
    return sorted(str(p) for d in directories for p in d.rglob("*") if p.is_file())


def wait_ready(client, cloud, template_id, kind="template", timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        cloud.jobs.join()
        if kind == "iso":
            rows = client("listIsos", isofilter="self", id=template_id).get("iso", [])
        else:
            rows = client("listTemplates", templatefilter="self", id=template_id).get("template", [])
        if rows and (rows[0]["isready"] or "Downloaded" not in rows[0]["status"]) or time.monotonic() > deadline:
            return rows[0]
        time.sleep(0.1)


def register(client, cloud, site, http_files, data, *, name, fmt="QCOW2", checksum=None, url=None) -> dict:
    url = url or http_files.add(f"{name}-{time.monotonic_ns()}.{fmt.lower()}", data)
    if fmt == "ISO":
        made = client("registerIso", name=name, url=url, zoneid=site["zone"], checksum=checksum)["iso"][0]
        return wait_ready(client, cloud, made["id"], "iso")
    made = client("registerTemplate", name=name, url=url, zoneid=site["zone"], format=fmt, hypervisor="Simulator",
                  checksum=checksum)["template"][0]
    return wait_ready(client, cloud, made["id"])


def deploy(client, cloud, site, template_id, **kw) -> dict:
    return client.wait(client("deployVirtualMachine", zoneid=site["zone"], serviceofferingid=offering_id(cloud),
                              templateid=template_id, **kw))["virtualmachine"]


def path_of(admin, volume_id) -> str:
    return admin("listVolumes", id=volume_id, listall=True)["volume"][0]["path"]


def test_template_vm_snapshot_revert_template_and_everything_deleted(cloud, admin, alice, site, http_files, images):
    md5 = hashlib.md5(images["qcow2"].read_bytes()).hexdigest()
    template = register(alice, cloud, site, http_files, images["qcow2"], name="tiny", checksum=md5)
    assert template["isready"] is True and template["size"] == 32 * MiB, template["status"]

    vm = deploy(alice, cloud, site, template["id"], name="web")
    root = alice("listVolumes", virtualmachineid=vm["id"], type="ROOT")["volume"][0]
    root_path = path_of(admin, root["id"])
    info = image_info(root_path)
    assert info["format"] == "qcow2" and info["virtual-size"] == 32 * MiB
    assert info["backing-filename"].endswith(f"templates/{template['id']}.qcow2"), "an overlay on the pool's copy"
    qemu_io(root_path, "read -P 0xab 0 64k")  # the template's data shows through
    qemu_io(root_path, "write -P 0x11 1M 64k")  # what the guest wrote before the snapshot

    data = alice.wait(alice("createVolume", diskofferingid=_small(alice), zoneid=site["zone"],
                            virtualmachineid=vm["id"]))["volume"]
    data_path = path_of(admin, data["id"])
    assert image_info(data_path)["virtual-size"] == 5 * GiB and data["deviceid"] == 1

    taken = alice.wait(alice("createSnapshot", volumeid=root["id"]))["snapshot"]
    assert taken["state"] == "BackedUp" and taken["physicalsize"] > 0
    backups = [f for f in files(site["store_dir"]) if taken["id"] in f]
    assert len(backups) == 1 and "backing-filename" not in image_info(backups[0]), "standalone on the store"
    qemu_io(root_path, "write -P 0x22 1M 64k")  # after the snapshot

    fails(431, alice, "revertSnapshot", id=taken["id"])  # the VM runs
    alice.wait(alice("stopVirtualMachine", id=vm["id"]))
    alice.wait(alice("revertSnapshot", id=taken["id"]))
    root_path = path_of(admin, root["id"])
    qemu_io(root_path, "read -P 0x11 1M 64k")
    qemu_io(root_path, "read -P 0xab 0 64k")

    grown = alice.wait(alice("resizeVolume", id=data["id"], size=6))["volume"]
    assert grown["size"] == 6 * GiB and image_info(data_path)["virtual-size"] == 6 * GiB

    restored = alice.wait(alice("createVolume", snapshotid=taken["id"], name="restored"))["volume"]
    qemu_io(path_of(admin, restored["id"]), "read -P 0x11 1M 64k")

    os_type = alice("listOsTypes")["ostype"][0]["id"]
    made = alice.wait(alice("createTemplate", name="golden", ostypeid=os_type, snapshotid=taken["id"]))["template"]
    assert made["isready"] is True
    made_files = [f for f in files(site["store_dir"]) if f.endswith(f"{made['id']}/{made['id']}.qcow2")]
    assert len(made_files) == 1 and image_info(made_files[0])["format"] == "qcow2"
    from_vm = alice.wait(alice("createTemplate", name="from-vm", ostypeid=os_type, volumeid=root["id"]))["template"]
    assert from_vm["isready"] is True

    second = deploy(alice, cloud, site, made["id"], name="clone")
    clone_root = alice("listVolumes", virtualmachineid=second["id"], type="ROOT")["volume"][0]
    qemu_io(path_of(admin, clone_root["id"]), "read -P 0x11 1M 64k")  # the snapshot's data, via the new template

    # delete everything: nothing may stay on the pool or the store
    for machine in (vm, second):
        admin.wait(admin("destroyVirtualMachine", id=machine["id"], expunge=True))
    for volume in (data, restored):
        assert alice("deleteVolume", id=volume["id"]) == {"success": True}
    alice.wait(alice("deleteSnapshot", id=taken["id"]))
    for each in (template, made, from_vm):
        alice.wait(alice("deleteTemplate", id=each["id"]))
    snapshot_ops.storage_pass(cloud)  # the pool's copies of the deleted templates go
    assert files(site["pool_dir"], site["store_dir"]) == []
    assert alice("listVolumes") == {} and alice("listSnapshots") == {}


def _small(client):
    return next(o["id"] for o in client("listDiskOfferings")["diskoffering"] if o["name"] == "Small")


def test_bad_templates_end_in_an_error_state_with_no_partial_file(cloud, alice, site, http_files, images):
    cases = [
        (images["qcow2"], {"url": "http://127.0.0.1:9/nothing-listens-here.qcow2"}, "127.0.0.1"),
        (images["qcow2"], {"checksum": "{md5}" + "0" * 32}, "checksum"),
        (images["junk"], {}, "no disk image"),
        (images["junk"], {"fmt": "ISO"}, "not an ISO 9660 image"),
    ]
    for data, options, reason in cases:
        row = register(alice, cloud, site, http_files, data, name=f"bad-{len(reason)}", **options)
        assert row["isready"] is False and reason in row["status"], row["status"]
    assert files(site["store_dir"]) == [] and leftovers(site["store_dir"]) == []
    iso = register(alice, cloud, site, http_files, images["iso"], name="good-iso", fmt="ISO")
    assert iso["isready"] is True and iso["size"] == images["iso"].stat().st_size


def test_extract_and_copy_serve_and_move_the_real_file(cloud, admin, alice, site, http_files, images, backend, app):
    template = register(admin, cloud, site, http_files, images["qcow2"], name="shared")
    on_store = [Path(f) for f in files(site["store_dir"]) if template["id"] in f]
    assert len(on_store) == 1
    fails(531, alice, "extractTemplate", id=template["id"], mode="HTTP_DOWNLOAD")  # not hers
    extracted = admin.wait(admin("extractTemplate", id=template["id"], mode="HTTP_DOWNLOAD"))["template"]
    assert extracted["state"] == "DOWNLOAD_URL_CREATED" and extracted["extractMode"] == "HTTP_DOWNLOAD"
    http = app.test_client()
    path = extracted["url"].split("://", 1)[1].split("/", 1)[1]
    got = http.get("/" + path)
    assert got.status_code == 200 and got.data == on_store[0].read_bytes()
    assert got.headers["Content-Length"] == str(on_store[0].stat().st_size)
    token = path.split("/")[2]
    assert http.get(f"/client/extract/{token[:-1]}x/{template['id']}.qcow2").status_code == 404

    with cloud.db.transaction() as session:
        zone, _, _ = zone_with_cluster(session, name="second")
        second = zone.uuid
    store2_url, store2_dir = backend.new("store2")
    admin("addImageStore", name="second-store", url=store2_url, zoneid=second, provider="NFS")
    copied = admin.wait(admin("copyTemplate", id=template["id"], destzoneid=second))["template"]
    assert copied["isready"] is True and copied["zoneid"] == second
    copies = [Path(f) for f in files(store2_dir)]
    assert len(copies) == 1 and copies[0].read_bytes() == on_store[0].read_bytes()
    assert leftovers(store2_dir) == []
    admin.wait(admin("deleteTemplate", id=template["id"]))
    assert files(site["store_dir"], store2_dir) == []
    assert http.get("/" + path).status_code == 404, "the link of a deleted template serves nothing"


def test_migrate_a_volume_between_nfs_pools(cloud, admin, alice, site, http_files, images, backend):
    template = register(alice, cloud, site, http_files, images["qcow2"], name="base")
    vm = deploy(alice, cloud, site, template["id"])
    data = alice.wait(alice("createVolume", diskofferingid=_small(alice), zoneid=site["zone"],
                            virtualmachineid=vm["id"]))["volume"]
    qemu_io(path_of(admin, data["id"]), "write -P 0x5a 0 64k")
    pool2_url, pool2_dir = backend.new("pool2")
    pool2 = admin("createStoragePool", name="nfs-pool-2", url=pool2_url, zoneid=site["zone"], scope="ZONE",
                  hypervisor="Simulator")["storagepool"]
    alice.wait(alice("detachVolume", id=data["id"]))
    moved = admin.wait(admin("migrateVolume", volumeid=data["id"], storageid=pool2["id"]))["volume"]
    assert moved["storageid"] == pool2["id"]
    new_path = path_of(admin, data["id"])
    qemu_io(new_path, "read -P 0x5a 0 64k")
    assert [f for f in files(pool2_dir)] and not [f for f in files(site["pool_dir"]) if data["id"] in f]
    assert leftovers(pool2_dir) == [] and leftovers(site["pool_dir"]) == []
