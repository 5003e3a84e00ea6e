"""``export-hf``: write a trained run as a Hugging Face folder that ``transformers`` loads offline with
``from_pretrained(folder)`` (``config.json`` + ``model.safetensors``, plus ``tokenizer.json`` for text runs).

| run kind | Hugging Face class |
|---|---|
| ``mae`` (pretraining, ``variant="mae"``) | ``ViTMAEForPreTraining`` (+ ``preprocessor_config.json``) |
| ``mlm`` (``task="mlm"``) | ``BertForMaskedLM``, or ``RobertaForMaskedLM`` for RoBERTa positions |
| ``clm`` | ``GPT2LMHeadModel`` |

A setting the Hugging Face class cannot represent is refused with the field named (the converters in
:mod:`masklab.interop.hf`). An MAE run normalises pixels inside the model (``pixel_mean``/``pixel_std``);
ViTMAE expects normalised ``pixel_values``, so those statistics go to ``preprocessor_config.json``
(``image_mean``/``image_std``), where ``ViTImageProcessor`` applies them: the exported model given
``(x - mean) / std`` predicts exactly what the run predicts for ``x``.

The target folder (:func:`check_target`) is new, empty, or an earlier ``export-hf`` folder of the same class,
which is replaced as a whole (a note says so). Anything else is refused, naming the folder and what it holds:
a masklab run, prepared data, a Hugging Face folder masklab did not write, another class's export, other files.
The export is written into a hidden sibling folder first and renamed into place (:func:`write_folder`): a
failure or Ctrl-C while writing leaves the earlier export as it was, never half new and half old; what a
writer killed there (``kill -9``) left is removed by the next export into the same folder.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from masklab.train.run import Run

EXPORTABLE = ("mae", "mlm", "clm")
# What export-hf writes, and so all an earlier export may hold.
EXPORT_FILES = frozenset({"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                          "preprocessor_config.json"})  # fmt: skip
ARCHITECTURES = ("ViTMAEForPreTraining", "BertForMaskedLM", "RobertaForMaskedLM", "GPT2LMHeadModel")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _masklab_export(folder: Path, names: list[str], config: Any) -> str | None:
    """The class of the earlier ``export-hf`` export ``folder`` holds, None if it holds anything else: only
    export files, a config naming one exported class, and weights carrying masklab's integrity hash (which
    ``transformers``' ``save_pretrained`` never writes: a folder it saved is not taken for ours)."""
    from safetensors import safe_open

    from masklab.core.io import HASH_KEY

    if not set(names) <= EXPORT_FILES or not all((folder / name).is_file() for name in names):
        return None
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(architectures, list) or len(architectures) != 1 or architectures[0] not in ARCHITECTURES:
        return None
    try:
        with safe_open(str(folder / "model.safetensors"), "pt") as weights:
            ours = HASH_KEY in (weights.metadata() or {})
    except Exception:  # missing, or not a safetensors file at all (safetensors raises its own error types)
        return None
    return str(architectures[0]) if ours else None


def _holdings(names: list[str], config: Any) -> str:
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    if {"index.json", "prepare.json"} <= set(names):
        return f"prepared data (masklab prepare): {shown}"
    if isinstance(config, dict) and "model_type" in config:
        return f"a Hugging Face folder export-hf did not write: {shown}"
    return shown


def check_target(folder: str | Path, architecture: str | None = None, run: str | Path | None = None) -> str | None:
    """Refuse an export target a careful user would not want written into; returns the class of the earlier
    export it holds (replaced as a whole), None for a new or empty folder.

    ``architecture``: the class about to be written (another class's export is refused, so one folder never
    mixes two models); ``run``: the run exported (the folder may be neither the run nor hold it).
    """
    folder = Path(folder)
    if run is not None:
        target, run_dir = folder.resolve(), Path(run).resolve()
        if target == run_dir or target in run_dir.parents:
            raise ValueError(f"{folder} holds a masklab run ({run}); export to another folder")
    if not folder.exists():
        return None
    if not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder")
    names = sorted(entry.name for entry in folder.iterdir())
    if not names:
        return None
    config = _read_json(folder / "config.json")
    if isinstance(config, dict) and "kind" in config:
        raise ValueError(f"{folder} holds a masklab run ({config['kind']!r}); export to another folder")
    found = _masklab_export(folder, names, config)
    if found is None:
        raise ValueError(f"{folder} is not empty and is not an earlier export-hf folder: it holds "
                         f"{_holdings(names, config)}; export to a new or empty folder")  # fmt: skip
    if architecture is not None and found != architecture:
        raise ValueError(f"{folder} holds a {found} export; a {architecture} export there would mix two models: "
                         "export to another folder, or remove it first")  # fmt: skip
    return found


def check_mlm_export(folder: str | Path, *, out: str | Path, norm: str, init_from: str | None) -> None:
    """What ``pretrain mlm --export-hf`` can check from its arguments alone, before any data is read."""
    if norm == "pre" and not init_from:  # an --init-from model is the HF folder's own (post-norm) BERT
        raise ValueError("--export-hf: a pre-norm BERT (--norm pre) has no Hugging Face equivalent to export to; "
                         "train a post-norm one (the default) or leave out --export-hf")  # fmt: skip
    hf = _read_json(Path(init_from) / "config.json") if init_from else None
    roberta = isinstance(hf, dict) and hf.get("model_type") == "roberta"
    check_target(folder, "RobertaForMaskedLM" if roberta else "BertForMaskedLM", out)


def write_folder(folder: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a new hidden sibling of ``folder``, then put ``tmp`` in ``folder``'s place.

    A new folder is one rename. An empty one receives the files one by one (it keeps its own permissions and
    can be a mount point or the current directory). An earlier export is swapped out in one atomic exchange
    (:func:`~masklab.core.io.exchange_paths`, Linux), then removed; where the system cannot exchange, by two
    renames: if the process dies between them, ``folder`` is missing but both exports are whole, in hidden
    ``.NAME.*`` siblings. Renames through a symlinked ``folder`` act on the folder it points to.

    The hidden siblings name their writer (``.NAME.tmp-PID-HOST-RANDOM``, ``.NAME.old-...``): what a writer
    killed on this host left is removed by the next export into ``folder`` (an ``old`` one once that export
    is in place: until then it may be the only copy of the earlier export), never what a live writer uses."""
    import os
    import shutil

    from masklab.core.io import exchange_paths, new_staging_folder, remove_dead_writers, staging_path

    target = Path(os.path.realpath(folder))
    tmp, old = new_staging_folder(target), staging_path(target, "old")
    try:
        write(tmp)
        if not target.exists():
            os.rename(tmp, target)
        elif not any(target.iterdir()):
            for name in sorted((p.name for p in tmp.iterdir()), key=lambda name: (name == "config.json", name)):
                os.replace(tmp / name, target / name)  # config.json last: a folder without it is no export
            tmp.rmdir()
        else:
            os.chmod(tmp, os.stat(target).st_mode & 0o7777)
            if exchange_paths(tmp, target):  # one atomic step: tmp now holds the earlier export
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.rename(target, old)
                try:
                    os.rename(tmp, target)
                except BaseException:
                    os.rename(old, target)
                    raise
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    remove_dead_writers(target, ("old",))  # folder holds this export: a killed writer's earlier one is spare
    return Path(folder)


def _architecture(kind: str, model_config: Any) -> str:
    """The Hugging Face class a run of ``kind`` exports to, read from its ``config.json["model"]``."""
    if kind == "mae":
        return "ViTMAEForPreTraining"
    if kind == "clm":
        return "GPT2LMHeadModel"
    bert = model_config.get("bert") if isinstance(model_config, dict) else None
    roberta = isinstance(bert, dict) and bert.get("positions") == "roberta"
    return "RobertaForMaskedLM" if roberta else "BertForMaskedLM"


def _tokenizer(run: Run, vocab_size: int):
    from masklab.tokenizers.text import TextTokenizer

    path = run.path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run.path} has no tokenizer.json")
    tokenizer = TextTokenizer.load(path)
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(f"vocabulary mismatch: {path} has {tokenizer.vocab_size} ids, the model {vocab_size}")
    return tokenizer


def save_mae_folder(model, folder: str | Path) -> tuple[Path, list[str]]:
    """Write an MAE as ``ViTMAEForPreTraining`` + ``preprocessor_config.json``; returns (folder, notes)."""
    from masklab.core.io import atomic_write_json, save_checkpoint
    from masklab.interop.hf.mae import mae_config_to_hf, mae_to_hf_state_dict

    cfg = model.config
    if cfg.objective != "reconstruct":
        raise ValueError(f"model.objective={cfg.objective!r}: only a pretraining MAE (objective='reconstruct') "
                         "exports to ViTMAEForPreTraining; export the run it was fine-tuned from")  # fmt: skip
    notes = []
    if cfg.mask_kind != "random":
        notes.append(f"model.mask_kind={cfg.mask_kind!r} is not carried: ViTMAE masks at random while training")
    plain = dataclasses.replace(cfg, pixel_mean=None, pixel_std=None)  # moved to the image processor
    hf_config = {"architectures": ["ViTMAEForPreTraining"], "model_type": "vit_mae", **mae_config_to_hf(plain)}
    tensors = mae_to_hf_state_dict(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    channels = cfg.channels
    processor = {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": True, "size": {"height": cfg.image_size[0], "width": cfg.image_size[1]},
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": list(cfg.pixel_mean or [0.0] * channels), "image_std": list(cfg.pixel_std or [1.0] * channels),
    }  # fmt: skip
    save_checkpoint(folder / "model.safetensors", tensors, {"format": "pt"})
    atomic_write_json(folder / "preprocessor_config.json", processor)
    atomic_write_json(folder / "config.json", hf_config)
    return folder, notes


def save_gpt2_folder(model, folder: str | Path, tokenizer: Any = None) -> Path:
    """Write a masklab GPT as ``GPT2LMHeadModel`` (+ ``tokenizer.json`` and ``tokenizer_config.json``, which
    ``AutoTokenizer`` reads to give masklab's ids: :func:`masklab.interop.hf.gpt2.hf_tokenizer_files`)."""
    from masklab.core.io import atomic_write_bytes, atomic_write_json, save_checkpoint
    from masklab.interop.hf.gpt2 import hf_config_dict, hf_tokenizer_files, to_hf_state_dict

    cfg = model.config  # dropout is a training setting: the HF config gets 0 (inference is identical)
    hf_config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", **hf_config_dict(cfg, tokenizer)}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in to_hf_state_dict(model).items()}
    if cfg.tie_embeddings:
        del tensors["lm_head.weight"]  # tied to transformer.wte.weight, as HF saves it
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer is not None:
        backend, tokenizer_config = hf_tokenizer_files(tokenizer, cfg.context)
        atomic_write_bytes(folder / "tokenizer.json", backend.encode("utf-8"))
        atomic_write_json(folder / "tokenizer_config.json", tokenizer_config)
    save_checkpoint(folder / "model.safetensors", tensors, {"format": "pt"})
    atomic_write_json(folder / "config.json", hf_config)
    return folder


def export_hf(run: str | Path, folder: str | Path) -> dict[str, Any]:
    """Write ``run`` (an mae, mlm or clm run) as a Hugging Face folder ``folder``; returns ``{"folder",
    "architecture", "notes"}``. Other kinds, and settings HF cannot represent, are a ``ValueError`` naming them."""
    from masklab.interop.hf.masked_lm import save_hf_mlm

    r, folder = Run(run), Path(folder)
    kind = r.kind()
    if kind not in EXPORTABLE:
        raise ValueError(f"export-hf writes mae, mlm and clm runs; {r.path} is a {kind!r} run (no Hugging Face "
                         "counterpart)")  # fmt: skip
    architecture = _architecture(kind, r.config().get("model"))
    previous = check_target(folder, architecture, r.path)
    model = r.load_model("cpu")
    notes: list[str] = []
    if kind == "mae":
        write_folder(folder, lambda tmp: notes.extend(save_mae_folder(model, tmp)[1]))
    elif kind == "mlm":
        if model.config.task != "mlm":
            raise ValueError(f"model.task={model.config.task!r}: only a masked LM (task='mlm') exports to "
                             "*ForMaskedLM; export the run it was fine-tuned from")  # fmt: skip
        tokenizer = _tokenizer(r, model.config.bert.vocab_size)
        write_folder(folder, lambda tmp: save_hf_mlm(model, tmp, tokenizer))
    else:
        tokenizer = _tokenizer(r, model.config.vocab_size)
        write_folder(folder, lambda tmp: save_gpt2_folder(model, tmp, tokenizer))
    if previous:
        notes.append(f"replaced the earlier {previous} export in {folder}")
    return {"folder": folder, "architecture": architecture, "notes": notes}
