"""Run every chapter in FULL mode, as a learner does, without touching the stored notebooks.

    python scripts/time_notebooks.py --out data/benchmarks/notebook_times.json [NOTEBOOK ...]

`make test` runs the chapters in quick mode (nbval). A learner who opens a chapter in Jupyter runs
it in full mode, so this script does that: it executes a copy of each notebook (the kernel starts
in notebooks/, SPIKE_QUICK unset), never writes the notebook itself, and records for each one the
wall-clock minutes, the kernel's CPU seconds, and the first cell that raised, if any. The machine,
its load before and after, and the commit are stored with the times. book/how_to_use.md's
schedule for teachers is built from the stored file (`python scripts/time_notebooks.py --table`),
and tests/test_time_notebooks.py checks that the page shows what the file holds.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from spike_lib.train.bench import machine_info

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "data" / "benchmarks" / "notebook_times.json"
PAGE = ROOT / "book" / "how_to_use.md"
# a ten-week module: the notebooks of each week (chapter numbers are the notebooks' prefixes)
WEEKS = (("1", "01", "01b"), ("2", "02", "02b"), ("3", "03", "03b"), ("4", "04", "04b"),
         ("5", "05", "05b"), ("6", "06"), ("7", "07", "07b"), ("8", "08", "08b"),
         ("9", "08c", "08d", "08e"), ("10", "09", "09b", "09c", "10"))


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_one(path: Path, timeout: int) -> dict:
    """Execute a copy of one notebook in full mode: wall and kernel CPU time, the first error."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError as exc:
        cell = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        error = {"cell": cell, "error": str(exc).strip().splitlines()[-1][:300]}
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel, reaped at shutdown
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"wall_s": round(wall, 1), "kernel_cpu_s": round(cpu, 1),
            "code_cells": sum(c.cell_type == "code" for c in nb.cells), "error": error}


def measure(paths, timeout=3600) -> dict:
    os.environ.pop("SPIKE_QUICK", None)
    out = {"command": "python scripts/time_notebooks.py --out " + str(STORED.relative_to(ROOT)),
           "commit": _commit(), **machine_info(),  # cpu, cpus, load_average
           "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "notebooks": {}}
    for path in paths:
        out["notebooks"][path.name] = row = run_one(path, timeout)
        print(f"{path.name}: {row['wall_s'] / 60:.1f} min" + (f", ERROR {row['error']}" if row["error"]
                                                               else ""), flush=True)
    out["load_average_after"] = machine_info()["load_average"]
    return out


def table(stored: dict) -> str:
    """The teachers' schedule: week, notebooks, full-mode minutes on the stored machine."""
    times = stored["notebooks"]
    lines = ["| week | notebooks | minutes in full mode |", "|---|---|---|"]
    for week, *prefixes in WEEKS:
        names = sorted(n for n in times if n.split("_")[0] in prefixes)
        minutes = sum(times[n]["wall_s"] for n in names) / 60
        lines.append(f"| {week} | " + ", ".join(f"`{n.removesuffix('.ipynb')}`" for n in names)
                     + (f" | {minutes:.0f} |" if minutes >= 1 else " | < 1 |"))
    total = sum(r["wall_s"] for r in times.values()) / 60
    lines.append(f"| all | {len(times)} notebooks | {total:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter notebook")
    ap.add_argument("--out", type=Path, help="write the measurement here (JSON)")
    ap.add_argument("--table", action="store_true", help="print the schedule from the stored file")
    ap.add_argument("--check", action="store_true", help="exit 1 if how_to_use.md lacks the table")
    args = ap.parse_args(argv)
    if args.table or args.check:
        text = table(json.loads(STORED.read_text()))
        if args.table:
            print(text)
            return 0
        if text in PAGE.read_text():
            return 0
        print(f"{PAGE.relative_to(ROOT)} does not show the stored times; run `python "
              f"scripts/time_notebooks.py --table` and paste its table in:\n{text}", file=sys.stderr)
        return 1
    if args.out is None:
        ap.error("--out is required to measure (or use --table / --check)")
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[01]*.ipynb"))
    result = measure(paths)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, args.out)  # atomic: an interrupted run leaves the old file
    return 0


if __name__ == "__main__":
    sys.exit(main())
