"""Series tasks as typed functions (callable from a notebook; the CLI only parses arguments and calls these):
:func:`pretrain`, :func:`probe`, :func:`finetune_classify`, :func:`forecast`, :func:`impute`,
:func:`anomaly_scores`, plus the loaders of a trained run.

Inference runs in batches of series of similar length, so little compute goes to padding; results keep the input order.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from masklab.core.contract import saved_config
from masklab.core.io import atomic_write_json
from masklab.data.series import SeriesBatch, SeriesSet, SeriesTrainData, collate, load_series
from masklab.data.series_augment import SeriesAugment
from masklab.models.series import PatchTST, SeriesClassifier, SeriesConfig, from_preset, tasks
from masklab.recipes.progress import Progress, say
from masklab.train import FitResult, TrainConfig, fit

SERIES_FILE = "series.json"  # sidecar of a pretraining run: where its data came from


# ----------------------------------------------------------------------------------------------- helpers
def _batches(data: SeriesSet, batch_size: int) -> Iterator[np.ndarray]:
    order = np.argsort(data.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _batch(data: SeriesSet, idx: np.ndarray, device: torch.device) -> SeriesBatch:
    b = collate([data.series[i] for i in idx])
    return SeriesBatch(b.values.to(device), b.padding.to(device), b.observed.to(device))


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def train_config(
    *, steps: int | None, minutes: float | None, batch_size: int, lr: float, seed: int, device: str = "auto",
    warmup_fraction: float = 0.05, weight_decay: float = 0.05,
) -> TrainConfig:  # fmt: skip
    """A :class:`TrainConfig` for ``steps`` optimizer steps or a ``minutes`` wall-clock budget (then the
    learning-rate schedule follows the clock)."""
    if (steps is None) == (minutes is None):
        raise ValueError("give exactly one of steps or minutes")
    total = steps if steps is not None else 1_000_000
    return TrainConfig(
        steps=total, batch_size=batch_size, lr=lr, warmup_steps=int(total * warmup_fraction) if steps else 20,
        weight_decay=weight_decay, seed=seed, device=device, log_every=max(1, min(50, total // 10)),
        ckpt_every=max(1, min(1000, total)), max_seconds=None if minutes is None else minutes * 60,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------- pretraining
@dataclass(frozen=True)
class Pretrained:
    model: PatchTST
    result: FitResult


def auto_patch_len(data: SeriesSet) -> int:
    """A patch length giving the median series about 8 patches: ``2 ** round(log2(median / 8))`` in [2, 16]
    (JapaneseVowels 2, BasicMotions 16, PLAID 16). A rule fixed before any benchmark was run."""
    median = float(np.median(data.lengths))
    return int(np.clip(2 ** round(np.log2(max(median / 8, 1))), 2, 16))


def classifier_overrides(data: SeriesSet) -> dict[str, Any]:
    """Encoder settings for classifying ``data`` (chosen on validation splits carved from the training splits
    of the built-ins, never on a test split; docs/benchmarks.md, series):

    * ``channel_mixing``: one token per patch carrying every channel (channel-independent tokens lose how the
      channels line up in time);
    * patches of ``2 ** floor(log2(median length / 32))`` steps in [1, 16], so the median series has at least
      32 patches (JapaneseVowels 1, PLAID 8);
    * ``scaling`` (instance normalisation) only when the series' scales differ by more than an order of
      magnitude (in some channel, the 90th percentile of the per-series standard deviations over the 10th
      exceeds 10): otherwise the raw values are fed, keeping the level and amplitude that tell classes apart
      (JapaneseVowels, ratio 4: raw; PLAID, ratio ~1e5: normalised);
    * with such spread scales, the values are first compressed by ``asinh(x / s)``, ``s`` the median of the
      per-series standard deviations (PLAID ~0.09): linear below ``s``, logarithmic above, so the shape the
      normalisation keeps still carries the absolute amplitude (issue 20's third run).
    """
    median = float(np.median(data.lengths))
    patch = int(np.clip(2 ** np.floor(np.log2(max(median / 32, 1))), 1, 16))
    stds = np.stack([np.nanstd(s.astype(np.float64), axis=0) for s in data.series])  # (N, C)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.nanpercentile(stds, 90, axis=0) / np.nanpercentile(stds, 10, axis=0)  # (C,)
    uniform = bool(np.all(np.isfinite(ratio) & (ratio <= 10)))
    settings: dict[str, Any] = dict(patch_len=patch, stride=patch, channel_mixing=True, scaling=not uniform)
    scale = float(np.nanmedian(stds))
    if not uniform and np.isfinite(scale) and scale > 0:
        settings.update(input_transform="asinh", input_scale=scale)
    return settings


def classifier_augment(config: SeriesConfig) -> SeriesAugment:
    """Fine-tuning augmentation for a classifier on an encoder of ``config``: every training series starts at a
    random one of its first ``patch_len`` steps (``shift = patch_len - 1``), so the patch grid falls at every
    phase of the series; off for one-step patches (JapaneseVowels). Chosen on validation quarters of PLAID's
    training split, where it lets a longer fine-tuning (1200 steps) fit without overfitting; crops, amplitude
    jitter, dropout and mixup did not help there (docs/benchmarks.md, series, fourth run)."""
    return SeriesAugment(shift=max(config.patch_len - 1, 0))


def forecast_overrides(horizon: int) -> dict[str, Any]:
    """Pretraining settings for forecasting ``horizon`` steps (chosen on a validation stretch of the training
    part of the co2 series, docs/benchmarks.md): patches of ``max(2, horizon // 2)`` steps, the tail patches
    covering the horizon hidden (``mask_kind="tail"``) and the normalisation statistics taken from the visible
    steps only (``norm_visible``), as a forecast's context is normalised."""
    patch = max(2, horizon // 2)
    return dict(patch_len=patch, stride=patch, mask_kind="tail", tail_patches=-(-horizon // patch), norm_visible=True)


def build_model(data: SeriesSet, preset: str = "series-small", *, seed: int = 0,
                max_length: int | None = None, **overrides: Any) -> PatchTST:  # fmt: skip
    """An untrained :class:`PatchTST` for ``data``: preset ``preset`` with ``overrides`` (``mask_kind``,
    ``mask_ratio``, ``patch_len``, ...); ``max_patches`` is raised to fit the longest series (or ``max_length``)."""
    longest = int(max_length or data.lengths.max())
    config = from_preset(preset, channels=data.num_channels, **overrides)
    needed = 1 + -(-max(longest - config.patch_len, 0) // config.stride)
    if needed > config.max_patches and "max_patches" not in overrides:
        config = dataclasses.replace(config, max_patches=needed)
    torch.manual_seed(seed)
    return PatchTST(config)


def pretrain(
    model: PatchTST,
    data: SeriesSet,
    out: str | Path,
    *,
    train: TrainConfig,
    source: str | None = None,
    max_length: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> Pretrained:
    """Masked pretraining of ``model`` (:func:`build_model`) on ``data`` (all of it: pass the training split),
    writing the run directory ``out`` (+ ``series.json``). ``max_length``: train on random crops of that many
    steps (default: whole series)."""
    result = fit(model, SeriesTrainData(data, max_length=max_length), train, out, model_config=saved_config(model),
                 resume=resume, progress=progress)  # fmt: skip
    atomic_write_json(Path(out) / SERIES_FILE, {"data": source or data.name, "series": len(data),
                                                "channels": data.num_channels, "max_length": max_length})  # fmt: skip
    return Pretrained(model.eval(), result)


def load_pretrained(run: str | Path, device: str = "cpu") -> PatchTST:
    """The :class:`PatchTST` of a pretraining run directory (eval mode)."""
    from masklab.train.checkpoint import load_model

    model = load_model(run, device=device)
    if not isinstance(model, PatchTST):
        raise ValueError(f"{run} is a {type(model).__name__} run, not a series pretraining run")
    return model


def run_data(run: str | Path, data: str | None, *, channels: int | None = None) -> SeriesSet:
    """``data`` (a path or ``builtin:NAME``), else the data the run was pretrained on (``series.json``); a
    long-format file is read with the run's label column, if it had one and the file has it; with ``channels``
    (the run model's), data of another channel count is refused (:func:`check_channels`)."""
    from masklab.data.series import is_long_format

    info = series_info(run)
    if data is None and not info:
        raise ValueError(f"{run}: no {SERIES_FILE}; pass --data")
    if data is None:
        data = info["data"]
        if not data.startswith("builtin:") and not Path(data).exists():
            raise FileNotFoundError(f"{run} was pretrained on {data}, which is not here (from {Path.cwd()}); "
                                    "pass --data")  # fmt: skip
    label = info.get("label") if is_long_format(data) else None  # the run's label column, for long-format files
    series = load_series(data, label=label, label_optional=True)  # new series to forecast / impute may have none
    if channels is not None:
        check_channels(series, channels, run)
    return series


def series_info(run: str | Path) -> dict:
    """The run's ``series.json`` (its ``data``; ``label``: a long-format file's class column, if given), or {}."""
    from masklab.train.run import Run

    return Run(run).read_sidecar(SERIES_FILE)


def check_channels(data: SeriesSet, channels: int, run: str | Path) -> None:
    """A ``ValueError`` naming the data and the run when ``data`` has another number of channels than the
    run's model was built for (``channels``)."""
    if data.num_channels != channels:
        raise ValueError(f"{data.name}: {data.num_channels} channel(s) per step, but {run} was trained on "
                         f"{channels}; give series with the run's channels, in its order")  # fmt: skip


# --------------------------------------------------------------------------------------------- downstream
@torch.no_grad()
def embed(model: PatchTST, data: SeriesSet, *, batch_size: int = 64, progress: Progress | None = None,
          stage: str = "encoding series") -> np.ndarray:  # fmt: skip
    """Features ``(N, C * (D + 2))`` (:meth:`PatchTST.embed`) in the input order; ``progress`` hears ``stage``."""
    model.eval()
    out = np.zeros((len(data), model.embed_dim), dtype=np.float32)
    done = 0
    for idx in _batches(data, batch_size):
        out[idx] = model.embed(_batch(data, idx, _device(model))).float().cpu().numpy()
        done += len(idx)
        if progress is not None:
            progress(stage, done, len(data))
    return out


def probe(model: PatchTST, train: SeriesSet, test: SeriesSet, *, seed: int = 0,
          progress: Progress | None = None) -> list:  # fmt: skip
    """Linear-probe and k-NN accuracy of the pretrained features vs the same architecture at random init."""
    from masklab.eval.probe import probe_features

    torch.manual_seed(seed)
    random_model = PatchTST(model.config).to(_device(model)).eval()
    rows = []
    for name, m in (("masklab PatchTST", model), ("random-init PatchTST", random_model)):
        tx = embed(m, train, progress=progress, stage=f"{name}: encoding {len(train)} training series")
        vx = embed(m, test, progress=progress, stage=f"{name}: encoding {len(test)} held-out series")
        say(progress, f"{name}: fitting the linear probe and k-NN")
        rows.append(probe_features(name, tx, train.labels, vx, test.labels, seed=seed))
    return rows


def finetune_classify(
    pretrained: PatchTST | SeriesConfig,
    train: SeriesSet,
    *,
    num_classes: int,
    config: TrainConfig,
    out: str | Path | None = None,
    head_dropout: float = 0.1,
    augment: SeriesAugment | None = None,
    progress: bool | None = False,
) -> SeriesClassifier:
    """Fine-tune the encoder of ``pretrained`` (a model, or a config for training from scratch) with a linear
    head on the labelled ``train`` series, starting from a logistic-regression probe on its (standardised)
    initial features (LP-FT; the probe sees the series as they are). ``augment``: random transforms of each
    training series at every step (:class:`~masklab.data.series_augment.SeriesAugment`). ``out``: the run
    directory (default: a temporary one)."""
    from sklearn.linear_model import LogisticRegression

    base = pretrained.config if isinstance(pretrained, PatchTST) else pretrained
    torch.manual_seed(config.seed)
    classifier = SeriesClassifier(base, num_classes, head_dropout)
    if isinstance(pretrained, PatchTST):
        classifier.backbone.load_state_dict(pretrained.state_dict())
    features = embed(classifier.backbone, train).astype(np.float64)
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale < 1e-8] = 1.0
    probe = LogisticRegression(max_iter=1000, random_state=config.seed).fit((features - mean) / scale, train.labels)
    weight = np.zeros((num_classes, features.shape[1]))
    bias = np.zeros(num_classes)
    if len(probe.classes_) == 2:  # sklearn's binary model: one row, the logit of the second class
        weight[probe.classes_[1]], bias[probe.classes_[1]] = probe.coef_[0], probe.intercept_[0]
    else:
        weight[probe.classes_], bias[probe.classes_] = probe.coef_, probe.intercept_
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    classifier.set_head(as_t(mean), as_t(scale), as_t(weight), as_t(bias))
    data = SeriesTrainData(train, with_labels=True, augment=augment)
    with tempfile.TemporaryDirectory() as scratch:
        fit(classifier, data, config, out or scratch, model_config=saved_config(classifier), progress=progress,
            resumable=False)  # fmt: skip
    return classifier.eval()


@torch.no_grad()
def predict_classes(classifier: SeriesClassifier, data: SeriesSet, *, batch_size: int = 64) -> np.ndarray:
    """Predicted class per series ``(N,)``."""
    classifier.eval()
    out = np.zeros(len(data), dtype=np.int64)
    for idx in _batches(data, batch_size):
        out[idx] = classifier.logits(_batch(data, idx, _device(classifier))).argmax(-1).cpu().numpy()
    return out


@torch.no_grad()
def predict_proba(classifier: SeriesClassifier, data: SeriesSet, *, batch_size: int = 64) -> np.ndarray:
    """Class probabilities per series ``(N, K)`` float32."""
    classifier.eval()
    out = np.zeros((len(data), classifier.num_classes), dtype=np.float32)
    for idx in _batches(data, batch_size):
        out[idx] = classifier.logits(_batch(data, idx, _device(classifier))).float().softmax(-1).cpu().numpy()
    return out


def forecast(model: PatchTST, data: SeriesSet, horizon: int, *, batch_size: int = 64) -> list[np.ndarray]:
    """The next ``horizon`` steps of each series, ``(H, C)`` arrays in the data's units."""
    model.eval()
    out: list[np.ndarray] = [np.empty(0)] * len(data)
    for idx in _batches(data, batch_size):
        pred = tasks.forecast(model, _batch(data, idx, _device(model)), horizon).cpu().numpy()
        for row, i in enumerate(idx):
            out[i] = pred[row]
    return out


def impute(model: PatchTST, data: SeriesSet, *, batch_size: int = 64) -> list[np.ndarray]:
    """Each series with its missing (NaN) steps filled; observed values are returned unchanged. A long-format
    file's series are on their time axis: times absent from the file are filled too, and position ``k`` of an
    output is the ``k``-th step from the series' first time (:mod:`masklab.data.series_long`)."""
    model.eval()
    out: list[np.ndarray] = [np.empty(0)] * len(data)
    for idx in _batches(data, batch_size):
        filled = tasks.impute(model, _batch(data, idx, _device(model))).cpu().numpy()
        for row, i in enumerate(idx):
            out[i] = np.where(np.isnan(data.series[i]), filled[row, : len(data.series[i])], data.series[i])
    return out


def anomaly_scores(model: PatchTST, data: SeriesSet, *, batch_size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(per_series (N,), per_step [(T_i,)])``: reconstruction error with each patch hidden once (normalised
    units; NaN for a step with nothing observed). Higher = more anomalous."""
    model.eval()
    per_series = np.zeros(len(data))
    per_step: list[np.ndarray] = [np.empty(0)] * len(data)
    for idx in _batches(data, batch_size):
        scores = tasks.anomaly_scores(model, _batch(data, idx, _device(model)))
        per_series[idx] = scores.per_series.cpu().numpy()
        steps = scores.per_step.cpu().numpy()
        for row, i in enumerate(idx):
            per_step[i] = steps[row, : len(data.series[i])]
    return per_series, per_step


# ------------------------------------------------------------------------------------------------- pictures
@torch.no_grad()
def hide_and_reconstruct(model: PatchTST, data: SeriesSet, *, seed: int = 0, masking: str = "random"
                         ) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """Hide patches of every series of ``data`` as the model trains (``masking``: ``random`` | ``tail``; seeded)
    and reconstruct them: ``(hidden, reconstruction)``, per series ``(T_i, C)`` bool (True = the step was in a
    hidden patch) and float, cut at each series' length."""
    from masklab.tokenizers.series import unpatchify

    model.eval()
    batch = _batch(data, np.arange(len(data)), _device(model))
    inputs = model.prepare(batch)
    masked = model.sample_mask(inputs, torch.Generator().manual_seed(seed), masking)  # (B, C, L) True = hidden
    recon = model.reconstruct(batch, masked).cpu().numpy()
    cover = masked[..., None].expand(*masked.shape, model.config.patch_len).to(inputs.patches.dtype)
    hidden = (unpatchify(cover, inputs.length, model.config.stride, inputs.padding) > 0).cpu().numpy()
    lengths = data.lengths
    return [hidden[k, :n] for k, n in enumerate(lengths)], [recon[k, :n] for k, n in enumerate(lengths)]


def show_reconstructions(model: PatchTST, data: SeriesSet, path: str | Path, *, count: int = 4,
                         seed: int = 0, channels: int = 2) -> Path:  # fmt: skip
    """PNG of ``count`` series (seeded pick) with randomly hidden patches and their reconstructions."""
    from masklab.viz.series import plot_reconstructions

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(data), size=min(count, len(data)), replace=False))
    picked = data.subset(idx)
    hidden, recon = hide_and_reconstruct(model, picked, seed=seed)
    return plot_reconstructions(list(picked.series), hidden, recon, path,
                                titles=[f"{data.name} #{i}" for i in idx], channels=channels)  # fmt: skip


def holdout_forecast(model: PatchTST, data: SeriesSet, horizon: int, *, plot: str | Path | None = None,
                     count: int = 4) -> dict[str, Any]:  # fmt: skip
    """Forecast the last ``horizon`` steps of every series longer than ``horizon + 1`` (and observed before them:
    the others' names are ``skipped``) from the rest; MSE in the data's units (observed steps only) for the
    model and the last-observed-value baseline."""
    long = [i for i, n in enumerate(data.lengths) if n > horizon + 1]
    if not long:
        raise ValueError(f"{data.name}: no series is longer than horizon + 1 = {horizon + 1} steps")
    keep = [i for i in long if not np.isnan(data.series[i][:-horizon]).all()]
    skipped = [data.names()[i] for i in long if i not in keep]
    if not keep:
        return {"series": 0, "mse": None, "mse_last_value": None, "skipped": skipped}
    history = data.subset(keep)
    history = SeriesSet([s[:-horizon] for s in history.series], data.name, history.labels, history.classes)
    truth = [data.series[i][-horizon:] for i in keep]
    pred = forecast(model, history, horizon)
    last = []
    for s in history.series:  # each channel's last observed value, carried forward (0 where there is none)
        seen = [np.flatnonzero(~np.isnan(s[:, c])) for c in range(s.shape[1])]
        last.append(np.tile([s[k[-1], c] if len(k) else 0.0 for c, k in enumerate(seen)], (horizon, 1)))
    y = np.concatenate(truth)
    scores = {"series": len(keep), "mse": float(np.nanmean((np.concatenate(pred) - y) ** 2)),
              "mse_last_value": float(np.nanmean((np.concatenate(last) - y) ** 2)), "skipped": skipped}  # fmt: skip
    if plot:
        from masklab.viz.series import plot_forecasts

        pick = np.linspace(0, len(keep) - 1, min(count, len(keep))).astype(int)
        plot_forecasts([history.series[k] for k in pick], [pred[k] for k in pick], plot, truth=[truth[k] for k in pick],
                       titles=[f"{data.name} #{keep[k]}, channel 0" for k in pick])  # fmt: skip
    return scores
