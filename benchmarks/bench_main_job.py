"""Wall time of the main job (``mpcert demo``: MP fits, Hybrid and CAST 2:4 masks, both certified with the sound
``L_s`` on a calibration and a held-out set, multi-layer audit included) with 1 and with 2 workers, per phase.

Baseline in the same run: 1 worker (one process, torch / BLAS threads = the cores available); measured:
``--workers 2`` (two ``torch.distributed`` gloo ranks, the threads shared out).  Reported: both wall times, their
ratio, the demo's step times and the audit phases (seconds summed over all audits and ranks:
``capture``, ``lipschitz`` = estimation-grid re-runs, ``realized``, ``sound_lipschitz`` = interval enclosures,
``budgets``).  ``MPCERT_BENCH_IMAGES`` sets the calibration and held-out sizes (default 256, the main job; the
whole run takes twice the main job).  Run with
``MPCERT_BENCH_IMAGES=256 bash scripts/bench.sh benchmarks/bench_main_job.py -s``.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import torch
from threadpoolctl import threadpool_limits

from verification.bridge.distributed import available_cores
from verification.bridge.demo import DEFAULT_SETTINGS, run_demo

IMAGES = int(os.environ.get("MPCERT_BENCH_IMAGES", DEFAULT_SETTINGS.calibration))


def _report(label: str, summary: dict) -> None:
    print(f"\n{label}: {summary['wall_time_s']:.1f} s")
    for step, seconds in summary["step_times_s"].items():
        print(f"  {step}: {seconds:.1f} s")
    for row in summary["masks"]:
        phases = ", ".join(f"{k} {v:.1f}" for k, v in row["phase_times_s"].items())
        sound = row["certified"]["sets"]["calibration"]["layers_sound"]
        print(f"  {row['mask']}: {sound}/{row['layers']} calibration layers sound, {row['violations']} violations; "
              f"phases (s, summed over ranks): {phases}")


def test_main_job_one_and_two_workers(benchmark, tmp_path):
    settings = replace(DEFAULT_SETTINGS, calibration=IMAGES, heldout=IMAGES)
    cores = available_cores()
    torch.set_num_threads(cores)
    with threadpool_limits(cores):
        start = time.perf_counter()
        baseline = run_demo(tmp_path / "one", settings, workers=1)
        one = time.perf_counter() - start
        two = benchmark.pedantic(run_demo, args=(tmp_path / "two", settings), kwargs={"workers": 2}, rounds=1,
                                 iterations=1)
    _report(f"main job, {IMAGES} + {IMAGES} images, 1 worker x {cores} threads", baseline)
    _report(f"main job, {IMAGES} + {IMAGES} images, 2 workers", two)
    print(f"2 workers / 1 worker wall time: {two['wall_time_s'] / one:.2f}")
    benchmark.extra_info.update(images=IMAGES, one_worker_s=one, two_workers_s=two["wall_time_s"],
                                step_times_two_workers=two["step_times_s"])
    assert [r["violations"] for r in baseline["masks"]] == [r["violations"] for r in two["masks"]] == [0, 0]
