"""wandb_offline against the official SDK, same machine, same script, in one go.

    python python/benches/bench.py [--rows N] [--sdk-rows N] [--sdk-python PATH] [--long-rows N]

Measures, each in a fresh interpreter (offline mode, console capture and system metrics off
for both):

* start-up: `import` + `init` + `finish` of an empty run (wall time, median of several runs);
* `run.log` of a dict of 10 floats: rows per second from the first `log` until `finish` has
  written and synced everything into the file;
* peak memory above the bare interpreter (ru_maxrss after the run minus before the import), at
  `--rows`/5, `--rows` and (with `--long-rows`) a longer run, checked flat in rows: every run
  within 2 MiB of each other (a long run fills the writer's queue whenever the writer
  waits on the disk, so the full queue is what must be small); and the number of child
  processes while the run is open.

The official SDK runs from `--sdk-python` (default: WANDB_SDK_PYTHON, else this Python), which
must import wandb 0.31.0; wandb_offline from this Python.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, resource, sys, time
mod, rows, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
wandb = __import__(mod)
run = wandb.init(project="bench", mode="offline")
def ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[1]
    except OSError:
        return None
children = sum(1 for p in os.listdir("/proc") if p.isdigit() and ppid(p) == str(os.getpid()))
t1 = time.perf_counter()
c1, p1 = time.thread_time(), time.process_time()
if mode == "log":
    for i in range(rows):
        x = i * 1e-6
        run.log({"m0": x, "m1": x + 1, "m2": x + 2, "m3": x + 3, "m4": x + 4,
                 "m5": x + 5, "m6": x + 6, "m7": x + 7, "m8": x + 8, "m9": x + 9})
t2 = time.perf_counter()
run.finish()
t3 = time.perf_counter()
c3, p3 = time.thread_time(), time.process_time()
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"startup": t3 - t0 - (t2 - t1), "log": t3 - t1, "rows": rows,
                  "rss_delta_mib": (rss1 - rss0) / 1024, "children": children,
                  "caller_cpu": c3 - c1, "process_cpu": p3 - p1}))
"""


def child(python: str, module: str, rows: int, mode: str, work: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update({"WANDB_MODE": "offline", "WANDB_CONSOLE": "off", "WANDB_X_DISABLE_STATS": "true",
                "WANDB_DISABLE_GIT": "true", "WANDB_SILENT": "true", "WANDB_DIR": work,
                "HOME": work, "WANDB_CONFIG_DIR": os.path.join(work, "config")})
    try:
        out = subprocess.run([python, "-c", CHILD, module, str(rows), mode], cwd=work, env=env,
                             capture_output=True, text=True, timeout=1800)
    finally:
        # Each run's folder goes once measured: a long run's file is large.
        shutil.rmtree(os.path.join(work, "wandb"), ignore_errors=True)
    if out.returncode != 0:
        raise SystemExit(f"{module} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows logged by wandb_offline")
    parser.add_argument("--sdk-rows", type=int, default=10_000, help="rows logged by the SDK")
    parser.add_argument("--sdk-python", default=os.environ.get("WANDB_SDK_PYTHON") or sys.executable)
    parser.add_argument("--repeat", type=int, default=5, help="start-up runs of each")
    parser.add_argument("--long-rows", type=int, default=0,
                        help="also measure peak memory at this many rows (e.g. 5000000)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        ours_py, sdk_py = sys.executable, args.sdk_python
        ours_start = [child(ours_py, "wandb_offline", 0, "empty", work)["startup"] for _ in range(args.repeat)]
        sdk_start = [child(sdk_py, "wandb", 0, "empty", work)["startup"] for _ in range(max(2, args.repeat // 2))]
        ours_small = child(ours_py, "wandb_offline", args.rows // 5, "log", work)
        ours = child(ours_py, "wandb_offline", args.rows, "log", work)
        ours_long = child(ours_py, "wandb_offline", args.long_rows, "log", work) if args.long_rows else None
        sdk = child(sdk_py, "wandb", args.sdk_rows, "log", work)

    ours_rate = ours["rows"] / ours["log"]
    sdk_rate = sdk["rows"] / sdk["log"]
    report = {
        "startup_ms": {"wandb_offline": round(statistics.median(ours_start) * 1e3, 1),
                       "sdk": round(statistics.median(sdk_start) * 1e3, 1)},
        "log_rows_per_s": {"wandb_offline": round(ours_rate), "sdk": round(sdk_rate),
                           "ratio": round(ours_rate / sdk_rate, 1)},
        "peak_mib_above_interpreter": {
            f"wandb_offline_{ours_small['rows']}_rows": round(ours_small["rss_delta_mib"], 1),
            f"wandb_offline_{ours['rows']}_rows": round(ours["rss_delta_mib"], 1),
            **({f"wandb_offline_{ours_long['rows']}_rows": round(ours_long["rss_delta_mib"], 1)}
               if ours_long else {}),
            f"sdk_{sdk['rows']}_rows": round(sdk["rss_delta_mib"], 1)},
        "child_processes": {"wandb_offline": ours["children"], "sdk": sdk["children"]},
        # CPU time per row, which the machine's load does not inflate: the caller's thread
        # (building the dict and log) and the whole process (with the writer thread).
        "cpu_us_per_row": {
            "wandb_offline_caller": round(ours["caller_cpu"] / ours["rows"] * 1e6, 2),
            "wandb_offline_process": round(ours["process_cpu"] / ours["rows"] * 1e6, 2),
            "sdk_caller": round(sdk["caller_cpu"] / sdk["rows"] * 1e6, 2),
            "sdk_process": round(sdk["process_cpu"] / sdk["rows"] * 1e6, 2)},
        "load_average_1min": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    peaks = [r for r in (ours_small, ours, ours_long) if r]
    verdicts = [
        ("start-up <= 50 ms", report["startup_ms"]["wandb_offline"] <= 50),
        ("log >= 300,000 rows/s", ours_rate >= 300_000),
        ("log >= 50x the SDK", ours_rate >= 50 * sdk_rate),
        ("peak <= 30 MiB above the interpreter", max(r["rss_delta_mib"] for r in peaks) <= 30),
        (f"peak flat in rows ({' vs '.join(str(r['rows']) for r in peaks)} rows within 2 MiB)",
         max(r["rss_delta_mib"] for r in peaks) - min(r["rss_delta_mib"] for r in peaks) <= 2),
        ("no child process", ours["children"] == 0),
    ]
    for name, ok in verdicts:
        print(f"{'ok  ' if ok else 'MISS'} {name}")


if __name__ == "__main__":
    main()
