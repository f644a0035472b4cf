"""CPU time of the machine, and per kind of process sampled once a second (with each process's
peak resident memory), read from /proc (Linux).

Which part of the machine a stage keeps busy (the flow's own process, Dask workers, the local
SendGrid, PostgreSQL, the Prefect server) says whether it is bound by one process's interpreter or
by the machine's cores. A process that ends between two samples loses its last second; where /proc
is absent nothing is sampled and the figures are empty.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
KINDS = (("dask workers", "spawn_main"), ("local SendGrid", "sendgrid-local"), ("Prefect server", "uvicorn"),
         ("PostgreSQL", "postgres"))


def process_kind(pid: int, own: int = os.getpid()) -> str:
    if pid == own:
        return "flow (this process)"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    return next((kind for kind, pattern in KINDS if pattern in command), "other")


def cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the machine since boot, all cores; None where /proc/stat is absent."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return None
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy


def cpu_ticks_by_pid(resident: dict[int, int] | None = None) -> dict[int, int]:
    """User + system CPU ticks of every process now (threads included); each one's resident bytes
    now go into `resident` when given."""
    ticks = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
                if resident is not None:
                    resident[int(entry.name)] = int(fields[21]) * PAGE
            except (OSError, IndexError, ValueError):
                continue
    return ticks


class CpuSampler:
    """Samples (time, CPU seconds per kind in the second before) in a background thread between
    start() and stop()."""

    def __init__(self, interval: float = 1.0):
        self.interval, self.samples = interval, []
        self._stop, self._kinds, self._thread = threading.Event(), {}, None
        self._peak: dict[int, int] = {}  # pid: largest resident bytes seen

    def start(self) -> "CpuSampler":
        if Path("/proc/self/stat").exists():
            self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        before = cpu_ticks_by_pid()
        while not self._stop.wait(self.interval):
            resident: dict[int, int] = {}
            now = cpu_ticks_by_pid(resident)
            self.samples.append((time.time(), self._by_kind(before, now)))
            for pid, size in resident.items():
                if size > self._peak.get(pid, 0) and pid in self._kinds:  # processes that used CPU meanwhile
                    self._peak[pid] = size
            before = now

    def _by_kind(self, before: dict[int, int], now: dict[int, int]) -> Counter:
        seconds = Counter()
        for pid, ticks in now.items():
            spent = ticks - before.get(pid, ticks)
            if spent > 0:
                kind = self._kinds.setdefault(pid, process_kind(pid))
                seconds[kind] += spent / TICKS
        return seconds

    def cores(self, start: float | None = None, end: float | None = None) -> dict[str, float]:
        """Average cores busy per kind between two epoch times (default: the whole sampling)."""
        chosen = [s for t, s in self.samples
                  if (start is None or t > start) and (end is None or t - self.interval < end)]
        if not chosen:
            return {}
        total = sum(chosen, Counter())
        return {kind: round(seconds / (len(chosen) * self.interval), 2) for kind, seconds in total.most_common()}

    def peak_memory_mb(self) -> dict[str, float]:
        """The largest resident memory one process of each kind reached (sampled once a second)."""
        peaks: dict[str, float] = {}
        for pid, size in self._peak.items():
            kind = self._kinds[pid]
            peaks[kind] = max(peaks.get(kind, 0.0), round(size / 2 ** 20, 1))
        return dict(sorted(peaks.items(), key=lambda kv: -kv[1]))
