"""Canary judge: detection power, false alarms and speed, by simulation.

* Power: lognormal latency (median 100 ms, sigma 0.5), canary slower by +10 %, +25 %, +50 %;
  the smallest number of samples per side at which a one-metric analysis (Kayenta defaults:
  98 % confidence, tolerance 0.25, direction increase; pass 95 / marginal 75) reaches FAIL in
  95 % of trials.
* False alarms: 1000 A/A trials (both sides from the same distribution); how often FAIL.
* Speed: judging 50 metrics x 1000 samples per side (classify + score + verdict), and the exact
  interval by selection against materialising and partitioning all m·n differences.

Usage: .venv/bin/python bench/canary_power.py [--trials 200] [--aa-trials 1000] [--write]
``--write`` replaces the "## Canary judge" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.canary.judge import (
    MetricConfig,
    Verdict,
    classify_metric,
    score_groups,
    verdict,
    wilcoxon_interval,
)

MEDIAN, SIGMA = 0.100, 0.5
LATENCY = MetricConfig(direction="increase")
RESULTS = Path(__file__).with_name("RESULTS.md")


def analysis_fails(baseline: np.ndarray, canary: np.ndarray) -> bool:
    result = classify_metric(baseline, canary, LATENCY, name="latency")
    return verdict(score_groups([("latency", result)], {}), 95, 75) == Verdict.FAIL


def fail_rate(shift: float, n: int, trials: int, seed: int) -> float:
    rng = np.random.default_rng(seed)  # same seed at every n: smoother search
    fails = 0
    for _ in range(trials):
        baseline = rng.lognormal(np.log(MEDIAN), SIGMA, n)
        canary = rng.lognormal(np.log(MEDIAN * (1 + shift)), SIGMA, n)
        fails += analysis_fails(baseline, canary)
    return fails / trials


def samples_needed(shift: float, trials: int, power: float = 0.95) -> tuple[int, float]:
    """Smallest n (within 5 %) with FAIL rate >= power: geometric search, then bisection."""
    seed = int(shift * 1000)
    lo, hi = 0, 8
    rate = fail_rate(shift, hi, trials, seed)
    while rate < power:
        lo, hi = hi, int(hi * 1.6) + 1
        rate = fail_rate(shift, hi, trials, seed)
    while hi - lo > max(2, hi // 20):
        mid = (lo + hi) // 2
        mid_rate = fail_rate(shift, mid, trials, seed)
        if mid_rate >= power:
            hi, rate = mid, mid_rate
        else:
            lo = mid
    return hi, rate


def ttest_rejects(baseline: np.ndarray, canary: np.ndarray, alpha: float = 0.02) -> bool:
    """The optimal test for a lognormal shift: Welch's t-test on log latency, two-sided at the
    judge's level (98 % confidence), counted only when the canary is slower."""
    from scipy.stats import ttest_ind

    test = ttest_ind(np.log(canary), np.log(baseline), equal_var=False)
    return bool(test.pvalue < alpha and test.statistic > 0)


def optimal_samples(shift: float, power: float = 0.95, alpha: float = 0.02) -> int:
    """Per side, by the normal approximation: 2 (z_(1-alpha/2) + z_power)^2 sigma^2 / delta^2."""
    from scipy.stats import norm

    delta = np.log(1 + shift)
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return round(2 * z * z * SIGMA * SIGMA / (delta * delta))


def fail_rate_of(rejects: Callable[[np.ndarray, np.ndarray], bool], shift: float, n: int,
                 trials: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(trials):
        baseline = rng.lognormal(np.log(MEDIAN), SIGMA, n)
        canary = rng.lognormal(np.log(MEDIAN * (1 + shift)), SIGMA, n)
        hits += rejects(baseline, canary)
    return hits / trials


def ttest_samples_needed(shift: float, trials: int, power: float = 0.95) -> tuple[int, float]:
    """The same search as ``samples_needed``, for the t-test on log latency."""
    seed = int(shift * 1000)
    lo, hi = 0, 8
    rate = fail_rate_of(ttest_rejects, shift, hi, trials, seed)
    while rate < power:
        lo, hi = hi, int(hi * 1.6) + 1
        rate = fail_rate_of(ttest_rejects, shift, hi, trials, seed)
    while hi - lo > max(2, hi // 20):
        mid = (lo + hi) // 2
        mid_rate = fail_rate_of(ttest_rejects, shift, mid, trials, seed)
        if mid_rate >= power:
            hi, rate = mid, mid_rate
        else:
            lo = mid
    return hi, rate


def false_fail_rate(n: int, trials: int) -> tuple[float, float]:
    """(FAIL rate, any non-Pass rate with direction either) over A/A trials."""
    rng = np.random.default_rng(n)
    fails = flagged = 0
    for _ in range(trials):
        baseline = rng.lognormal(np.log(MEDIAN), SIGMA, n)
        canary = rng.lognormal(np.log(MEDIAN), SIGMA, n)
        fails += analysis_fails(baseline, canary)
        flagged += classify_metric(baseline, canary).classification != "Pass"
    return fails / trials, flagged / trials


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(median wall, fastest wall, median CPU) seconds of fn over repeat runs. On a shared
    machine the fastest wall time and the CPU time are the ones other processes disturb least."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def judge_time(repeat: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(50)
    metrics = [
        (rng.lognormal(np.log(MEDIAN), SIGMA, 1000), rng.lognormal(np.log(MEDIAN), SIGMA, 1000))
        for _ in range(50)
    ]

    def run() -> None:
        results = [
            (f"g{i % 5}", classify_metric(b, c, LATENCY)) for i, (b, c) in enumerate(metrics)
        ]
        verdict(score_groups(results, {}), 95, 75)

    run()  # warm-up
    return timed(run, repeat)


def interval_speed(repeat: int) -> tuple[float, float]:
    """CPU seconds for one 1000 x 1000 interval: selection vs all differences partitioned."""
    rng = np.random.default_rng(7)
    x, y = rng.lognormal(0, SIGMA, 1000), rng.lognormal(0, SIGMA, 1000)

    def naive() -> None:
        diffs = np.subtract.outer(x, y).ravel()
        np.partition(diffs, [400_000, 499_999, 500_000, 600_000])

    return timed(lambda: wilcoxon_interval(x, y, 0.98), repeat)[2], timed(naive, repeat)[2]


def machine() -> str:
    model = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in lscpu.splitlines()
                if line.startswith("Model name")
            ),
            "",
        )
    except OSError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{os.cpu_count()} cores (`nproc`), {model or platform.processor()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}; load average {load}"
    )


def report(args: argparse.Namespace) -> str:
    started = time.perf_counter()
    lines = [
        "## Canary judge",
        "",
        f"`bench/canary_power.py` — {datetime.date.today()}, {machine()}.",
        "",
        f"Lognormal latency, median {MEDIAN * 1000:g} ms, sigma {SIGMA}; one metric judged with "
        "Kayenta's defaults (98 % confidence, tolerance 0.25, direction increase), score "
        "thresholds pass 95 / marginal 75.",
        "",
        "Against the optimal test for this shift (Welch's t-test on log latency, two-sided at",
        "alpha = 0.02 like the judge's 98 %, counted when the canary is slower): its samples per",
        "side by the normal approximation and by the same simulated search.",
        "",
        f"| canary slower by | judge: samples per side for FAIL in 95 % of trials | judge's "
        f"measured power ({args.trials} trials) | optimal, normal approximation | optimal, "
        "simulated (its power) | judge / optimal |",
        "|---|---|---|---|---|---|",
    ]
    for shift in (0.10, 0.25, 0.50):
        n, rate = samples_needed(shift, args.trials)
        best = optimal_samples(shift)
        t_n, t_rate = ttest_samples_needed(shift, args.trials)
        lines.append(f"| +{shift:.0%} | {n} | {rate:.1%} | {best} | {t_n} ({t_rate:.1%}) | "
                     f"{n / best:.2f}x |")
        print(lines[-1], flush=True)
    lines += [
        "",
        f"| A/A, samples per side | false FAIL ({args.aa_trials} trials, goal <= 1 %) | "
        "any non-Pass label, direction either |",
        "|---|---|---|",
    ]
    for n in (20, 100, 1000):
        fails, flagged = false_fail_rate(n, args.aa_trials)
        lines.append(f"| {n} | {fails:.1%} | {flagged:.1%} |")
        print(lines[-1], flush=True)
    wall, fastest, cpu = judge_time(args.repeat)
    fast, naive = interval_speed(args.repeat)
    lines += [
        "",
        "| speed | value |",
        "|---|---|",
        f"| judge 50 metrics x 1000 samples per side (goal < 100 ms), CPU time "
        f"| {cpu * 1000:.1f} ms |",
        f"| same, wall time: median / fastest of {args.repeat} | {wall * 1000:.1f} ms / "
        f"{fastest * 1000:.1f} ms |",
        f"| one exact 98 % interval, 1000 x 1000, by selection (CPU) | {fast * 1000:.2f} ms |",
        f"| same ranks by partitioning all 10^6 differences (CPU) | {naive * 1000:.2f} ms |",
        f"| selection speed-up | {naive / fast:.1f}x |",
        "",
        "Reading: Kayenta's tolerance band (the interval must clear ±25 % of the estimate) makes",
        "the method deliberately conservative: a +10 % shift is flagged reliably only from about",
        "1200 samples per side (20 minutes of 1 s samples), +50 % within about 70. Against the",
        "optimal test (last column): the rank-sum test alone would cost only ~5 % more samples on",
        "lognormal data (its efficiency 3/pi); the rest is the band, the price of Kayenta's",
        "robustness to outliers and small meaningless shifts. A/A false FAILs are with the judge's",
        "defaults (Kayenta's: no spread test, which is opt-in). The",
        "machine was shared with other test suites (load average above): CPU time and the fastest",
        "wall time are the figures they disturb least. The selection never builds the 10^6",
        "differences, so its memory stays O(m + n).",
        "",
        f"Bench run time {time.perf_counter() - started:.0f} s.",
    ]
    print("\n".join(lines[-9:]), flush=True)
    return "\n".join(lines) + "\n"


def write(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## Canary judge\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="trials per power estimate")
    parser.add_argument("--aa-trials", type=int, default=1000, help="A/A trials per size")
    parser.add_argument("--repeat", type=int, default=15, help="timing repetitions")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    section = report(args)
    if args.write:
        write(section)


if __name__ == "__main__":
    main()
