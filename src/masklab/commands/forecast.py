"""``masklab forecast RUN --horizon H``: continue each series with a series (PatchTST) run.

Scores the model on held-out tails first (the last H steps of every series long enough, forecast from the
rest; MSE in the data's units against the last-value baseline), then forecasts H steps past the end of every
series: ``-o OUT.npz`` saves them (``values (N, H, C)``), ``--plot PNG`` draws held-out forecasts with the
horizon shaded.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "forecast", help="forecast the next H steps of series with a series run", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("run", metavar="RUN", help="run directory of 'masklab pretrain series'")
    parser.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    parser.add_argument("--data", default=None, help="series file or builtin:NAME (default: the run's data)")
    parser.add_argument("-o", "--output", default=None, help="save the forecasts past each series' end (.npz)")
    parser.add_argument("--plot", default=None, help="PNG of held-out forecasts with the horizon shaded")
    parser.add_argument("--count", type=int, default=4, help="series in the plot (default 4)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from masklab.recipes import series as recipes

    if args.horizon < 1:
        raise ValueError(f"--horizon must be >= 1, got {args.horizon}")
    model = recipes.load_pretrained(args.run)
    data = recipes.run_data(args.run, args.data)
    scores = recipes.holdout_forecast(model, data, args.horizon, plot=args.plot, count=args.count)
    print(f"{data.name}: {scores['series']} series with more than {args.horizon} steps; held-out tail MSE "
          f"model {scores['mse']:.4g}, last value {scores['mse_last_value']:.4g}")  # fmt: skip
    if args.output:
        import numpy as np

        if not args.output.endswith(".npz"):
            raise ValueError(f"-o {args.output}: forecasts are written as .npz")
        np.savez(args.output, values=np.stack(recipes.forecast(model, data, args.horizon)))
        print(f"masklab: wrote {len(data)} forecasts of {args.horizon} steps -> {args.output}")
    return 0
