"""``predict``: apply a fine-tuned classifier to new inputs.

``run`` is a fine-tune output directory (``RUN/finetune``; a pretraining run whose ``finetune`` or legacy
``finetune-classify`` folder holds one is followed there). Image classifiers (fine-tuned MAE) read an image
file, a folder of images (recursive, sorted), a ``.npy``/``.npz`` array or ``builtin:NAME``; text classifiers
(fine-tuned MLM) read a ``.txt`` file (one document per non-blank line), a ``.csv`` with a text column, or a
folder of ``.txt`` files (one document each); series classifiers a series file or ``builtin:NAME`` (as
``--data``). Every input row gets the class probabilities ``(N, K)``.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from masklab.recipes.embedding import note_skipped
from masklab.recipes.finetune_outputs import METRICS_FILE, class_names, finetune_directory, load_finetuned
from masklab.recipes.progress import Progress, batches, say


@dataclass(frozen=True)
class Predictions:
    """``probabilities (N, K)`` float32 over ``classes`` for the inputs ``sources`` (in input order)."""

    sources: tuple[str, ...]
    classes: tuple[str, ...]
    probabilities: np.ndarray
    skipped: tuple[str, ...] = ()

    @property
    def predicted(self) -> np.ndarray:
        """Class index per input ``(N,)`` (the argmax of the probabilities)."""
        return self.probabilities.argmax(axis=1)

    @property
    def labels(self) -> list[str]:
        return [self.classes[i] for i in self.predicted]

    def to_csv(self) -> str:
        """Header ``row,source,prediction,p_<class>...``; one line per input."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["row", "source", "prediction", *(f"p_{c}" for c in self.classes)])
        for i, (source, label) in enumerate(zip(self.sources, self.labels, strict=True)):
            writer.writerow([i, source, label, *(f"{p:.6g}" for p in self.probabilities[i])])
        return buffer.getvalue()

    def summary(self) -> str:
        counts = Counter(self.labels)
        spread = ", ".join(f"{c}: {counts[c]}" for c in self.classes if counts[c])
        n = len(self.sources)
        return f"{n} input{'s' if n != 1 else ''}, predicted {spread}"


def _image_inputs(source: str, cfg, skip_bad: bool) -> tuple[torch.Tensor, list[str], list[str]]:
    """``(images (N, C, H, W) in [0, 1], sources, skipped)`` at the model's size and channels."""
    from masklab.data.image_files import IMAGE_SUFFIXES
    from masklab.data.images import load_image_files, load_images
    from masklab.recipes.embedding import pictures_for_model

    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no images found under {path} (looked for {', '.join(IMAGE_SUFFIXES)})")
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"image {path} does not exist")
        files = [path]
    else:  # an array file or builtin:NAME, as --data reads it
        try:
            data = load_images(source, image_size=cfg.image_size, channels=cfg.channels, min_side=cfg.patch_size)
        except ValueError as err:  # predict reads INPUT, it has no --data
            message = str(err)
            if not message.startswith("--data "):
                raise
            raise ValueError("INPUT " + message.removeprefix("--data ")) from None
        return data.images(), list(data.sources or (f"{source}[{i}]" for i in range(len(data)))), []
    # Pictures looked at, not a dataset trained on: each keeps its own channels, then the model's (said).
    dataset = load_image_files(files, image_size=cfg.image_size, channels=None, min_side=cfg.patch_size,
                               skip_bad=skip_bad, name=source)  # fmt: skip
    sources = list(dataset.sources or ())
    return pictures_for_model(dataset.images(), sources, cfg.channels), sources, list(dataset.skipped)


def _text_inputs(source: str, text_column: str) -> tuple[list[str], list[str]]:
    """``(documents, sources)`` of a .txt (one per non-blank line), a .csv (``text_column``) or a folder of .txt."""
    from masklab.data.text import read_text_file

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise ValueError(f"no .txt files under {path}")
        return [read_text_file(p) for p in files], [str(p) for p in files]
    if path.suffix.lower() == ".txt":
        lines = read_text_file(path).splitlines()
        pairs = [(line, f"{path}:{n}") for n, line in enumerate(lines, start=1) if line.strip()]
        if not pairs:
            raise ValueError(f"{path} has no non-blank line to classify")
        return [t for t, _ in pairs], [s for _, s in pairs]
    if path.suffix.lower() == ".csv":
        import pandas as pd

        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if text_column not in frame.columns:
            raise ValueError(f"{path} has no {text_column!r} column (columns: {list(frame.columns)}); "
                             "name the text column with --text-column")  # fmt: skip
        return frame[text_column].tolist(), [f"{path}[{i}]" for i in range(len(frame))]
    raise ValueError(f"{path}: text classifiers read a .txt (one document per line), a .csv or a folder of .txt")


def _batched(fn, count: int, batch_size: int, progress: Progress | None) -> np.ndarray:
    with torch.inference_mode():
        parts = [fn(s).float().softmax(-1).cpu() for s in batches(count, batch_size, progress, f"classifying {count}")]
    return torch.cat(parts).numpy()


def predict(
    run: str | Path,
    inputs: str | Path,
    *,
    output: str | Path | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    skip_bad: bool = False,
    text_column: str = "text",
    progress: Progress | None = None,
) -> Predictions:
    """Class probabilities of every input under the fine-tuned classifier of ``run``; writes ``output`` (CSV:
    row, source, prediction, ``p_<class>`` per class) when given. ``skip_bad``: leave unreadable images (or
    ones smaller than one patch) out, named once; otherwise such a file is an error naming it. ``progress``: see
    :mod:`masklab.recipes.progress`."""
    from masklab.core.device import resolve_device
    from masklab.recipes.common import check_outputs
    from masklab.train.run import Run

    if batch_size is not None and batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if output is not None and Path(output).resolve() == Path(inputs).resolve():
        raise ValueError(f"-o {output} is the input itself; write the predictions elsewhere")
    check_outputs({"-o": output}, [("INPUT", inputs)], "predict")  # a hard link; a run folder's own files
    directory = finetune_directory(run)
    kind, model_cfg = Run(directory).kind(), Run(directory).config()["model"]
    classifier = (
        (kind == "mae" and model_cfg.get("objective") == "classify")
        or (kind == "mlm" and model_cfg.get("task") == "classify")
        or kind == "series-classifier"
    )
    if not classifier:
        hint = f"; fine-tune it first: masklab finetune {run}" if kind in ("mae", "mlm", "series") else ""
        raise ValueError(f"{directory} holds no fine-tuned classifier (a {kind!r} run): predict reads what "
                         f"'masklab finetune' writes for mae, mlm and series runs{hint}")  # fmt: skip
    dev = str(resolve_device(device))
    model: Any = load_finetuned(directory, dev)  # an MAE, BertForMLM or SeriesClassifier (checked above)
    skipped: list[str] = []
    say(progress, f"reading {inputs}")
    if kind == "mae":
        images, sources, skipped = _image_inputs(str(inputs), model.config, skip_bad)
        note_skipped(skipped, "image")
        probs = _batched(lambda s: model.logits(images[s].to(dev)), len(images), batch_size or 256, progress)
    elif kind == "series-classifier":
        from masklab.data.series import is_long_format, load_series
        from masklab.recipes.series import check_channels, predict_proba

        recorded = Run(directory).read_sidecar(METRICS_FILE).get("label_column")  # the fine-tune's label column
        label = recorded if is_long_format(inputs) else None  # kept out of the channels
        series = load_series(str(inputs), label=label, label_optional=True)  # new series need no class column
        check_channels(series, model.config.series.channels, directory)
        say(progress, f"classifying {len(series)} series")
        try:
            probs = predict_proba(model, series, batch_size=batch_size or 64)
        except ValueError as err:  # e.g. a series longer than the model covers: name the input
            raise ValueError(f"{inputs}: {err}") from err
        sources = series.names()  # the series' ids in a long-format file
    else:
        from masklab.recipes.mlm import TEXT_INFO, check_vocab, encode_docs
        from masklab.tokenizers.text import TextTokenizer

        tokenizer = TextTokenizer.load(directory / "tokenizer.json")
        check_vocab(tokenizer, model.config.bert.vocab_size, f"{directory}/tokenizer.json")
        texts, sources = _text_inputs(str(inputs), text_column)
        say(progress, f"tokenising {len(texts)} documents")
        blocks = encode_docs(tokenizer, texts, Run(directory).read_sidecar(TEXT_INFO).get("seq_len", 128),
                             what="inputs")  # fmt: skip
        probs = _batched(lambda s: model.classify(blocks.ids[s].to(dev), blocks.padding[s].to(dev)), len(texts),
                         batch_size or 64, progress)  # fmt: skip
    result = Predictions(tuple(sources), tuple(class_names(directory, probs.shape[1])), probs, tuple(skipped))
    if output is not None:
        from masklab.core.io import atomic_write_bytes

        atomic_write_bytes(output, result.to_csv().encode("utf-8"))
    return result
