"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

import os


def load_note() -> str:
    """A warning when other processes keep the CPUs busy (timings then vary from run to run)."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load < 0.5 * cpus:
        return ""
    return (
        f"note: the machine is busy (load average {load:.1f} on {cpus} CPUs): timings are noisy; "
        "torch's default threads suffer most from contention (--threads 1 is steadier)"
    )
