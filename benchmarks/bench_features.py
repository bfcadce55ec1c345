"""Features stage speed and memory: N fields x 80 observations x 4 indices -> features.

Not a timed test: run it by hand on an idle machine.

    python benchmarks/bench_features.py                 # 100,000 fields (the floor)
    python benchmarks/bench_features.py --fields 20000 --composite median mean

The observations table is generated once (regenmap.features.testing) and
written as one Parquet file per tile, as the extract stage does; every case then
runs in a fresh Python process that reads the folder the way the features stage
does (``read_observations``) and calls ``build_features``, so the peak RSS of
that process is the memory the stage needs (table included). Floor from the issue: 100,000 fields
in under 20 s and under 4 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FLOOR_S = 20.0
FLOOR_GIB = 4.0

_CHILD = r"""
import json, resource, sys, time, warnings


def peak_gib():
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak over
    # fork + exec on Linux (resource usage is preserved across execve).
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


t0 = time.perf_counter()
import pandas as pd
from regenmap.features.build import build_features
t_import = time.perf_counter() - t0
from regenmap.features.options import FeatureOptions
from regenmap.pipelines.layout import RunLayout, read_observations
t0 = time.perf_counter()
obs = read_observations(RunLayout(__import__("pathlib").Path(sys.argv[1]).parent))
t_read = time.perf_counter() - t0
rss_read = peak_gib()
ru0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    f = build_features(obs, FeatureOptions(composite=sys.argv[2], smoothing=sys.argv[3]))
t_build = time.perf_counter() - t0
ru1 = resource.getrusage(resource.RUSAGE_SELF)
cpu_build = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
print(json.dumps({"rows": len(obs), "fields": len(f), "features": f.shape[1] - 1,
                  "import_s": t_import, "read_s": t_read, "build_s": t_build, "build_cpu_s": cpu_build,
                  "rss_after_read_gib": rss_read,
                  "peak_rss_gib": peak_gib()}))
"""


def run_case(path: Path, composite: str, smoothing: str) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
           "MKL_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), composite, smoothing],
                         check=True, capture_output=True, text=True, env=env)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--fields", type=int, default=100_000)
    ap.add_argument("--obs", type=int, default=80)
    ap.add_argument("--composite", nargs="+", default=["mean"])
    ap.add_argument("--smoothing", nargs="+", default=["none"])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--tiles", type=int, default=16)
    args = ap.parse_args()

    from regenmap.features.testing import synthetic_observations

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "observations"
        path.mkdir()
        t0 = time.perf_counter()
        obs, _ = synthetic_observations(args.fields, n_obs=args.obs, seed=0,
                                        indices=("ndvi", "evi", "ndti", "bsi"))
        # one file per tile, as the extract stage writes them (fields sorted, 16 tiles)
        bounds = np.linspace(0, len(obs), args.tiles + 1).astype(int) // args.obs * args.obs
        for k in range(args.tiles):
            obs.iloc[bounds[k]:bounds[k + 1]].to_parquet(path / f"tile={k}.parquet")
        n_rows = len(obs)
        del obs
        print(f"generated {n_rows:,} rows ({args.fields:,} fields x {args.obs} obs x 4 indices) "
              f"in {time.perf_counter() - t0:.1f} s; cpus={os.cpu_count()}")
        header = (f"{'composite':>9} {'smoothing':>9} {'read s':>7} {'build s':>8} "
                  f"{'build CPU s':>11} {'RSS read GiB':>12} {'peak RSS GiB':>12} {'floor':>6}")
        print(header)
        print("-" * len(header))
        for composite in args.composite:
            for smoothing in args.smoothing:
                for _ in range(args.repeat):
                    r = run_case(path, composite, smoothing)
                    scale = 100_000 / args.fields
                    ok = r["build_s"] * scale < FLOOR_S and r["peak_rss_gib"] < FLOOR_GIB
                    print(f"{composite:>9} {smoothing:>9} {r['read_s']:7.2f} {r['build_s']:8.2f} "
                          f"{r['build_cpu_s']:11.2f} {r['rss_after_read_gib']:12.2f} "
                          f"{r['peak_rss_gib']:12.2f} "
                          f"{'ok' if ok else 'MISS':>6}")
        print(f"floor: build < {FLOOR_S:.0f} s and peak RSS < {FLOOR_GIB:.0f} GiB for 100,000 fields "
              "(build time scaled linearly when --fields differs)")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus "
              "(wall time is inflated on a shared machine; CPU time is not)")


if __name__ == "__main__":
    main()
