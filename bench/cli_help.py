"""How long `lojal --help` takes: sub-command groups imported lazily (today) against importing them
all up front (the naive way, as before), each in fresh processes, median of N runs.

    .venv/bin/python bench/cli_help.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

LAZY = "from lojal.cli import main; main()"
EAGER = ("import lojal.cli, lojal.segments.cli, lojal.reco.cli, lojal.render.cli, lojal.store.cli; "
         "from lojal.cli import main; main()")


def timed(code: str, runs: int) -> float:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, "--help"], check=True, capture_output=True,
                       env={**os.environ, "COLUMNS": "100"})
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    timed(LAZY, 1)  # warm the file cache
    lazy, eager = timed(LAZY, runs), timed(EAGER, runs)
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(f"lojal --help, sub-commands lazy:  {lazy:.3f} s (median of {runs})")
    print(f"lojal --help, all imported first: {eager:.3f} s")
    print(f"ratio: {eager / lazy:.1f}x")


if __name__ == "__main__":
    main()
