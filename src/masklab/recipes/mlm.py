"""BERT masked language modelling on text: pretraining, and reading an MLM run back.

``pretrain_mlm`` trains (or loads) a tokenizer, packs the corpus into ``(N, seq_len)`` blocks and pretrains;
a run directory holds fit's files plus ``tokenizer.json``, ``text.json`` (data spec, sequence length,
tokenizer fingerprint) and ``eval.json`` (held-out masked-token accuracy). ``masked`` is True = hidden
(to predict); ``padding`` True = padded.
"""

from __future__ import annotations

import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from masklab.recipes.common import TrainOptions, locked_run, train_config, train_run
from masklab.recipes.mae import recorded_spec, run_data
from masklab.recipes.rank_tokenizer import drop_handoff, is_rank0, rank_shared_tokenizer
from masklab.tokenizers.text import TokenizerKind
from masklab.train import FitResult
from masklab.train.run import Run

TEXT_INFO = "text.json"
DEFAULT_DATA = "builtin:bbc-news"
MASK_KINDS = ("bernoulli", "random", "whole_word", "span")
# Checked with a message of their own (check_resume_corpus), and absent from an older run's text.json.
CORPUS_KEYS = tuple(f"{TEXT_INFO}.corpus.{k}" for k in ("shards_sha256", "tokenizer_sha256", "tokens"))


# ------------------------------------------------------------------------------------------- run helpers
def check_vocab(tokenizer, vocab_size: int, where: str, fingerprint: str | None = None) -> None:
    """Refuse a tokenizer whose ids do not match the model's embedding table."""
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(f"vocabulary mismatch: {where} has {tokenizer.vocab_size} ids, the model {vocab_size}")
    if fingerprint is not None and tokenizer.fingerprint != fingerprint:
        raise ValueError(f"vocabulary mismatch: {where} is not the tokenizer this model was trained with")


def prepared_source(spec: str) -> dict[str, str] | None:
    """How the prepared folder ``spec`` was made, from its ``prepare.json``: ``{"data", "doc_per", "text_field"}``
    (the text it was prepared from and how its documents were read); None when ``spec`` is not a prepared folder."""
    import json

    from masklab.data.shards import is_prepared
    from masklab.data.shards.inputs import SETTINGS_NAME

    if spec.startswith("builtin:") or not is_prepared(spec) or not (Path(spec) / SETTINGS_NAME).is_file():
        return None
    settings = json.loads((Path(spec) / SETTINGS_NAME).read_text(encoding="utf-8"))
    defaults = {"data": "", "doc_per": "auto", "text_field": "text"}
    return {k: str(settings.get(k) or v) for k, v in defaults.items()}


def load_mlm_run(run: str | Path, device: str = "cpu"):
    """(model in eval mode, tokenizer, text info dict) of an ``mlm`` run; a vocabulary mismatch is an error."""
    from masklab.tokenizers.text import TextTokenizer

    r = Run(run)
    info = r.read_sidecar(TEXT_INFO)
    if not (r.path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{r.path} has no tokenizer.json (not a text run?)")
    tokenizer = TextTokenizer.load(r.path / "tokenizer.json")
    model = r.load_model(device)
    check_vocab(tokenizer, model.config.bert.vocab_size, f"{r.path}/tokenizer.json", info.get("tokenizer_sha256"))
    return model, tokenizer, info


def encode_docs(tokenizer, texts, seq_len: int, labels=None, *, what: str = "documents"):
    """Documents -> ``[CLS] text [SEP]`` blocks ``(N, seq_len)`` (padded; a longer document keeps its first
    ``seq_len - 2`` tokens, and how many ``what`` were cut is said on stderr)."""
    from masklab.data.text import encode_truncated

    encoded = tokenizer.encode_batch(texts, add_special_tokens=False)
    lengths = [len(doc.ids) for doc in encoded]
    cut = sum(n > seq_len - 2 for n in lengths)
    if cut:
        print(f"masklab: note: {cut} of {len(lengths)} {what} are longer than the model reads ({seq_len - 2} tokens "
              f"between [CLS] and [SEP]; the longest has {max(lengths)}): each keeps its first {seq_len - 2}",
              file=sys.stderr)  # fmt: skip
    ids = dict(cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)
    return encode_truncated(encoded, seq_len, labels=labels, **ids)


HELDOUT_CAP = 4096  # held-out rows scored after training (a large corpus's 5% would take longer than training)


def heldout_accuracy(model, blocks, *, batch_size: int = 64, seed: int = 1234, device: str = "cpu",
                     until: float | None = None) -> dict:  # fmt: skip
    """Masked-token top-1 accuracy and loss on the first ``HELDOUT_CAP`` rows of ``blocks`` (``TokenBlocks`` or
    anything with ``len`` + ``get_batch``) with a fixed masking seed (same masks every call). ``until``: a
    ``time.monotonic()`` deadline (a ``--minutes`` budget) after which no further batch is started (one always
    is); ``rows`` says how many of the ``rows_held_out`` were scored."""
    from masklab.data.text import TextBlocksData, TokenBlocks

    data = TextBlocksData(blocks) if isinstance(blocks, TokenBlocks) else blocks
    generator = torch.Generator().manual_seed(seed)
    correct, total, loss_sum = 0, 0, 0.0
    model.eval()
    n = min(len(data), HELDOUT_CAP)
    with torch.no_grad():
        scored = 0
        for start in range(0, n, batch_size):
            if until is not None and start > 0 and time.monotonic() > until:
                break
            batch = data.get_batch(torch.arange(start, min(start + batch_size, n)))
            scored = min(start + batch_size, n)
            batch = {k: v.to(device) for k, v in batch.items()}
            drawn = model.draw(batch, generator)
            inputs, masked = drawn.inputs, drawn.masked
            logits = model.predict_masked(model(inputs, batch["padding"]), masked)
            targets = batch["ids"][masked]
            correct += int((logits.argmax(-1) == targets).sum())
            loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
            total += targets.numel()
    return {"mlm_top1": correct / max(total, 1), "mlm_loss": loss_sum / max(total, 1), "masked_tokens": total,
            "rows": scored, "rows_held_out": n}  # fmt: skip


# -------------------------------------------------------------------------------------------- pretrain
def _tokenizer(run: Run, resume: bool, init_from, tokenizer, corpus, tokenizer_kind: TokenizerKind, vocab_size: int,
               key: dict[str, Any]):  # fmt: skip
    from masklab.tokenizers.text import TextTokenizer

    if resume and (run.path / "tokenizer.json").is_file():
        return TextTokenizer.load(run.path / "tokenizer.json")
    if init_from:
        return TextTokenizer.load(init_from)
    if tokenizer:
        return TextTokenizer.load(tokenizer)
    # Under torchrun rank 0 trains it and the other ranks load it (trainers differ from process to process).
    return rank_shared_tokenizer(run.path, key, partial(TextTokenizer.train, corpus.texts, tokenizer_kind,
                                                        vocab_size=vocab_size))  # fmt: skip


def pretrain_mlm(
    out: str | Path,
    *,
    data: str = DEFAULT_DATA,
    preset: str = "bert-mini",
    norm: str = "post",
    seq_len: int = 128,
    tokenizer: str | None = None,
    tokenizer_kind: TokenizerKind = "wordpiece",
    vocab_size: int = 8000,
    init_from: str | None = None,
    mask: str = "bernoulli",
    mask_ratio: float = 0.15,
    doc_per: str = "auto",
    text_field: str = "text",
    holdout: float = 0.05,
    export_hf: str | None = None,
    train: TrainOptions | None = None,
    resume: bool = False,
) -> FitResult:
    """Pretrain a BERT MLM on ``data`` (``.txt``/``.jsonl`` file or folder, ``builtin:NAME``) into ``out``.

    ``mask`` is the masking kind (``bernoulli`` BERT, ``random``, ``whole_word``, ``span``), ``mask_ratio``
    the share of tokens hidden. ``holdout`` of the documents are kept for ``eval.json``; ``init_from`` starts
    from a Hugging Face BERT folder; ``export_hf`` also writes an HF ``BertForMaskedLM`` folder. Training
    defaults: 600 steps of 32, lr 1e-3, 40 warmup steps, betas (0.9, 0.98), weight decay 0.01.
    """
    data = None if data is None else os.fspath(data)  # a Path works as a str does
    from masklab.models.mlm import PRESETS as BERT_PRESETS

    run = Run(out)
    train = train or TrainOptions()
    arguments: dict[str, Any] = {
        "data": data, "preset": preset, "norm": norm, "seq_len": seq_len, "tokenizer": tokenizer,
        "tokenizer_kind": tokenizer_kind, "vocab_size": vocab_size, "init_from": init_from, "mask": mask,
        "mask_ratio": mask_ratio, "doc_per": doc_per, "text_field": text_field, "holdout": holdout,
        "export_hf": export_hf, "train": train.to_dict(),
    }  # fmt: skip
    if preset not in BERT_PRESETS:
        raise ValueError(f"--preset {preset!r} is unknown; known: {', '.join(BERT_PRESETS)}")
    if mask not in MASK_KINDS:
        raise ValueError(f"unknown --mask {mask!r} for mlm; known: {', '.join(MASK_KINDS)}")
    if export_hf:  # before any data is prepared or a step trained
        from masklab.recipes.export import check_mlm_export

        check_mlm_export(export_hf, out=run.path, norm=norm, init_from=init_from)
    with locked_run(run):  # before any data is read: a second writer is refused at once
        return _pretrain_mlm(run, arguments, train, resume, **{k: v for k, v in arguments.items() if k != "train"})


def _pretrain_mlm(run: Run, arguments: dict[str, Any], train: TrainOptions, resume: bool, *, data: str, preset: str,
                  norm: str, seq_len: int, tokenizer: str | None, tokenizer_kind: TokenizerKind, vocab_size: int,
                  init_from: str | None, mask: str, mask_ratio: float, doc_per: str, text_field: str, holdout: float,
                  export_hf: str | None) -> FitResult:  # fmt: skip
    """:func:`pretrain_mlm` once its arguments are checked, holding the run's lock."""
    from masklab.core.contract import preset_config, saved_config
    from masklab.core.device import resolve_device
    from masklab.data.shards import (
        PreparedCorpus,
        ShardBlocksData,
        check_resume_corpus,
        corpus_identity,
        prepared_for_run,
    )
    from masklab.data.text import TextBlocksData, TokenBlocks, holdout_split, load_text_corpus, pack_sequences
    from masklab.interop.hf.masked_lm import load_hf_mlm
    from masklab.models.mlm import PRESETS as BERT_PRESETS
    from masklab.models.mlm import BertConfig, BertForMLM, MLMConfig
    from masklab.tokenizers.text import TextTokenizer

    if not resume:
        run.check_fresh()
    options = train.with_defaults(batch_size=32, lr=1e-3, weight_decay=0.01, log_every=20, ckpt_every=200, seed=0,
                                  device="auto")  # fmt: skip
    seed = options.seed_or_0
    previous = run.read_sidecar(TEXT_INFO).get("data") if resume else None  # an old run's relative path is kept
    # A prepared --data fixed how its documents were read (and from what): embed, probe and finetune read them so.
    prepared = prepared_source(data)
    if prepared is not None:
        doc_per, text_field = prepared["doc_per"], prepared["text_field"]
    info = {"data": recorded_spec(data, previous), "seq_len": seq_len, "holdout": holdout, "seed": seed,
            "doc_per": doc_per, "text_field": text_field}  # fmt: skip
    if prepared is not None and prepared["data"]:
        info["source"] = prepared["data"]
    # A path is tokenised once into RUN/prepared (memory-mapped shards); built-ins are read into memory.
    # --workers 0 (batches built in this process) tokenises in one process, not in none.
    workers = None if train.workers is None else max(train.workers, 1)
    shards = None if data.startswith("builtin:") else prepared_for_run(
        data, run.path, tokenizer=init_from or tokenizer, tokenizer_kind=tokenizer_kind, vocab_size=vocab_size,
        doc_per=doc_per, text_field=text_field, workers=workers)  # fmt: skip
    if shards is not None:  # the corpus's identity: a resume on other shards is refused (an older run has none)
        identity = corpus_identity(shards)
        info["corpus"] = identity
        if resume:
            check_resume_corpus(run.read_sidecar(TEXT_INFO).get("corpus"), identity, shards, run.path / TEXT_INFO)
    if shards is None:
        corpus = load_text_corpus(data, doc_per=doc_per, text_field=text_field)
        for line in corpus.skipped[:5]:
            print(f"masklab: skipped {line}")
        if len(corpus.skipped) > 5:
            print(f"masklab: skipped {len(corpus.skipped) - 5} more")
        train_idx, held_idx = holdout_split(len(corpus), holdout, seed)
        key = {"recipe": "pretrain_mlm", **info, "tokenizer_kind": tokenizer_kind, "vocab_size": vocab_size}
        tok = _tokenizer(run, resume, init_from, tokenizer, corpus.subset(train_idx), tokenizer_kind, vocab_size, key)
    else:
        tok = TextTokenizer.load(shards / "tokenizer.json")
    mlm_kwargs: dict[str, Any] = dict(special_ids=tok.special_ids, masking=mask, mask_ratio=mask_ratio)
    if resume and mask == "span":  # a run trained before span_unit existed keeps its token-level spans
        mlm_kwargs["span_unit"] = MLMConfig.from_dict(run.config()["model"]).span_unit
    torch.manual_seed(seed)  # the initial weights (and any head an HF folder lacks)
    if init_from:
        model, unused = load_hf_mlm(init_from, mask_id=tok.mask_id, **mlm_kwargs)
        print(f"masklab: loaded {init_from} (unused HF tensors: {', '.join(unused) or 'none'})")
    else:
        bert = preset_config(BertConfig, BERT_PRESETS, preset, vocab_size=tok.vocab_size, pad_id=tok.pad_id,
                             norm_first=norm == "pre", max_len=max(512, seq_len))  # fmt: skip
        model = BertForMLM(MLMConfig(bert=bert, mask_id=tok.mask_id, **mlm_kwargs))
    check_vocab(tok, model.config.bert.vocab_size, tokenizer or init_from or "the trained tokenizer")
    if seq_len > model.config.bert.max_tokens:
        raise ValueError(f"--seq-len {seq_len} exceeds the model's {model.config.bert.max_tokens} positions")

    pack = dict(sep_id=tok.sep_id, pad_id=tok.pad_id, cls_id=tok.cls_id)
    blocks: TextBlocksData | ShardBlocksData  # training rows: packed in memory, or read from the shards
    held: ShardBlocksData | TokenBlocks  # held-out rows: the end of the shards, or held-out documents packed
    if shards is None:
        encoded = tok.encode_batch(corpus.subset(train_idx).texts, add_special_tokens=False)
        blocks, source = TextBlocksData(pack_sequences(encoded, seq_len, **pack)), f"{len(corpus)} documents"
    else:  # a split by position: the last rows of the stream are held out
        blocks, held = ShardBlocksData(PreparedCorpus(shards), seq_len, **pack).split(holdout)
        source = f"{shards} ({blocks.total_rows} rows)"
    held_out = len(held_idx) if shards is None else len(held)
    unit = "documents" if shards is None else "rows"  # shards hold out the stream's last rows, not documents
    n_params = sum(p.numel() for p in model.parameters())
    print(f"masklab: {source} ({held_out} {unit} held out) -> {len(blocks)} sequences of {seq_len} tokens; "
          f"vocab {tok.vocab_size}; {n_params:,} parameters")  # fmt: skip
    # 40 warmup steps; short runs (tests, small budgets) warm up for a tenth and still get a decay phase.
    cfg = train_config(options, model, blocks, default_steps=600, betas=(0.9, 0.98),
                       warmup=lambda steps: 40 if steps // 2 >= 40 else steps // 10)  # fmt: skip
    # A run trained on a prepared folder before text.json took its settings from prepare.json resumes (its
    # recorded doc_per / text_field were the command's defaults, which a prepared folder never used).
    read_keys = () if prepared is None else tuple(f"{TEXT_INFO}.{k}" for k in ("doc_per", "text_field", "source"))
    try:
        result = train_run(run, model, blocks, cfg, model_config=saved_config(model), recipe="pretrain_mlm",
                           arguments=arguments, sidecars={TEXT_INFO: {**info, "tokenizer_sha256": tok.fingerprint}},
                           resume=resume, ignore=(f"{TEXT_INFO}.tokenizer_sha256", *CORPUS_KEYS, *read_keys),
                           before_fit=lambda: tok.save(run.path))  # fmt: skip
    finally:
        drop_handoff(run.path)  # each rank has read it: fit joined them all (or rank 0 failed: torchrun stops all)
    if not is_rank0():  # under torchrun rank 0 alone scores the held-out rows and writes the run's files
        return result
    if shards is None and held_idx:
        held = pack_sequences(tok.encode_batch(corpus.subset(held_idx).texts, add_special_tokens=False), seq_len,
                              **pack)  # fmt: skip
    if held_out:
        device = str(resolve_device(options.device or "auto"))
        until = None if options.minutes is None else options.started + 60 * options.minutes - 1.0  # the budget's end
        scores = heldout_accuracy(model.to(device), held, device=device, until=until)
        run.write_sidecar("eval.json", {"step": result.step, "heldout": scores, f"heldout_{unit}": held_out})
        if scores["rows"] < scores["rows_held_out"]:
            print(f"masklab: note: --minutes {options.minutes:g}: the held-out score covers the first {scores['rows']} "
                  f"of {scores['rows_held_out']} sequences (the budget ended)", file=sys.stderr)  # fmt: skip
        print(f"masklab: held-out masked-token top-1 {scores['mlm_top1']:.4f}, loss {scores['mlm_loss']:.4f} "
              f"({scores['masked_tokens']} masked tokens, step {result.step})")  # fmt: skip
    if export_hf:  # the code behind `masklab export-hf RUN DIR`
        from masklab.recipes.export import export_hf as export_run

        exported = export_run(run.path, export_hf)
        for note in exported["notes"]:
            print(f"masklab: note: {note}", file=sys.stderr)
        print(f"masklab: wrote HF {exported['architecture']} folder {export_hf}")
    print(f"masklab: run written to {run.path}")
    return result


def text_corpus(data: str | None, info: dict[str, Any], *, skip_bad: bool = False, where: str | Path = TEXT_INFO):
    """``(spec, corpus)``: ``data`` or the run's own data (recorded in ``where``, the run's text.json; an old
    run's relative path not found from here is an error), read as the run read it. ``skip_bad``: leave
    unreadable files out (named once on stderr)."""
    from masklab.data.text import UNREADABLE, load_text_corpus
    from masklab.recipes.embedding import note_skipped

    settings = {"doc_per": info.get("doc_per", "auto"), "text_field": info.get("text_field", "text")}
    if data is None and info.get("source") and not Path(info.get("data") or "").exists():
        spec, source = str(info["data"]), str(info["source"])  # the run's prepared folder is gone: its source text
    else:
        spec, _ = run_data(data, info.get("data"), where, DEFAULT_DATA)
        prepared = prepared_source(spec)  # a prepared folder is read from its source text, as it was prepared
        source = spec if prepared is None else prepared["data"]
        settings = settings if prepared is None else {k: prepared[k] for k in settings}
    if source != spec and not source.startswith("builtin:") and not Path(source).exists():
        raise FileNotFoundError(f"{spec} was prepared from {source or 'text it does not name'}, which is not found; "
                                "pass --data")  # fmt: skip
    corpus = load_text_corpus(source, **settings, skip_bad=skip_bad)
    note_skipped([s.removesuffix(f" {UNREADABLE}") for s in corpus.skipped if s.endswith(UNREADABLE)], "text file")
    blank = [s.removesuffix(" (blank)") for s in corpus.skipped if s.endswith(" (blank)")]
    if blank:  # rows name the documents by their place in the files, so none is mistaken for another
        shown = ", ".join(blank[:10]) + (f" and {len(blank) - 10} more" if len(blank) > 10 else "")
        print(f"masklab: left out {len(blank)} blank document{'s' if len(blank) != 1 else ''}: {shown}",
              file=sys.stderr)  # fmt: skip
    return spec, corpus
