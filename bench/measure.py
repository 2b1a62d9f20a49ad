"""Timing and memory helpers."""

from __future__ import annotations

import statistics
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set (VmHWM) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def reset_peak_rss() -> None:
    """Start this process's VmHWM again from its current RSS (Linux 4.0 and later), so
    that the next ``peak_rss_mb()`` is the peak of what runs in between."""
    Path("/proc/self/clear_refs").write_text("5")
