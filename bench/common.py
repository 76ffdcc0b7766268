"""What the benchmarks share: a throw-away cloud and a timer. Benchmarks print ratios
against a baseline measured in the same run; they assert nothing."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cloud import Cloud  # noqa: E402
from core.config import Settings  # noqa: E402


def scratch_cloud(database_url: str | None = None, **overrides) -> Cloud:
    data_dir = Path(tempfile.mkdtemp(prefix="strato-bench-"))
    settings = Settings(data_dir=data_dir, database_url=database_url or f"sqlite:///{data_dir}/bench.db")
    for key, value in overrides.items():
        setattr(settings, key, value)
    cloud = Cloud(settings)
    cloud.start()
    return cloud


def best_of(fn, repeat: int = 7) -> float:
    """Median wall time of ``fn()`` in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(title: str, rows: list[tuple[str, float]], baseline: str) -> None:
    base = dict(rows)[baseline]
    print(f"\n{title}")
    for name, seconds in rows:
        print(f"  {name:<48} {seconds * 1000:10.2f} ms   x{seconds / base:7.2f}")
