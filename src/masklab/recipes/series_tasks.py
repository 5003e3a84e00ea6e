"""Series tasks on a run directory (what ``masklab pretrain series``, ``forecast``, ``impute``, ``probe`` and
``finetune`` call): :func:`pretrain_series`, :func:`forecast_series`, :func:`impute_series`,
:func:`embed_series`, :func:`probe_series`, :func:`finetune_series`. The model-level functions they use live
in :mod:`masklab.recipes.series`.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from masklab.recipes.common import (
    TrainOptions,
    check_output_is_not_input,
    check_writable,
    locked_run,
    planned_steps,
    train_config,
    train_run,
)
from masklab.recipes.embedding import Embedding
from masklab.recipes.progress import Progress, say, silent
from masklab.train import FitResult
from masklab.train.run import Run

DEFAULT_DATA = "builtin:japanese-vowels"


def _split(data, part: str):
    return data if data.split is None else data.part(part)


def pretrain_series(
    out: str | Path,
    *,
    data: str = DEFAULT_DATA,
    preset: str = "series-small",
    mask_kind: str | None = None,
    mask_ratio: float = 0.4,
    patch_len: int | None = None,
    max_length: int | None = None,
    task: str = "general",
    horizon: int | None = None,
    label: str | None = None,
    train: TrainOptions | None = None,
    resume: bool = False,
) -> FitResult:
    """Pretrain a PatchTST on the training split of a built-in (every series of a file), writing the run
    directory ``out`` plus ``series.json`` (where the data came from) and ``reconstruction.png``.

    ``task``: ``general`` (one model for probing, forecasting and imputing: channel-independent patches,
    ``mixed`` masking), ``classify`` (the encoder settings validated for classification,
    :func:`masklab.recipes.series.classifier_overrides`) or ``forecast`` (those validated for forecasting
    ``horizon`` steps, :func:`masklab.recipes.series.forecast_overrides`); ``mask_kind`` and ``patch_len``,
    when given, override the task's. ``patch_len`` (= stride) defaults to about 8 patches per median series
    (2..16) for ``general``; ``max_length`` trains on random crops of that many steps. ``label``: the column
    of a long-format CSV / Parquet holding each series' class (kept out of the channels; recorded, so
    ``probe`` / ``finetune`` / ``embed`` read the same column). Steps default to 1000; warmup to 5% of the steps.
    """
    data = None if data is None else os.fspath(data)  # a Path works as a str does
    from masklab.core.contract import saved_config
    from masklab.data.series import SeriesTrainData, load_series
    from masklab.recipes import series as recipes

    if task not in ("general", "classify", "forecast"):
        raise ValueError(f"--task must be general, classify or forecast, got {task!r}")
    if (task == "forecast") != (horizon is not None):
        raise ValueError("--horizon goes with --task forecast (the steps to forecast), and only with it")
    if horizon is not None and horizon < 1:
        raise ValueError(f"--horizon must be >= 1, got {horizon}")
    run = Run(out)
    train = train or TrainOptions()
    arguments = {"data": data, "preset": preset, "mask_kind": mask_kind or "mixed", "mask_ratio": mask_ratio,
                 "patch_len": patch_len, "max_length": max_length, "train": train.to_dict()}  # fmt: skip
    if task != "general":  # runs recorded before --task existed are general ones: their arguments stay as they were
        arguments = {**arguments, "mask_kind": mask_kind, "task": task, "horizon": horizon}
    if label is not None:  # likewise: recorded only when given
        arguments["label"] = label
    with locked_run(run):  # before any data is read; the reconstruction picture is written under it too
        if not resume:
            run.check_fresh()
        options = train.with_defaults(batch_size=64, lr=1e-3, weight_decay=0.05, log_every=20, ckpt_every=500, seed=0,
                                      device="auto")  # fmt: skip
        loaded = load_series(data, label=label)
        series = _split(loaded, "train")
        settings: dict[str, Any] = {"mask_kind": "mixed"}
        if task == "classify":
            settings = {**recipes.classifier_overrides(series), "mask_kind": "random"}  # as bench/series.py pretrains
        elif task == "forecast" and horizon is not None:
            settings = recipes.forecast_overrides(horizon)
        if mask_kind is not None:
            settings["mask_kind"] = mask_kind
        if patch_len is not None and patch_len < 1:  # 0 was taken as "automatic" without a word
            raise ValueError(f"--patch-len must be >= 1 (or left out: automatic), got {patch_len}")
        longest = int(series.lengths.max()) if max_length is None else min(int(series.lengths.max()), max_length)
        if patch_len is not None and 2 * patch_len > longest:  # the model predicts hidden patches from the others
            raise ValueError(f"--patch-len {patch_len} leaves the longest training series ({longest} steps) fewer "
                             f"than 2 patches to hide and predict from; pass at most {max(longest // 2, 1)} (or leave "
                             "it out: automatic)")  # fmt: skip
        patch = patch_len or settings.pop("patch_len", None) or recipes.auto_patch_len(series)
        settings.update(patch_len=patch, stride=patch)
        model = recipes.build_model(series, preset, seed=options.seed_or_0, max_length=max_length,
                                    mask_ratio=mask_ratio, **settings)  # fmt: skip
        rows = SeriesTrainData(series, max_length=max_length)
        batch = min(options.batch_size or 64, len(series))
        cfg = train_config(options, model, rows, default_steps=1000, batch_size=batch, warmup=lambda steps: steps // 20)
        print(f"masklab: {loaded.name}: {len(series)} series x {series.num_channels} channels, lengths "
              f"{series.lengths.min()}-{series.lengths.max()}; {planned_steps(cfg)}")  # fmt: skip
        recorded = data if data.startswith("builtin:") else str(Path(data).resolve())  # usable from any folder
        info = {"data": recorded, "series": len(series), "channels": series.num_channels, "max_length": max_length,
                **({"label": label} if label is not None else {})}  # fmt: skip
        result = train_run(run, model, rows, cfg, model_config=saved_config(model), recipe="pretrain_series",
                           arguments=arguments, sidecars={recipes.SERIES_FILE: info}, resume=resume)  # fmt: skip
        png = recipes.show_reconstructions(
            model.eval(), series, Path(out) / "reconstruction.png", seed=options.seed_or_0
        )
        loss = result.last_metrics.get("loss", float("nan"))
        print(f"masklab: wrote {result.out_dir} (step {result.step}, loss {loss:.4f}); picture {png}")
        return result


def forecast_series(run: str | Path, horizon: int, *, data: str | None = None, output: str | Path | None = None,
                    plot: str | Path | None = None, count: int = 4, device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Score held-out tails (the last ``horizon`` steps of every long-enough series, forecast from the rest;
    MSE in the data's units vs the last-value baseline), then forecast ``horizon`` steps past every series'
    end: ``output`` (``.npz``, ``values (N, H, C)``, plus ``ids (N,)`` for a long-format file, whose series come
    out in id order). ``plot``: a PNG of the held-out forecasts of ``count`` series (at most :data:`PLOT_MAX`),
    channel 0. Returns the scores plus ``name``, ``forecasts`` (how many series were forecast; the values are
    in ``output``) and ``plotted`` (how many series the plot shows; 0 when nothing was drawn)."""
    from masklab.core.io import atomic_write_bytes
    from masklab.recipes import series as recipes

    if horizon < 1:
        raise ValueError(f"--horizon must be >= 1, got {horizon}")
    if count < 1:
        raise ValueError(f"--count must be >= 1 (series in the plot), got {count}")
    if output is not None and Path(output).suffix != ".npz":
        raise ValueError(f"-o {output}: forecasts are written as .npz")
    for path, flag in ((output, "-o"), (plot, "--plot")):
        if path is not None:
            check_writable(path, flag)
    if output is not None and data is not None:
        check_output_is_not_input(output, data, "forecast")
    model = recipes.load_pretrained(run, device=device)
    series = recipes.run_data(run, data, channels=model.config.channels)
    if output is not None:  # also the run's own recorded data
        check_output_is_not_input(output, series.name, "forecast")
    if output is not None and plot is None and not (series.lengths > horizon + 1).any():  # no tail to score
        scores: dict[str, Any] = {"series": 0, "mse": None, "mse_last_value": None}
    else:
        scores = recipes.holdout_forecast(model, series, horizon, plot=plot, count=min(count, PLOT_MAX))
    scores["name"] = series.name
    scores["forecasts"] = len(series)
    scores["plotted"] = 0 if plot is None else min(count, PLOT_MAX, scores["series"])
    if output is not None:
        import io

        buffer = io.BytesIO()
        arrays: dict[str, Any] = {"values": np.stack(recipes.forecast(model, series, horizon))}
        if series.ids:
            arrays["ids"] = np.array(series.ids)
        np.savez(buffer, **arrays)
        atomic_write_bytes(output, buffer.getvalue())
    return scores


def impute_series(run: str | Path, source: str | Path, output: str | Path, *, device: str = "cpu") -> dict[str, Any]:
    """Fill the NaN steps of a series file with a series run; writes ``output`` (``.npz``: ``values (N, T, C)``
    NaN-padded, ``lengths (N,)``, and when the input has them ``labels (N,)`` (as text, which reads back as the
    same classes) and ``ids (N,)`` (a long-format file's series ids: its series come out in id order; step k
    is the k-th step of the series' time grid, missing times included: :mod:`masklab.data.series_long`)).
    Observed values are unchanged. Returns ``{"series", "filled"}``."""
    import io

    from masklab.core.io import atomic_write_bytes
    from masklab.recipes import series as recipes

    out = Path(output)
    if out.suffix != ".npz":
        raise ValueError(f"-o {out}: series imputations are written as .npz (values + lengths)")
    check_output_is_not_input(out, source, "impute")
    model = recipes.load_pretrained(run, device=device)
    data = recipes.run_data(run, str(source), channels=model.config.channels)  # with the run's label column
    filled = recipes.impute(model, data)
    lengths = data.lengths
    values = np.full((len(data), lengths.max(), data.num_channels), np.nan, dtype=np.float32)
    for i, s in enumerate(filled):
        values[i, : len(s)] = s
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {"values": values, "lengths": lengths}
    if data.labels is not None:
        arrays["labels"] = np.array(data.classes)[data.labels]
    if data.ids:
        arrays["ids"] = np.array(data.ids)
    np.savez(buffer, **arrays)
    atomic_write_bytes(out, buffer.getvalue())
    return {"series": len(data), "filled": int(sum(np.isnan(s).sum() for s in data.series))}


PLOT_MAX = 24  # series drawn by forecast --plot at most, a panel each (400 took minutes, a 66,880 px tall PNG)
HOLDOUT = 0.25  # share of a labelled set without a train/test split kept out to test on (stratified, fixed)


def _labelled_split(run: str | Path, data: str | None, channels: int):
    """``(train, test)``: a built-in's own split, or for labelled data without one (a user's ``.npz`` with
    ``labels``) a stratified :data:`HOLDOUT` of it, the same whatever the training seed (``random_state`` 0)."""
    from sklearn.model_selection import train_test_split

    from masklab.recipes import series as recipes

    series = recipes.run_data(run, data, channels=channels)
    if series.labels is None:
        raise ValueError(f"{series.name}: classification needs labelled series (a 'labels' array in the .npz, "
                         "or a built-in)")  # fmt: skip
    if series.split is not None:
        return series.part("train"), series.part("test")
    try:
        train, test = train_test_split(np.arange(len(series)), test_size=HOLDOUT, stratify=series.labels,
                                       random_state=0)  # fmt: skip
    except ValueError as err:  # a class with one series, or fewer test series than classes
        raise ValueError(f"{series.name}: cannot hold out a stratified {HOLDOUT:.0%} of {len(series)} series to "
                         f"test on ({err}); every class needs several series") from err  # fmt: skip
    print(f"masklab: {series.name} has no train/test split: {len(test)} of its {len(series)} series (a stratified "
          f"{HOLDOUT:.0%}, fixed) are held out to test on")  # fmt: skip
    return series.subset(np.sort(train)), series.subset(np.sort(test))


def embed_series(run: str | Path, *, data: str | None = None, batch_size: int | None = None,
                 device: str = "cpu", skip_bad: bool = False,
                 progress: Progress | None = None) -> Embedding:  # fmt: skip
    """Features ``(N, C * (D + 2))`` float32 of every series of ``data`` (default: the run's), sources
    ``name[i]`` and labels when the data has them. (``skip_bad``: a series file is read whole.)"""
    from masklab.core.device import resolve_device
    from masklab.recipes import series as recipes

    model = recipes.load_pretrained(run, device=str(resolve_device(device)))
    say(progress, f"reading {data or 'the run data'}")
    series = recipes.run_data(run, data, channels=model.config.channels)
    features = recipes.embed(model, series, batch_size=batch_size or 64, progress=progress,
                             stage=f"encoding {len(series)} series")  # fmt: skip
    names = [str(c) for c in series.classes]
    return Embedding.of(features, series.names(),
                        None if series.labels is None else series.labels.tolist(), names)  # fmt: skip


def probe_series(run: str | Path, *, data: str | None = None, max_examples: int | None = None, seed: int = 0,
                 batch_size: int | None = None, device: str = "cpu", skip_bad: bool = False,
                 progress: Progress | None = None) -> list:  # fmt: skip
    """Linear-probe and k-NN accuracy of the run's features on the built-in's test split, vs a random-init
    PatchTST and summary statistics (a list of ``ProbeResult``)."""
    from masklab.core.device import resolve_device
    from masklab.eval.probe import probe_features
    from masklab.eval.series_baselines import summary_features
    from masklab.recipes import series as recipes

    model = recipes.load_pretrained(run, device=str(resolve_device(device)))
    say(progress, f"reading {data or 'the run data'}")
    train, test = _labelled_split(run, data, model.config.channels)
    if max_examples is not None:
        train = train.subset(list(range(min(max_examples, len(train)))))
    rows = recipes.probe(model, train, test, seed=seed, progress=progress)
    say(progress, "summary statistics: fitting the linear probe and k-NN")
    stats = [summary_features(s) for s in (train, test)]
    rows.append(probe_features("summary statistics", stats[0], train.labels, stats[1], test.labels, seed=seed))
    print(f"{train.name}: probe trained on {len(train)} series, scored on {len(test)} held-out series")
    return rows


def finetune_series(run: str | Path, *, data: str | None = None, task: str = "classify", steps: int | None = None,
                    epochs: float | None = None, lr: float | None = None, batch_size: int | None = None,
                    augment: str | None = None, out: str | Path | None = None, seed: int = 0,
                    device: str = "cpu", skip_bad: bool = False,
                    progress: Progress | None = None) -> dict[str, Any]:  # fmt: skip
    """Fine-tune the run's encoder with a linear head (LP-FT) on the built-in's train split; writes ``out``
    (default ``RUN/finetune``, the layout of :mod:`masklab.recipes.finetune_outputs`) and returns its
    ``metrics.json`` record (test accuracy, confusion matrix). Training series are shifted at random by less
    than a patch (:func:`~masklab.recipes.series.classifier_augment`; off for one-step patches); with the shift
    the defaults are 1200 steps at lr 1e-3 (``bench/series.py``'s validated recipe), without it 300 at 5e-4."""
    from masklab.core.device import resolve_device
    from masklab.recipes import series as recipes
    from masklab.recipes.finetune_outputs import check_restart, default_out, write_finetune_outputs

    if task != "classify":
        raise ValueError(f"--task {task!r} is not available for series runs; use --task classify")
    if augment is not None:
        raise ValueError("--augment is not available for series runs")
    if epochs is not None:
        raise ValueError("--epochs is not available for series runs; use --steps")
    dev = str(resolve_device(device))
    model = recipes.load_pretrained(run, device=dev)
    say(progress, f"reading {data or 'the run data'}")
    train, test = _labelled_split(run, data, model.config.channels)
    shift = recipes.classifier_augment(model.config)
    steps = steps or (1200 if shift.enabled else 300)
    lr = lr or (1e-3 if shift.enabled else 5e-4)
    batch = batch_size or min(32, len(train))  # a small labelled set of the user's: all of it per step
    cfg = recipes.train_config(steps=steps, minutes=None, batch_size=batch, lr=lr, seed=seed, device=dev)
    target = Run(default_out(run, out))
    shifted = f", random shifts of up to {shift.shift} steps" if shift.enabled else ""
    say(progress, f"fine-tuning on {len(train)} {train.name} series ({steps} steps{shifted}) -> {target.path}")
    with target.lock(), contextlib.redirect_stderr(io.StringIO()) if progress is silent else contextlib.nullcontext():
        check_restart(target, run)
        classifier = recipes.finetune_classify(model, train, num_classes=len(train.classes), config=cfg,
                                               out=target.path, augment=shift)  # fmt: skip
        say(progress, f"testing on {len(test)} held-out series")
        return write_finetune_outputs(
            target, classifier, y_true=test.labels, y_pred=recipes.predict_classes(classifier, test).tolist(),
            names=[str(c) for c in train.classes], title=train.name,
            extra={"data": train.name, "train_size": len(train), "steps": steps, "lr": lr, "shift": shift.shift,
                   **({"label_column": label} if (label := recipes.series_info(run).get("label")) else {})},
        )  # fmt: skip
