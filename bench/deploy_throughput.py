"""Deploy throughput on simulated hosts: the embedded in-process worker against two
``strato worker`` processes over Redis. Usage: python bench/deploy_throughput.py [--vms N] [--db URL]
(--db must be a server database, e.g. PostgreSQL, for the Redis run to scale: SQLite serialises writers)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from common import report, scratch_cloud

from api.app import create_app
from api.inprocess import InProcessClient, user_keys
from tests.core.factories import simulated_zone
from tests.helpers import offering_id

STRATO = str(Path(sys.executable).with_name("strato"))


def deploy_all(cloud, count: int) -> float:
    admin = InProcessClient(create_app(cloud), *user_keys(cloud, "admin"))
    zone = simulated_zone(cloud, hosts=8, cores=64, memory_mib=512 * 1024)
    offering = offering_id(cloud)
    start = time.perf_counter()
    jobs = [admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering,
                  templateid=zone["template"]) for _ in range(count)]
    for job in jobs:
        assert admin.wait(job, timeout=600)["virtualmachine"]["state"] == "Running"
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=60)
    parser.add_argument("--db", default=None)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    embedded = scratch_cloud(args.db and args.db.replace("DBNAME", "embedded"))
    t_embedded = deploy_all(embedded, args.vms)
    embedded.close()

    queue = f"strato-bench-{uuid.uuid4().hex[:6]}"
    redis_cloud = scratch_cloud(args.db and args.db.replace("DBNAME", "redis"), broker=args.redis, queue=queue)
    env = {**os.environ, "STRATO_DATABASE_URL": redis_cloud.settings.database_url, "STRATO_BROKER": args.redis,
           "STRATO_QUEUE": queue, "STRATO_DATA_DIR": str(redis_cloud.settings.data_dir)}
    workers = [subprocess.Popen([STRATO, "worker", "--threads", "4"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(2)]
    time.sleep(2)  # let both workers connect
    try:
        t_redis = deploy_all(redis_cloud, args.vms)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(15)
        redis_cloud.close()

    report(f"{args.vms} deploys (submit to all Running) on {embedded.db.engine.dialect.name}",
           [("embedded in-process worker (4 threads)", t_embedded), ("two strato workers over Redis", t_redis)],
           baseline="embedded in-process worker (4 threads)")
    print(f"  throughput: {args.vms / t_embedded:.1f} vs {args.vms / t_redis:.1f} deploys/s")


if __name__ == "__main__":
    main()
