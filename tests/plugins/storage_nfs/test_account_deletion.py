"""deleteAccount on real files: a pool and an image store on local directories (the nfs
plugin), simulated hosts. Everything the account made on them is gone afterwards."""

from __future__ import annotations

import pytest

from core.orchestration import snapshots as snapshot_ops

from . import test_api_storage as api_storage
from .helpers import leftovers
from .test_api_storage import _small, deploy, files, register

#: the storage API suite's cloud on nfs storage and its zone (fixtures)
settings, site = api_storage.settings, api_storage.site


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_delete_account_leaves_no_file_of_it(cloud, admin, app, site, http_files, images):
    from tests.helpers import ApiClient

    account = admin("createAccount", username="zoe", password="pw", email="z@example.com", firstname="Z",
                    lastname="T", accounttype=0)["account"]
    keys = admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    zoe = ApiClient(app, keys["apikey"], keys["secretkey"])
    template = register(zoe, cloud, site, http_files, images["qcow2"], name="tiny")
    vm = deploy(zoe, cloud, site, template["id"], name="web")
    root = zoe("listVolumes", virtualmachineid=vm["id"], type="ROOT")["volume"][0]
    data = zoe.wait(zoe("createVolume", diskofferingid=_small(zoe), zoneid=site["zone"],
                        virtualmachineid=vm["id"]))["volume"]
    loose = zoe.wait(zoe("createVolume", diskofferingid=_small(zoe), zoneid=site["zone"],
                         virtualmachineid=vm["id"]))["volume"]
    zoe.wait(zoe("detachVolume", id=loose["id"]))
    taken = [zoe.wait(zoe("createSnapshot", volumeid=v["id"]))["snapshot"] for v in (root, data, loose)]
    zoe.wait(zoe("createVolume", snapshotid=taken[0]["id"], name="restored"))
    zoe("createSnapshotPolicy", volumeid=data["id"], intervaltype="HOURLY", schedule="30", timezone="UTC",
        maxsnaps=1)
    zoe.wait(zoe("createVMSnapshot", virtualmachineid=vm["id"], snapshotmemory=True))
    stored = files(site["store_dir"])
    assert all(any(s["id"] in f for f in stored) for s in taken), "three backups on the store"
    assert len([f for f in files(site["pool_dir"]) if f.endswith(".qcow2") and "/templates/" not in f]) == 4

    admin.wait(admin("deleteAccount", id=account["id"]))
    snapshot_ops.storage_pass(cloud)  # the pool's copy of the deleted template goes once no volume uses it
    assert files(site["pool_dir"], site["store_dir"]) == []
    assert leftovers(site["pool_dir"]) == [] and leftovers(site["store_dir"]) == []
    assert admin("listVolumes", listall=True) == {} and admin("listSnapshots", listall=True) == {}
