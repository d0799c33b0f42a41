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


def paired_rounds(paths, files, rounds: int, baseline: str, candidate: str):
    """Time each of ``paths`` (name -> callable(files)) on ``files`` for ``rounds`` rounds, the
    order alternating between rounds so neither side always runs on a warmer machine. Prints one
    line per round; returns ``(images/s per name, candidate/baseline ratio per round, last
    results per name)``."""
    import time

    speed = {name: [] for name in paths}
    ratios, results = [], {}
    for r in range(rounds):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))
        for name in order:
            start = time.perf_counter()
            results[name] = paths[name](files)
            speed[name].append(len(files) / (time.perf_counter() - start))
        ratios.append(speed[candidate][-1] / speed[baseline][-1])
        print(
            f"round {r + 1}/{rounds}: {candidate} {speed[candidate][-1]:.2f} img/s, "
            f"{baseline} {speed[baseline][-1]:.2f} img/s, ratio {ratios[-1]:.2f}",
            flush=True,
        )
    return speed, ratios, results
