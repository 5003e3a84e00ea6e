"""Fit time of the table estimators on a 10,000 x 10 table (three correlated factors + noise), one thread.

Prints wall-clock and process CPU seconds of each fit (``--repeat`` fits in one process: the first also pays
one-time imports, e.g. torch's optimizer pulling in torch._dynamo), with scikit-learn's counterparts beside
them: IsolationForest for the detector, IterativeImputer (BayesianRidge) and the Gaussian-EM baseline of
``bench/imputation.py`` for the imputer. For the imputers it
also prints the RMSE on the cells it filled (30% MCAR; the truth is known), so a shorter training budget
(``--imputer-steps``) shows what it costs in accuracy. On a shared machine the wall clock is inflated by other
processes; CPU time is closer to what an idle machine would take.

    python bench/table_speed.py                      # detector and imputer (default budgets), 2 fits each
    python bench/table_speed.py --estimators detector --repeat 3
    python bench/table_speed.py --estimators imputer --repeat 1 --imputer-steps 300,600,1200,default
    python bench/table_speed.py --cpu-attention auto,sdpa,bmm   # the default and each forced attention kernel

``--cpu-attention`` sets ``MASKLAB_CPU_ATTENTION`` for the fits that follow (``auto`` = the library default:
measured once per machine and cached); with ``--repeat`` the settings take turns (A B A B ...), so a
drifting machine speed hits each alike.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def timed(fit):
    wall, cpu_s = time.perf_counter(), time.process_time()
    fitted = fit()
    return fitted, time.perf_counter() - wall, time.process_time() - cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--estimators", default="detector,imputer")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--imputer-steps", default="default", help="comma list of step budgets; 'default' = auto")
    parser.add_argument("--cpu-attention", default="auto", help="comma list of MASKLAB_CPU_ATTENTION settings")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"CPU: {model}; torch threads {torch.get_num_threads()}; {args.rows} x {args.columns}; load {load}")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, 3)) @ rng.normal(size=(3, args.columns))
    x += 0.3 * rng.normal(size=x.shape)
    hidden = rng.random(x.shape) < 0.3  # (N, C) True = missing (MCAR)
    x_missing = np.where(hidden, np.nan, x)

    def rmse(filled: np.ndarray) -> float:
        return float(np.sqrt(np.mean((filled[hidden] - x[hidden]) ** 2)))

    for i in range(args.repeat):  # the settings interleaved, so drifting machine speed hits each alike
        for setting in args.cpu_attention.split(","):
            os.environ["MASKLAB_CPU_ATTENTION"] = setting
            print(f"MASKLAB_CPU_ATTENTION={setting}", flush=True)
            for name in args.estimators.split(","):
                run_estimator(name, i, args, x, x_missing, rmse)


def run_estimator(name: str, i: int, args, x, x_missing, rmse) -> None:
    """Fit ``i`` of estimator ``name`` with its scikit-learn counterparts, printed."""
    from imputation import GaussianEMImputer  # bench/imputation.py (this script's folder is on sys.path)
    from sklearn.ensemble import IsolationForest
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    from masklab.estimators import MaskedAnomalyDetector, MaskedImputer

    if name == "detector":
        fitted, wall, cpu_s = timed(lambda: MaskedAnomalyDetector().fit(x))
        print(f"detector fit {i + 1}: {wall:.1f} s wall, {cpu_s:.1f} s CPU ({fitted.n_steps_} steps)")
        _, wall, cpu_s = timed(lambda: IsolationForest(random_state=0).fit(x))
        print(f"  IsolationForest fit {i + 1}: {wall:.1f} s wall, {cpu_s:.1f} s CPU")
    elif name == "imputer":
        for budget in args.imputer_steps.split(","):
            steps = None if budget == "default" else int(budget)
            fitted, wall, cpu_s = timed(lambda s=steps: MaskedImputer(steps=s).fit(x_missing))
            error = rmse(fitted.transform(x_missing))
            print(f"imputer fit {i + 1}: {wall:.1f} s wall, {cpu_s:.1f} s CPU ({fitted.n_steps_} steps), "
                  f"RMSE {error:.4f}", flush=True)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # IterativeImputer's ConvergenceWarning
            fitted, wall, cpu_s = timed(lambda: IterativeImputer(max_iter=10, random_state=0).fit(x_missing))
            error = rmse(fitted.transform(x_missing))
        print(f"  IterativeImputer fit {i + 1}: {wall:.1f} s wall, {cpu_s:.1f} s CPU, RMSE {error:.4f}")
        filled, wall, cpu_s = timed(lambda: GaussianEMImputer().fit_transform(x_missing))
        print(f"  Gaussian EM (bench/imputation.py 'em') {i + 1}: {wall:.1f} s wall, {cpu_s:.1f} s CPU "
              f"(fit + fill), RMSE {rmse(filled):.4f}")  # fmt: skip
    else:
        raise ValueError(f"unknown estimator {name!r}; known: detector, imputer")


if __name__ == "__main__":
    main()
