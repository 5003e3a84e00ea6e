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
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from masklab.train.run import Run

EXPORTABLE = ("mae", "mlm", "clm")


def _check_target(run: Path, folder: Path) -> None:
    """Never write into a masklab run (its ``config.json`` would be replaced)."""
    import json

    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder")
    config = folder / "config.json"
    try:
        masklab_run = config.is_file() and "kind" in json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError):
        masklab_run = False
    if folder.resolve() == run.resolve() or masklab_run:
        raise ValueError(f"{folder} holds a masklab run; export to another folder")


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
    """Write a masklab GPT as ``GPT2LMHeadModel`` (+ the tokenizer's ``tokenizer.json``)."""
    from masklab.core.io import atomic_write_json, save_checkpoint
    from masklab.interop.hf.gpt2 import hf_config_dict, to_hf_state_dict

    cfg = model.config  # dropout is a training setting: the HF config gets 0 (inference is identical)
    hf_config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", **hf_config_dict(cfg)}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in to_hf_state_dict(model).items()}
    if cfg.tie_embeddings:
        del tensors["lm_head.weight"]  # tied to transformer.wte.weight, as HF saves it
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer is not None:
        tokenizer.save(folder)
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
    _check_target(r.path, folder)
    model = r.load_model("cpu")
    notes: list[str] = []
    if kind == "mae":
        _, notes = save_mae_folder(model, folder)
        architecture = "ViTMAEForPreTraining"
    elif kind == "mlm":
        if model.config.task != "mlm":
            raise ValueError(f"model.task={model.config.task!r}: only a masked LM (task='mlm') exports to "
                             "*ForMaskedLM; export the run it was fine-tuned from")  # fmt: skip
        save_hf_mlm(model, folder, _tokenizer(r, model.config.bert.vocab_size))
        architecture = "RobertaForMaskedLM" if model.config.bert.positions == "roberta" else "BertForMaskedLM"
    else:
        save_gpt2_folder(model, folder, _tokenizer(r, model.config.vocab_size))
        architecture = "GPT2LMHeadModel"
    return {"folder": folder, "architecture": architecture, "notes": notes}
