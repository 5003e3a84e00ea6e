"""``masklab forecast RUN --horizon H``: continue each series with a series (PatchTST) run
(:func:`masklab.recipes.series_tasks.forecast_series`). ``masklab impute`` on a series run is dispatched from
:mod:`masklab.cli.table`.
"""

from __future__ import annotations

import argparse

FORECAST_HELP = """Scores the model on held-out tails first (the last H steps of every series long enough, forecast
from the rest; MSE in the data's units against the last-value baseline), then forecasts H steps past the end of
every series: -o OUT.npz saves them (values (N, H, C)), --plot PNG draws held-out forecasts of channel 0 with
the horizon shaded (--count series, at most 24; the scores and -o cover every series)."""


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = FORECAST_HELP
    parser.add_argument("run", metavar="RUN", help="run directory of 'masklab pretrain series'")
    parser.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    parser.add_argument("--data", default=None, help="series file or builtin:NAME (default: the run's data)")
    parser.add_argument("-o", "--output", default=None, help="save the forecasts past each series' end (.npz)")
    parser.add_argument("--plot", default=None, help="PNG of held-out forecasts with the horizon shaded")
    parser.add_argument("--count", type=int, default=4, help="series in the plot (default 4, at most 24)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.set_defaults(func=_forecast)


def _forecast(args: argparse.Namespace) -> int:
    from masklab.recipes.series_tasks import PLOT_MAX, forecast_series

    try:
        r = forecast_series(args.run, args.horizon, data=args.data, output=args.output, plot=args.plot,
                            count=args.count, device=args.device)  # fmt: skip
    except ValueError as err:
        if "max_patches" not in str(err):
            raise
        raise ValueError(_too_long(args)) from err
    skipped = r.get("skipped") or []
    if skipped:
        shown = ", ".join(repr(n) for n in skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        print(f"masklab: note: {len(skipped)} series left out of the held-out score (nothing observed before their "
              f"last {args.horizon} steps): {shown}")  # fmt: skip
    if r["series"]:
        print(f"{r['name']}: {r['series']} series with more than {args.horizon + 1} steps; held-out tail MSE "
              f"model {r['mse']:.4g}, last value {r['mse_last_value']:.4g}")  # fmt: skip
    elif skipped:
        print(f"{r['name']}: no series has an observed value before its last {args.horizon} steps: no held-out score")
    else:
        print(f"{r['name']}: no series is longer than horizon + 1 = {args.horizon + 1} steps: no held-out score")
    if args.plot and r.get("plotted"):
        capped = f" (--count {args.count} is capped at {PLOT_MAX})" if args.count > PLOT_MAX else ""
        print(f"masklab: wrote {args.plot}: held-out forecasts of {r['plotted']} of {r['series']} series, "
              f"channel 0{capped}")  # fmt: skip
    elif args.plot:
        print(f"masklab: note: no held-out forecast to draw: {args.plot} not written")
    if args.output:
        print(f"masklab: wrote {r['forecasts']} forecasts of {args.horizon} steps -> {args.output}")
    return 0


def _too_long(args: argparse.Namespace) -> str:
    """The error for a forecast past what the model's positions cover: names --horizon and its largest value."""
    from masklab.recipes.series import load_pretrained, run_data

    cfg = load_pretrained(args.run).config
    covered = cfg.patch_len + (cfg.max_patches - 1) * cfg.stride  # steps of history + horizon
    longest = int(run_data(args.run, args.data).lengths.max())
    if longest >= covered:
        return (f"--horizon {args.horizon}: the longest series ({longest} steps) already fills the {covered} steps "
                "this model covers; crop the series or train with a larger max_patches")  # fmt: skip
    return (f"--horizon {args.horizon}: the longest series ({longest} steps) plus the horizon is more than the "
            f"{covered} steps this model covers; forecast at most --horizon {covered - longest}")  # fmt: skip


def impute(args: argparse.Namespace) -> int:
    """``masklab impute RUN INPUT -o OUT.npz`` on a series run: fill the NaN steps of a series file."""
    from masklab.recipes.series_tasks import impute_series

    r = impute_series(args.run, args.input, args.output, device=args.device)
    print(f"masklab: filled {r['filled']} missing values in {r['series']} series -> {args.output}")
    return 0
