"""Open a finished run for inference: its kind and JSON sidecars, its model (and tokenizer), its held-out split,
and the checks an input must pass against it. The CLI commands and :mod:`masklab.serve` both load runs here.

A run directory is what :func:`masklab.train.fit` writes (``config.json`` with the model ``kind``,
``checkpoint.safetensors``) plus per-kind sidecars: ``data.json`` (mae), ``text.json`` + ``tokenizer.json``
(mlm), ``lm.json`` + ``tokenizer.json`` (clm), ``table.json`` (table). Hugging Face GPT-2 and BertForMaskedLM
folders (``config.json`` with ``model_type``, ``model.safetensors``, ``tokenizer.json``) load too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA_FILE = "data.json"  # mae: the --data value and the seeded train/test split
TEXT_INFO = "text.json"  # mlm: data spec, sequence length, tokenizer fingerprint
LM_INFO = "lm.json"  # clm: the same for a causal LM
TABLE_FILE = "table.json"  # table: excluded columns and the label
TEST_FRACTION = 0.2  # images held out from pretraining, used by probe / reconstruct / quality numbers
SPLIT_SEED = 0


def run_kind(run_dir: str | Path) -> str:
    """Read the model kind of a training run directory (``RUN/config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a masklab run: {path} does not exist")
    try:
        kind = json.loads(path.read_text())["kind"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a valid masklab run config (need a JSON object with 'kind')") from err
    return str(kind)


def read_run_info(run_dir: str | Path, name: str) -> dict:
    """A run's optional JSON sidecar ``RUN/name`` (``data.json``, ``text.json``, ...); ``{}`` when absent (a run
    trained without the CLI), ``ValueError`` naming the file when it is not valid JSON."""
    path = Path(run_dir) / name
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def hf_model_type(folder: str | Path) -> str | None:
    """``model_type`` of a Hugging Face checkpoint folder (its config.json has no masklab ``kind``), else None."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(config, dict) or "kind" in config:
        return None
    return config.get("model_type")


def check_vocab(tokenizer, vocab_size: int, where: str, fingerprint: str | None = None) -> None:
    """Refuse a tokenizer whose ids do not match the model's embedding table."""
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(f"vocabulary mismatch: {where} has {tokenizer.vocab_size} ids, the model {vocab_size}")
    if fingerprint is not None and tokenizer.fingerprint != fingerprint:
        raise ValueError(f"vocabulary mismatch: {where} is not the tokenizer this model was trained with")


# ------------------------------------------------------------------------------------------------ images
def load_mae_run(run_dir: str | Path, device: str = "cpu"):
    """The trained :class:`~masklab.models.mae.MAE` of ``run_dir`` in eval mode (``ValueError`` if not an MAE run)."""
    from masklab.core.device import resolve_device
    from masklab.train.checkpoint import load_model

    kind = run_kind(run_dir)
    if kind != "mae":
        raise ValueError(f"{run_dir} is a {kind!r} run, not an MAE run")
    return load_model(run_dir, device=str(resolve_device(device)))


def heldout_split(spec: str, run_dir: str | Path, model, *, skip_bad: bool = False):
    """``(dataset, train_idx, test_idx)`` of image data ``spec`` at the model's size/channels.

    The run's own data (``data.json``) gets the run's split (its test examples were never trained on); other
    data gets a fresh split with :data:`TEST_FRACTION` and :data:`SPLIT_SEED`.
    """
    from masklab.data.images import load_images, split_indices

    info = read_run_info(run_dir, DATA_FILE)
    cfg = model.config
    dataset = load_images(
        spec, image_size=cfg.image_size, channels=cfg.channels, skip_bad=skip_bad, min_side=cfg.patch_size
    )
    same = spec == info.get("spec")
    fraction = info.get("test_fraction", TEST_FRACTION) if same else TEST_FRACTION
    seed = info.get("split_seed", SPLIT_SEED) if same else SPLIT_SEED
    train_idx, test_idx = split_indices(len(dataset), dataset.labels, fraction, seed)
    return dataset, train_idx, test_idx


# -------------------------------------------------------------------------------------------------- text
def load_text_run(run_dir: str | Path, device: str = "cpu"):
    """(model in eval mode, tokenizer, text info dict) of an ``mlm`` run; a vocabulary mismatch is an error."""
    from masklab.tokenizers.text import TextTokenizer
    from masklab.train.checkpoint import load_model

    run_dir = Path(run_dir)
    info = read_run_info(run_dir, TEXT_INFO)
    if not (run_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{run_dir} has no tokenizer.json (not a text run?)")
    tokenizer = TextTokenizer.load(run_dir / "tokenizer.json")
    model: Any = load_model(run_dir, device=device)
    check_vocab(tokenizer, model.cfg.bert.vocab_size, f"{run_dir}/tokenizer.json", info.get("tokenizer_sha256"))
    return model, tokenizer, info


def load_mlm(run: str | Path, device: str = "cpu"):
    """(model in eval mode, tokenizer) of an ``mlm`` run or a Hugging Face BertForMaskedLM folder."""
    from masklab.interop.hf.bert import load_bert_mlm
    from masklab.tokenizers.text import TextTokenizer

    run = Path(run)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run} has no config.json (expected an mlm run or an HF BERT folder)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("kind") == "mlm":
        model, tokenizer, _ = load_text_run(run, device)
        return model, tokenizer
    if config.get("model_type") != "bert":
        raise ValueError(f"{run} is neither an mlm run nor an HF BERT folder (kind={config.get('kind')!r})")
    from safetensors import safe_open

    if not (run / "model.safetensors").is_file():
        raise FileNotFoundError(f"{run} has no model.safetensors (only safetensors weights are loaded)")
    with safe_open(str(run / "model.safetensors"), "pt") as f:
        if "cls.predictions.transform.dense.weight" not in f.keys():  # noqa: SIM118 - safe_open has no __contains__
            raise ValueError(f"{run} holds a BertModel without an MLM head (cls.predictions.*): it cannot fill masks")
    tokenizer = TextTokenizer.load(run)
    check_vocab(tokenizer, int(config.get("vocab_size", -1)), str(run))
    model, _ = load_bert_mlm(run, mask_id=tokenizer.mask_id, special_ids=tokenizer.special_ids)
    return model.to(device).eval(), tokenizer


def load_lm_run(run_dir: str | Path, device: str = "cpu"):
    """(model in eval mode, tokenizer, lm info dict) of a ``clm`` run or a Hugging Face GPT-2 folder
    (``config.json`` + ``*.safetensors`` + ``tokenizer.json``); a vocabulary mismatch is an error."""
    from masklab.tokenizers.text import TextTokenizer
    from masklab.train.checkpoint import load_model

    run_dir = Path(run_dir)
    hf_type = hf_model_type(run_dir)
    if hf_type is None:
        kind = run_kind(run_dir)
        if kind != "clm":
            raise ValueError(f"{run_dir} is a {kind!r} run; this command needs a causal LM run (masklab pretrain clm)")
    elif hf_type != "gpt2":
        raise ValueError(f"{run_dir} holds a Hugging Face {hf_type!r} model; only GPT-2 checkpoints can be read")
    if not (run_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{run_dir} has no tokenizer.json")
    info = read_run_info(run_dir, LM_INFO)
    tokenizer = TextTokenizer.load(run_dir / "tokenizer.json")
    model: Any
    if hf_type is None:
        model = load_model(run_dir, device=device)
    else:
        from masklab.interop.hf.gpt2 import load_hf_gpt2

        model = load_hf_gpt2(run_dir).to(device)
    # HF checkpoints may round their embedding table up (GPT-2's is exact); a masklab run must match exactly.
    fits = tokenizer.vocab_size <= model.cfg.vocab_size if hf_type else tokenizer.vocab_size == model.cfg.vocab_size
    if not fits:
        raise ValueError(
            f"{run_dir}/tokenizer.json has {tokenizer.vocab_size} ids but the model's vocabulary is "
            f"{model.cfg.vocab_size}"
        )
    if info.get("tokenizer_sha256") not in (None, tokenizer.fingerprint):
        raise ValueError(f"{run_dir}/tokenizer.json is not the tokenizer this model was trained with")
    return model, tokenizer, info


# ------------------------------------------------------------------------------------------------ tables
def read_table_info(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/table.json`` (``{}`` for a run trained without the CLI)."""
    return read_run_info(run_dir, TABLE_FILE)


def inference_table(run_dir: str | Path, source: str, *, exclude: tuple[str, ...] = (), label: str | None = None):
    """The input of ``impute`` / ``score`` as a :class:`masklab.data.tables.Table`, checked against the run.

    ``source`` is a file or ``builtin:NAME``. Columns that training kept out of the features (its
    ``--exclude`` and label, from ``table.json``) are set aside again when present; a column the model does
    not know is an error naming it (set it aside with ``--exclude``); so is a training column that is absent.
    """
    from masklab.data.tables import load_table, read_table_file, split_columns
    from masklab.train.checkpoint import read_run_config

    names = [c["name"] for c in read_run_config(run_dir)["model"]["schema"]["columns"]]
    info = read_table_info(run_dir)
    if source.startswith("builtin:"):
        table = load_table(source, exclude=exclude, label=label)
    else:
        frame = read_table_file(source)
        columns = [str(c) for c in frame.columns]
        if label is None and info.get("label") in columns:
            label = info["label"]
        trained_out = [c for c in info.get("exclude", []) if c in columns and c not in exclude]
        table = split_columns(frame, exclude=(*exclude, *trained_out), label=label)
        table = type(table)(table.frame, str(source), table.labels)
    unknown = [c for c in table.frame.columns if c not in names]
    if unknown:
        raise ValueError(
            f"{source}: unknown column(s) {unknown}; the model was trained on {names} "
            "(pass --exclude COL,... for columns that are not features)"
        )
    absent = [n for n in names if n not in table.frame.columns]
    if absent:
        raise ValueError(f"{source}: column(s) {absent} the model was trained on are missing")
    return table
