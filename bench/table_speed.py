"""Fit time of the table estimators on a 10,000 x 10 table (three correlated factors + noise), one thread.

Prints wall-clock and process CPU seconds of each fit (``--repeat`` fits in one process: the first also pays
one-time imports, e.g. torch's optimizer pulling in torch._dynamo). On a shared machine the wall clock is
inflated by other processes; CPU time is closer to what an idle machine would take.

    python bench/table_speed.py                      # detector and imputer, 2 fits each
    python bench/table_speed.py --estimators detector --repeat 3
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--estimators", default="detector,imputer")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from masklab.estimators import MaskedAnomalyDetector, MaskedImputer

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"CPU: {model}; torch threads {torch.get_num_threads()}; {args.rows} x {args.columns}")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, 3)) @ rng.normal(size=(3, args.columns))
    x += 0.3 * rng.normal(size=x.shape)
    x_missing = np.where(rng.random(x.shape) < 0.3, np.nan, x)
    for name in args.estimators.split(","):
        for i in range(args.repeat):
            wall, cpu_s = time.perf_counter(), time.process_time()
            if name == "detector":
                fitted = MaskedAnomalyDetector().fit(x)
            elif name == "imputer":
                fitted = MaskedImputer().fit(x_missing)
            else:
                raise ValueError(f"unknown estimator {name!r}; known: detector, imputer")
            wall, cpu_s = time.perf_counter() - wall, time.process_time() - cpu_s
            print(f"{name} fit {i + 1}: {wall:.1f} s wall, {cpu_s:.1f} s CPU ({fitted.n_steps_} steps)", flush=True)


if __name__ == "__main__":
    main()
