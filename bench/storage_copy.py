"""Benchmark: the NFS storage driver's data paths against the plain tools doing the same copy.

1. Template copy into a pool (``NfsStorage.ensure_template``, what the first root
   volume from a template pays) vs ``cp`` of the same file, and ``cp`` + ``sync``
   (the driver fsyncs before publishing), on a local pool; vs ``nfs-cp`` (the
   userspace NFS equivalent of cp) on a libnfs pool.
2. Snapshot backup to the image store (``NfsStorage.backup_snapshot``) vs
   ``qemu-img convert`` of the same volume to the same store by hand.

The libnfs rows run against a real nfs-ganesha server started here (skipped,
with the reason, when it cannot run). Each side runs ``--repeat`` times, taking
turns at going first; the best time of each is kept. Prints seconds, MB/s and
ratios (driver / tool: 1.0 means no overhead); asserts nothing. Run from the repository root:

    PYTHONPATH=. python bench/storage_copy.py [--size-mib 256] [--repeat 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from core.drivers import PoolRef, TemplateRef, VolumeSpec
from plugins.storage_nfs import urls
from plugins.storage_nfs.driver import NfsStorage
from plugins.storage_nfs.libnfs import NfsClient
from tests.plugins.storage_nfs.ganesha import GaneshaUnavailable, start_server

MiB = 1024 * 1024


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def best(samples: list[float]) -> float:
    # the minimum is the run least disturbed by the rest of the machine
    return min(samples)


def make_template(path: Path, size_mib: int) -> None:
    """A qcow2 with ``size_mib`` MiB of allocated data (random bytes, so nothing is sparse)."""
    raw = path.with_suffix(".raw")
    with open(raw, "wb") as out:
        for _ in range(size_mib):
            out.write(os.urandom(MiB))
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    raw.unlink()


def remove(target: str) -> None:
    """Delete a file the tool made, through NFS for an nfs:// URL: deleting it in the
    exported directory behind ganesha's back leaves ganesha's cache naming a dead
    file, and the next CREATE of that name fails with NFS3ERR_STALE."""
    if target.startswith("nfs://"):
        location = urls.parse(target.rsplit("/", 1)[0])
        with NfsClient(location.server, location.export) as nfs:
            nfs.unlink(target.rsplit("/", 1)[1])
    else:
        os.unlink(target)


def connect(driver: NfsStorage, url: str) -> PoolRef:
    return PoolRef(str(uuid.uuid4()), url.rsplit("/", 1)[-1], url, driver.connect_pool(url, {}).details)


def template_ref(store: PoolRef, template: Path) -> TemplateRef:
    """A new template uuid for the file already on the store (a fresh copy each time)."""
    rel = str(template.relative_to(store.details["mountpoint"]))
    return TemplateRef(str(uuid.uuid4()), "bench", f"file://{template}", "QCOW2", None, None, install_path=rel,
                       store_url=store.url, store_details=store.details)


def alternate(repeat: int, ours, theirs) -> tuple[float, float]:
    """Run the two sides ``repeat`` times each, swapping which goes first every round:
    whichever runs right after the other's file was deleted pays for the freed blocks,
    which is not what is being measured."""
    ours_times, theirs_times = [], []
    for round_ in range(repeat):
        if round_ % 2:
            theirs_times.append(theirs())
            ours_times.append(ours())
        else:
            ours_times.append(ours())
            theirs_times.append(theirs())
    return best(ours_times), best(theirs_times)


def bench_template_copy(driver: NfsStorage, pool: PoolRef, store: PoolRef, template: Path, repeat: int,
                        tool: list[str], target: str) -> tuple[float, float]:
    def ours() -> float:
        ref = template_ref(store, template)
        seconds = timed(lambda: driver.ensure_template(pool, ref))
        driver.delete_template_copy(pool, ref)
        return seconds

    def theirs() -> float:
        seconds = timed(lambda: subprocess.run([*tool, str(template), target], check=True, capture_output=True))
        remove(target)
        return seconds

    return alternate(repeat, ours, theirs)


def bench_backup(driver: NfsStorage, pool: PoolRef, store: PoolRef, template_store: PoolRef, template: Path,
                 repeat: int) -> tuple[float, float]:
    ref = template_ref(template_store, template)
    volume = VolumeSpec(str(uuid.uuid4()), "bench", "ROOT", 0, 0, pool.url, pool.details)
    volume.path = driver.create_volume(pool, volume, ref)
    target = (f"{store.details['url_prefix']}/by-hand.qcow2" if store.details["access"] == "libnfs"
              else os.path.join(store.details["mountpoint"], "by-hand.qcow2"))

    def ours() -> float:
        made: list[str] = []
        seconds = timed(lambda: made.append(driver.backup_snapshot(pool, volume, store, str(uuid.uuid4()))))
        driver.delete_snapshot_backup(store, made[0])
        return seconds

    def theirs() -> float:
        seconds = timed(lambda: subprocess.run(
            ["qemu-img", "convert", "-q", "-f", "qcow2", "-O", "qcow2", volume.path, target], check=True))
        remove(target)
        return seconds

    try:
        return alternate(repeat, ours, theirs)
    finally:
        driver.delete_volume(pool, volume)
        driver.delete_template_copy(pool, ref)


def report(label: str, size_mib: int, ours: float, theirs: float, tool: str) -> None:
    print(f"{label:<34} driver {ours:7.3f} s {size_mib / ours:8.1f} MB/s | {tool:<16} {theirs:7.3f} s "
          f"{size_mib / theirs:8.1f} MB/s | ratio {ours / theirs:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="strato-bench-storage-") as scratch:
        base = Path(scratch)
        local_pool_dir, local_store_dir = base / "pool", base / "store"
        local_pool_dir.mkdir()
        # the template sits on a local image store, as register_template would have put it
        template = local_store_dir / "template" / "tmpl" / "0" / "bench" / "bench.qcow2"
        template.parent.mkdir(parents=True)
        make_template(template, args.size_mib)
        driver = NfsStorage({"mount_root": str(base / "mnt")})
        print(f"template: {args.size_mib} MiB of data, best of {args.repeat}")

        pool = connect(driver, f"file://{local_pool_dir}")
        store = connect(driver, f"file://{local_store_dir}")
        target = str(local_pool_dir / "by-cp.qcow2")
        ours, theirs = bench_template_copy(driver, pool, store, template, args.repeat, ["cp"], target)
        report("template copy, local pool", args.size_mib, ours, theirs, "cp")
        # the driver fsyncs the copy before publishing it; cp alone leaves it in the page cache
        ours, theirs = bench_template_copy(driver, pool, store, template, args.repeat,
                                           ["sh", "-c", 'cp "$0" "$1" && sync "$1"'], target)
        report("template copy, local pool", args.size_mib, ours, theirs, "cp + sync")
        ours, theirs = bench_backup(driver, pool, store, store, template, args.repeat)
        report("snapshot backup, local store", args.size_mib, ours, theirs, "qemu-img convert")

        server = None
        try:
            server = start_server(base / "nfs")
        except GaneshaUnavailable as exc:
            print(f"libnfs rows skipped: {exc}")
        if server is not None:
            try:
                for name in ("pool", "store"):
                    server.mkdir(name)
                nfs_pool = connect(driver, server.url("pool"))
                nfs_store = connect(driver, server.url("store"))
                ours, theirs = bench_template_copy(driver, nfs_pool, store, template, args.repeat, ["nfs-cp"],
                                                   server.url("pool/by-nfs-cp.qcow2"))
                report(f"template copy, {nfs_pool.details['access']} pool", args.size_mib, ours, theirs, "nfs-cp")
                ours, theirs = bench_backup(driver, nfs_pool, nfs_store, store, template, args.repeat)
                report(f"snapshot backup, {nfs_store.details['access']} store", args.size_mib, ours, theirs,
                       "qemu-img convert")
            finally:
                driver.close()
                server.shutdown()
        driver.close()


if __name__ == "__main__":
    main()
