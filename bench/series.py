"""Masked series model (PatchTST) vs classical baselines, measured in the same run.

Classification (built-in UCR/UEA sets, their own train/test splits): masklab linear probe on frozen pretrained
features and masklab fine-tuning (plus fine-tuning from random init, to see what pretraining adds) over
``--seeds`` seeds, against logistic regression on summary statistics, 1-NN DTW (own numba implementation,
dependent multivariate DTW, Sakoe-Chiba window) and MiniRocket (sktime, when it imports).

Forecasting (statsmodels' weekly Mauna Loa CO2, 2,284 weeks, 59 missing): rolling origins over the last 20% of
the series, a context of ``--context`` weeks and a horizon of ``--horizon``; MSE (ppm^2, observed truth only)
of the model pretrained with tail masking on windows from the first 80%, vs last value and seasonal naive
(the value 52 weeks earlier).

    python bench/series.py --datasets japanese-vowels plaid --seeds 3 --scratch --forecast

Defaults (issue 20's fourth run, chosen on validation quarters of the training splits): pretraining 300 steps;
fine-tuning with the augmentation of ``masklab.recipes.series.classifier_augment`` (random shifts of less than a
patch) for 1200 steps at lr 1e-3 where it is on (PLAID), else 600 steps at a learning rate chosen from
{5e-4, 1e-3} on a validation quarter of the training split (JapaneseVowels: one-step patches, no shift).
Accuracy and MSE do not depend on machine load; timings printed here are measured under load.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time

import numpy as np
import torch

from masklab.data.series import SeriesSet, load_series
from masklab.data.series_augment import SeriesAugment
from masklab.eval.probe import linear_probe_accuracy
from masklab.eval.series_baselines import summary_features
from masklab.recipes import series as recipes


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


# ----------------------------------------------------------------------------------------------- baselines
def _resample(s: np.ndarray, length: int | None) -> np.ndarray:
    s = np.where(np.isnan(s), np.nanmean(s, axis=0, keepdims=True), s).astype(np.float64)
    s = np.nan_to_num(s)
    if length is None or len(s) == length:
        return s
    old, new = np.linspace(0, 1, len(s)), np.linspace(0, 1, length)
    return np.stack([np.interp(new, old, s[:, c]) for c in range(s.shape[1])], axis=1)


def dtw_1nn(train: SeriesSet, test: SeriesSet, *, length: int | None, window: float, znorm: bool) -> float:
    """1-NN accuracy under dependent DTW (squared Euclidean step cost across channels), each series
    optionally z-normalised per channel; ``length``: resample every series to that many steps (None: native lengths);
    ``window``: Sakoe-Chiba band as a share of the longer series (widened to cover the length difference)."""
    import numba

    @numba.njit(cache=False)
    def dtw(a, b, w):  # pragma: no cover - compiled
        n, m = a.shape[0], b.shape[0]
        w = max(w, abs(n - m))
        prev = np.full(m + 1, np.inf)
        cur = np.full(m + 1, np.inf)
        prev[0] = 0.0
        for i in range(1, n + 1):
            cur[:] = np.inf
            for j in range(max(1, i - w), min(m, i + w) + 1):
                d = 0.0
                for c in range(a.shape[1]):
                    diff = a[i - 1, c] - b[j - 1, c]
                    d += diff * diff
                cur[j] = d + min(prev[j], cur[j - 1], prev[j - 1])
            prev, cur = cur, prev
        return prev[m]

    def prep(s: np.ndarray) -> np.ndarray:
        s = _resample(s, length)
        return (s - s.mean(axis=0)) / np.maximum(s.std(axis=0), 1e-8) if znorm else s

    tx, vx = [prep(s) for s in train.series], [prep(s) for s in test.series]
    correct = 0
    for i, q in enumerate(vx):
        dists = [dtw(q, t, int(window * max(len(q), len(t)))) for t in tx]
        correct += int(train.labels[int(np.argmin(dists))] == test.labels[i])
    return correct / len(vx)


def minirocket(train: SeriesSet, test: SeriesSet, seed: int) -> float | None:
    """MiniRocket (variable-length multivariate) + ridge classifier, as in Dempster et al. 2021."""
    try:
        import pandas as pd
        from sklearn.linear_model import RidgeClassifierCV
        from sktime.transformations.panel.rocket import MiniRocketMultivariateVariable
    except ImportError as err:
        print(f"  MiniRocket skipped: {err}")
        return None

    def nested(d: SeriesSet):
        return pd.DataFrame({f"c{c}": [pd.Series(_resample(s, None)[:, c]) for s in d.series]
                             for c in range(d.num_channels)})  # fmt: skip

    # Series shorter than its 9-step kernels are zero-padded (JapaneseVowels has lengths from 7).
    rocket = MiniRocketMultivariateVariable(random_state=seed, pad_value_short_series=0)
    tx, vx = np.asarray(rocket.fit_transform(nested(train))), np.asarray(rocket.transform(nested(test)))
    clf = RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)).fit(tx, train.labels)
    return float((clf.predict(vx) == test.labels).mean())


# ------------------------------------------------------------------------------------------------- masklab
def pretrained_model(train: SeriesSet, seed: int, args: argparse.Namespace):
    overrides = dict(recipes.classifier_overrides(train), mask_kind="random", mask_ratio=0.4, **args.set)
    model = recipes.build_model(train, args.preset, seed=seed, max_length=args.max_length, **overrides)
    pre = recipes.train_config(steps=args.pretrain_steps, minutes=None, batch_size=args.batch_size, lr=1e-3,
                               seed=seed, device="cpu")  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        return recipes.pretrain(model, train, out, train=pre, max_length=args.max_length, progress=False).model


def validation_split(train: SeriesSet) -> tuple[SeriesSet, SeriesSet]:
    """A stratified 3/4 - 1/4 split of the TRAINING split (seeded: the same split every run)."""
    from sklearn.model_selection import train_test_split

    fit_idx, val_idx = train_test_split(np.arange(len(train)), test_size=0.25, stratify=train.labels, random_state=0)
    return train.subset(fit_idx), train.subset(val_idx)


def finetune_plan(model, args: argparse.Namespace) -> tuple[SeriesAugment, int, float | None]:
    """Fine-tuning augmentation, steps and learning rate (None: chosen on a validation quarter of train).

    The augmentation is ``--augment`` when given, else the rule's (:func:`recipes.classifier_augment`: shifts of
    less than a patch), off with ``--no-augment``. Augmented fine-tuning (it fits its training series more
    slowly) runs ``--augmented-finetune-steps`` at ``--augmented-finetune-lr``, both chosen on validation
    quarters of PLAID's training split; without augmentation (one-step patches: JapaneseVowels) the third
    run's recipe is kept: ``--finetune-steps`` at a learning rate chosen from ``--finetune-lrs``."""
    if args.no_augment:
        augment = SeriesAugment()
    else:
        augment = args.augment if args.augment is not None else recipes.classifier_augment(model.config)
    if augment.enabled:
        return augment, args.augmented_finetune_steps, args.fixed_finetune_lr or args.augmented_finetune_lr
    return augment, args.finetune_steps, args.fixed_finetune_lr


def choose_finetune_lr(model, train: SeriesSet, args: argparse.Namespace) -> float:
    """The fine-tuning learning rate with the best accuracy on a stratified quarter of the TRAINING split
    (fine-tuned on the other three quarters); the test split is never looked at."""
    augment, steps, _ = finetune_plan(model, args)
    fit_part, val_part = validation_split(train)
    scores = {}
    for lr in args.finetune_lrs:
        cfg = recipes.train_config(steps=steps, minutes=None, batch_size=args.batch_size, lr=lr, seed=0,
                                   device="cpu")  # fmt: skip
        tuned = recipes.finetune_classify(model, fit_part, num_classes=len(train.classes), config=cfg,
                                          augment=augment)  # fmt: skip
        scores[lr] = float((recipes.predict_classes(tuned, val_part) == val_part.labels).mean())
    best = max(scores, key=lambda lr: (scores[lr], -lr))
    print("  fine-tune lr on a validation quarter of train: "
          + ", ".join(f"{lr:g} -> {100 * a:.1f}%" for lr, a in scores.items()) + f"; using {best:g}")  # fmt: skip
    return best


def masklab_arms(train: SeriesSet, test: SeriesSet, seed: int, args: argparse.Namespace) -> dict[str, float]:
    model = pretrained_model(train, seed, args)
    augment, steps, lr = finetune_plan(model, args)
    if lr is None:
        if args.finetune_lr is None:  # chosen once per dataset (seed 0's pretraining)
            args.finetune_lr = choose_finetune_lr(model, train, args)
        lr = args.finetune_lr
    if seed == 0:
        print(f"  fine-tuning: {steps} steps at lr {lr:g}, augmentation {augment}")
    tune = recipes.train_config(steps=steps, minutes=None, batch_size=args.batch_size, lr=lr, seed=seed,
                                device="cpu")  # fmt: skip
    tx, vx = recipes.embed(model, train), recipes.embed(model, test)
    result = {"probe": linear_probe_accuracy(tx, train.labels, vx, test.labels, seed=seed)}
    k = len(train.classes)
    tuned = recipes.finetune_classify(model, train, num_classes=k, config=tune, augment=augment)
    result["finetune"] = float((recipes.predict_classes(tuned, test) == test.labels).mean())
    if args.scratch:
        scratch = recipes.finetune_classify(model.config, train, num_classes=k, config=tune, augment=augment)
        result["scratch"] = float((recipes.predict_classes(scratch, test) == test.labels).mean())
    return result


def classification(name: str, args: argparse.Namespace) -> list[tuple[str, str]]:
    args.finetune_lr = None  # chosen per dataset (finetune_plan)
    data = load_series(f"builtin:{name}")
    train, test = data.part("train"), data.part("test")
    if args.validation:  # the test split is not read: a stratified quarter of train stands in for it
        train, test = validation_split(train)
        print("\n** VALIDATION: trained on 3/4 of the training split, scored on its other quarter **")
    print(f"\n== {name}: {len(train)} train / {len(test)} test series, {data.num_channels} channels, lengths "
          f"{data.lengths.min()}-{data.lengths.max()}, {len(data.classes)} classes, settings "
          f"{dict(recipes.classifier_overrides(train), **args.set)}; fine-tuning augmentation "
          f"{'off' if args.no_augment else args.augment or 'by the rule (recipes.classifier_augment)'}")  # fmt: skip
    rows: list[tuple[str, str]] = []
    accs: dict[str, list[float]] = {}
    for seed in range(0 if args.baselines_only else args.seeds):
        start = time.time()
        for key, value in masklab_arms(train, test, seed, args).items():
            accs.setdefault(key, []).append(value)
        print(f"  seed {seed}: " + ", ".join(f"{k} {100 * v[-1]:.2f}%" for k, v in accs.items())
              + f" ({time.time() - start:.0f} s, under load)")  # fmt: skip
    labels = {"probe": "masklab linear probe", "finetune": "masklab fine-tune", "scratch": "same, random init"}
    for key, values in accs.items():
        rows.append((labels[key], f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"))
    stats = [summary_features(s) for s in (train, test)]
    logreg = [linear_probe_accuracy(stats[0], train.labels, stats[1], test.labels, seed=s) for s in range(args.seeds)]
    rows.append(("logistic regression, summary statistics", f"{100 * np.mean(logreg):.2f}"))
    if not args.no_dtw:
        # Short sets: native lengths and a full window; long ones: resampled, with a Sakoe-Chiba band.
        length = None if data.lengths.max() <= args.dtw_length else args.dtw_length
        window = 1.0 if length is None else args.dtw_window
        how = f"resampled to {length}" if length else "native lengths"
        for znorm in (False, True):  # both rows: the raw levels matter for some sets, shape for others
            start = time.time()
            acc = dtw_1nn(train, test, length=length, window=window, znorm=znorm)
            label = f"1-NN DTW ({how}, window {window:g}{', z-normalised' if znorm else ''})"
            rows.append((label, f"{100 * acc:.2f}"))
            print(f"  {label}: {100 * acc:.2f}% ({time.time() - start:.0f} s, under load)")
    if not args.no_minirocket:
        values = [minirocket(train, test, seed) for seed in range(args.seeds)]
        if values[0] is not None:
            rows.append(("MiniRocket + ridge", f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"))
    return rows


# ----------------------------------------------------------------------------------------------- forecasting
def co2() -> np.ndarray:
    import statsmodels.api as sm

    return sm.datasets.co2.load_pandas().data["co2"].to_numpy(np.float32)


def forecasting(args: argparse.Namespace) -> list[tuple[str, str]]:
    y = co2()
    ctx, h, season = args.context, args.horizon, 52
    split = int(0.8 * len(y))
    windows = [y[s : s + ctx + h, None] for s in range(0, split - ctx - h + 1, 4)]
    train = SeriesSet(windows, "co2 train windows")
    origins = list(range(split, len(y) - h + 1, 13))
    history = SeriesSet([y[o - ctx : o, None] for o in origins], "co2 test contexts")
    truth = np.stack([y[o : o + h] for o in origins])  # (N, H)
    print(f"\n== co2 weekly: {len(y)} weeks ({int(np.isnan(y).sum())} missing); {len(windows)} training windows, "
          f"{len(origins)} test origins, context {ctx}, horizon {h}")  # fmt: skip

    def last_value(o: int) -> float:
        past = y[:o][~np.isnan(y[:o])]
        return float(past[-1])

    def seasonal(o: int, k: int) -> float:
        t = o + k - season
        while np.isnan(y[t]):
            t -= season
        return float(y[t])

    def mse(pred: np.ndarray) -> float:
        return float(np.nanmean((pred - truth) ** 2))

    naive = np.array([[last_value(o)] * h for o in origins])
    seasonal_naive = np.array([[seasonal(o, k) for k in range(h)] for o in origins])
    rows = [("last value", f"{mse(naive):.3f}"), ("seasonal naive (52 weeks)", f"{mse(seasonal_naive):.3f}")]
    scores = []
    for seed in range(args.seeds):
        model = recipes.build_model(train, args.preset, seed=seed, **recipes.forecast_overrides(h))
        cfg = recipes.train_config(steps=args.pretrain_steps, minutes=None, batch_size=args.batch_size, lr=1e-3,
                                   seed=seed, device="cpu")  # fmt: skip
        with tempfile.TemporaryDirectory() as out:
            model = recipes.pretrain(model, train, out, train=cfg, progress=False).model
        pred = np.stack(recipes.forecast(model, history, h))[..., 0]
        scores.append(mse(pred))
        print(f"  seed {seed}: masklab MSE {scores[-1]:.3f}")
        if seed == 0 and args.plot:
            from masklab.viz.series import plot_forecasts

            pick = np.linspace(0, len(origins) - 1, 4).astype(int)
            plot_forecasts([history.series[k] for k in pick], [pred[k, :, None] for k in pick], args.plot,
                           truth=[truth[k, :, None] for k in pick],
                           titles=[f"co2, origin week {origins[k]}" for k in pick])  # fmt: skip
    label = "masklab PatchTST (tail masking, visible-step statistics)"
    rows.insert(0, (label, f"{np.mean(scores):.3f} ± {np.std(scores):.3f}"))
    return rows


def main() -> None:
    from settings import parse_settings  # bench/settings.py (this script's folder is on sys.path)

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=["japanese-vowels", "plaid"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--preset", default="series-small")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--finetune-lrs", type=float, nargs="+", default=[5e-4, 1e-3],
                        help="fine-tuning learning rates to choose from on a validation split of train")  # fmt: skip
    parser.add_argument("--fixed-finetune-lr", type=float, default=None, help="skip the choice, use this one")
    parser.add_argument("--augmented-finetune-steps", type=int, default=1200, help="fine-tuning steps, augmented")
    parser.add_argument("--augmented-finetune-lr", type=float, default=1e-3, help="fine-tuning lr, augmented")
    parser.add_argument("--max-length", type=int, default=None, help="pretrain on random crops of this length")
    parser.add_argument("--scratch", action="store_true", help="also fine-tune from random init")
    parser.add_argument("--baselines-only", action="store_true", help="skip the masklab arms")
    parser.add_argument("--no-dtw", action="store_true")
    parser.add_argument("--dtw-length", type=int, default=256, help="resample longer sets to this many steps")
    parser.add_argument("--dtw-window", type=float, default=0.1)
    parser.add_argument("--no-minirocket", action="store_true")
    parser.add_argument("--forecast", action="store_true", help="run the co2 forecasting comparison")
    parser.add_argument("--context", type=int, default=156)
    parser.add_argument("--horizon", type=int, default=26)
    parser.add_argument("--plot", default=None, help="PNG of co2 forecasts (seed 0)")
    parser.add_argument(
        "--validation",
        action="store_true",
        help="score on a stratified quarter of the training split instead of the test split",
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="encoder settings over the rule's (recipes.classifier_overrides), for experiments",
    )
    parser.add_argument(
        "--augment",
        nargs="*",
        default=None,
        metavar="KEY=VALUE",
        help="fine-tuning augmentation instead of the rule's (SeriesAugment fields: shift, min_length)",
    )
    parser.add_argument("--no-augment", action="store_true", help="fine-tune without augmentation")
    args = parser.parse_args()
    args.set = parse_settings(args.set)
    if args.augment is not None:
        args.augment = SeriesAugment(**parse_settings(args.augment))
    torch.set_num_threads(1)
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; {args.seeds} seeds; pretrain {args.pretrain_steps} "
          f"steps, fine-tune {args.finetune_steps} steps ({args.augmented_finetune_steps} augmented), batch "
          f"{args.batch_size}, preset {args.preset}")  # fmt: skip

    def show(name: str, rows: list[tuple[str, str]]) -> None:
        print(f"\n| {name} | {'MSE' if 'forecast' in name else 'test accuracy %'} |\n|---|---|")
        for label, value in rows:
            print(f"| {label} | {value} |", flush=True)

    if args.forecast:
        show("co2 forecasting MSE (ppm^2)", forecasting(args))
    for name in args.datasets:
        show(name, classification(name, args))


if __name__ == "__main__":
    main()
