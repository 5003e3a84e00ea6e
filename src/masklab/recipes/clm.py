"""GPT causal language modelling on text: ``pretrain_clm`` (nanoGPT's recipe), ``generate`` and ``perplexity``.

``pretrain_clm`` trains (or loads) a tokenizer, encodes the corpus into one token stream, holds out its end
for validation and trains a GPT on random windows. A run directory holds fit's files plus ``tokenizer.json``,
``lm.json`` (data spec, split, tokenizer fingerprint) and ``eval.json`` (validation loss). ``generate`` and
``perplexity`` read such runs or a Hugging Face GPT-2 folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from masklab.core.device import resolve_device
from masklab.recipes.common import TrainOptions, locked_run, train_config, train_run
from masklab.recipes.rank_tokenizer import drop_handoff, is_rank0, rank_shared_tokenizer
from masklab.tokenizers.text import TokenizerKind
from masklab.train import FitResult
from masklab.train.run import Run

if TYPE_CHECKING:
    from masklab.data.shards import TokenSpan

LM_INFO = "lm.json"
DEFAULT_DATA = "builtin:shakespeare"
# Checked with a message of their own (check_resume_corpus), and absent from an older run's lm.json.
CORPUS_KEYS = tuple(f"{LM_INFO}.corpus.{k}" for k in ("shards_sha256", "tokenizer_sha256", "tokens"))


# ------------------------------------------------------------------------------------------- run helpers
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


def load_lm_run(run: str | Path, device: str = "cpu"):
    """(model in eval mode, tokenizer, lm info dict) of a ``clm`` run or a Hugging Face GPT-2 folder
    (``config.json`` + ``*.safetensors`` + ``tokenizer.json``); a vocabulary mismatch is an error."""
    from masklab.tokenizers.text import TextTokenizer

    r = Run(run)
    hf_type = hf_model_type(r.path)
    if hf_type is None:
        kind = r.kind()
        if kind != "clm":
            raise ValueError(f"{r.path} is a {kind!r} run; this command needs a causal LM run (masklab pretrain clm)")
    elif hf_type != "gpt2":
        raise ValueError(f"{r.path} holds a Hugging Face {hf_type!r} model; only GPT-2 checkpoints can be read")
    if not (r.path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{r.path} has no tokenizer.json")
    info = r.read_sidecar(LM_INFO)
    tokenizer = TextTokenizer.load(r.path / "tokenizer.json")
    if hf_type is None:
        model = r.load_model(device)
    else:
        from masklab.interop.hf.gpt2 import load_hf_gpt2

        model = load_hf_gpt2(r.path).to(str(resolve_device(device)))
    # HF checkpoints may round their embedding table up (GPT-2's is exact); a masklab run must match exactly.
    vocab = model.config.vocab_size
    if not (tokenizer.vocab_size <= vocab if hf_type else tokenizer.vocab_size == vocab):
        raise ValueError(
            f"{r.path}/tokenizer.json has {tokenizer.vocab_size} ids but the model's vocabulary is {vocab}"
        )
    if info.get("tokenizer_sha256") not in (None, tokenizer.fingerprint):
        raise ValueError(f"{r.path}/tokenizer.json is not the tokenizer this model was trained with")
    return model, tokenizer, info


def read_settings(spec: str, info: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """``(spec, {"doc_per", "text_field"})`` to read ``spec``'s documents as the run read them: with the run's
    recorded settings (an older run recorded none: the defaults); a prepared folder is read from the text it
    was prepared from, with the settings it was prepared with."""
    from masklab.data.shards import is_prepared

    settings = {"doc_per": info.get("doc_per", "auto"), "text_field": info.get("text_field", "text")}
    if spec.startswith("builtin:") or not is_prepared(spec):
        return spec, settings
    from masklab.data.shards.inputs import SETTINGS_NAME

    prepared = json.loads((Path(spec) / SETTINGS_NAME).read_text(encoding="utf-8"))
    return str(prepared["data"]), {k: str(prepared.get(k, v)) for k, v in settings.items()}


def encode_stream(tokenizer, texts) -> torch.Tensor:
    """Documents -> one long token stream ``(T,)``, separated by the tokenizer's ``sep`` token if it has one."""
    from masklab.data.lm import token_stream

    return token_stream(tokenizer, texts, separator=tokenizer.role_id("sep"))


# -------------------------------------------------------------------------------------------- pretrain
def pretrain_clm(
    out: str | Path,
    *,
    data: str = DEFAULT_DATA,
    preset: str = "gpt-char",
    context: int | None = None,
    dim: int | None = None,
    depth: int | None = None,
    heads: int | None = None,
    dropout: float | None = None,
    tokenizer: str | None = None,
    init_from: str | None = None,
    tokenizer_kind: TokenizerKind = "char",
    vocab_size: int = 2000,
    val_fraction: float = 0.1,
    eval_batches: int | None = None,
    text_field: str = "text",
    train: TrainOptions | None = None,
    resume: bool = False,
) -> FitResult:
    """Train a GPT on ``data`` into ``out``; the last ``val_fraction`` of the token stream is validation.

    ``init_from`` starts from a Hugging Face GPT-2 folder or a clm run (its architecture and tokenizer).
    Training defaults are nanoGPT's shakespeare_char recipe on CPU: 2000 steps of 12, lr 1e-3 -> 1e-4
    cosine, 100 warmup steps, betas (0.9, 0.99), weight decay 0.1.
    """
    data = None if data is None else os.fspath(data)  # a Path works as a str does
    run = Run(out)
    train = train or TrainOptions()
    arguments: dict[str, Any] = {
        "data": data, "preset": preset, "context": context, "dim": dim, "depth": depth, "heads": heads,
        "dropout": dropout, "tokenizer": tokenizer, "init_from": init_from, "tokenizer_kind": tokenizer_kind,
        "vocab_size": vocab_size, "val_fraction": val_fraction, "eval_batches": eval_batches,
        "text_field": text_field, "train": train.to_dict(),
    }  # fmt: skip
    with locked_run(run):  # before any data is read: a second writer is refused at once
        return _pretrain_clm(run, arguments, train, resume, **{k: v for k, v in arguments.items() if k != "train"})


def _pretrain_clm(run: Run, arguments: dict[str, Any], train: TrainOptions, resume: bool, *, data: str, preset: str,
                  context: int | None, dim: int | None, depth: int | None, heads: int | None, dropout: float | None,
                  tokenizer: str | None, init_from: str | None, tokenizer_kind: TokenizerKind, vocab_size: int,
                  val_fraction: float, eval_batches: int | None, text_field: str) -> FitResult:  # fmt: skip
    """:func:`pretrain_clm` holding the run's lock."""
    from masklab.core.contract import preset_config, saved_config
    from masklab.data.lm import LMWindows, split_by_position
    from masklab.data.text import TextCorpus, load_text_corpus
    from masklab.models.clm import GPT, GPTConfig, evaluate_nll
    from masklab.models.clm.model import PRESETS
    from masklab.tokenizers.text import TextTokenizer

    if not resume:
        run.check_fresh()
    source: Path | TextCorpus  # the prepared folder (shards), or a built-in corpus in memory
    corpus: dict[str, Any] | None = None
    if not data.startswith("builtin:"):  # tokenised once into RUN/prepared, then memory-mapped
        from masklab.data.shards import check_resume_corpus, corpus_identity, prepared_for_run

        tok_file = Path(init_from) / "tokenizer.json" if init_from else tokenizer
        source = prepared_for_run(data, run.path, tokenizer=tok_file, tokenizer_kind=tokenizer_kind,
                                  vocab_size=vocab_size, lowercase=False, text_field=text_field,
                                  workers=None if train.workers is None else max(train.workers, 1))  # fmt: skip
        corpus = corpus_identity(source)  # a resume on other shards is refused (an older run recorded none)
        if resume:
            check_resume_corpus(run.read_sidecar(LM_INFO).get("corpus"), corpus, source, run.path / LM_INFO)
    else:
        source = load_text_corpus(data)
    torch.manual_seed(train.seed_or_0)  # the initial weights
    if init_from:
        given = {"dim": dim, "depth": depth, "heads": heads, "dropout": dropout, "tokenizer": tokenizer}
        clash = [f"--{k}" for k, v in given.items() if v is not None]
        if clash:
            raise ValueError(f"--init-from takes the architecture and tokenizer from {init_from}; drop {clash}")
        model, tok, _ = load_lm_run(init_from)
        context = context or model.config.context
        if context > model.config.context:
            raise ValueError(f"--context {context} exceeds the {model.config.context} positions of {init_from}")
        print(f"masklab: starting from {init_from}")
    else:
        if isinstance(source, Path):
            tok = TextTokenizer.load(source / "tokenizer.json")
        elif resume and (run.path / "tokenizer.json").is_file():
            tok = TextTokenizer.load(run.path / "tokenizer.json")
        elif tokenizer:
            tok = TextTokenizer.load(tokenizer)
        else:  # character LMs keep case: capitals carry speaker names and sentence starts in Shakespeare
            key = {"recipe": "pretrain_clm", "data": data, "tokenizer_kind": tokenizer_kind, "vocab_size": vocab_size}
            trained = partial(TextTokenizer.train, source.texts, tokenizer_kind, vocab_size=vocab_size, lowercase=False)
            tok = rank_shared_tokenizer(run.path, key, trained)  # under torchrun: rank 0's, loaded on every rank
        if preset not in PRESETS:
            raise ValueError(f"--preset {preset!r} is unknown; known: {', '.join(PRESETS)}")
        sizes = {"context": context, "dim": dim, "depth": depth, "heads": heads, "dropout": dropout}
        model = GPT(
            preset_config(
                GPTConfig,
                PRESETS,
                preset,
                vocab_size=tok.vocab_size,
                **{k: v for k, v in sizes.items() if v is not None},
            )
        )
        context = model.config.context
    model.train()
    train_tokens: torch.Tensor | TokenSpan  # an in-memory stream, or one read from the shards on demand
    val_tokens: torch.Tensor | TokenSpan
    if isinstance(source, TextCorpus):
        stream = encode_stream(tok, source.texts)
        train_tokens, val_tokens = split_by_position(stream, val_fraction)
        documents = len(source)
        n_tokens = len(stream)
    else:
        from masklab.data.shards import PreparedCorpus, TokenSpan

        span = TokenSpan(PreparedCorpus(source))
        train_tokens, val_tokens = span.split(val_fraction)
        documents = span.corpus.index["documents"]
        n_tokens = len(span)
    windows = LMWindows(train_tokens, context)
    print(f"masklab: {documents} documents -> {n_tokens:,} tokens ({len(val_tokens):,} held out); vocab "
          f"{tok.vocab_size}; {model.num_parameters():,} parameters")  # fmt: skip
    options = train.with_defaults(batch_size=12, lr=1e-3, min_lr=1e-4, weight_decay=0.1, log_every=50,
                                  ckpt_every=250, seed=0, device="auto")  # fmt: skip
    # 100 warmup steps; short runs (tests, small budgets) warm up for a tenth and still get a decay phase.
    cfg = train_config(options, model, windows, default_steps=2000, betas=(0.9, 0.99),
                       warmup=lambda steps: 100 if steps // 2 >= 100 else steps // 10)  # fmt: skip
    # How the documents were read: a prepared --data fixed them when it was prepared (perplexity, embed, probe).
    read = read_settings(data, {"text_field": text_field})[1]
    info = {"data": data, "val_fraction": val_fraction, "tokenizer_sha256": tok.fingerprint, "context": context,
            "init_from": init_from, "tokens": n_tokens, "train_tokens": len(train_tokens),
            "val_tokens": len(val_tokens), **read}  # fmt: skip
    if corpus is not None:
        info["corpus"] = corpus
    # A run trained before lm.json recorded how its documents were read resumes (the prepared cache checks them).
    recorded = run.read_sidecar(LM_INFO) if resume else {}
    unrecorded = tuple(f"{LM_INFO}.{k}" for k in read if recorded and k not in recorded)
    try:
        result = train_run(run, model, windows, cfg, model_config=saved_config(model), recipe="pretrain_clm",
                           arguments=arguments, sidecars={LM_INFO: info}, resume=resume,
                           ignore=(f"{LM_INFO}.tokenizer_sha256", *CORPUS_KEYS, *unrecorded),
                           before_fit=lambda: tok.save(run.path))  # fmt: skip
    finally:
        drop_handoff(run.path)  # each rank has read it: fit joined them all (or rank 0 failed: torchrun stops all)
    if not is_rank0():  # under torchrun rank 0 alone validates and writes the run's files
        return result
    scores: dict[str, Any] = {"step": result.step, "train_seconds": result.last_metrics.get("elapsed_s")}
    if len(val_tokens) > context:
        # Under --minutes the validation ends with the budget (the tokens it covered are reported).
        deadline = None if options.minutes is None else options.started + 60 * options.minutes - 1.0
        val = evaluate_nll(model.eval(), LMWindows(val_tokens, context, stride=context), max_batches=eval_batches,
                           deadline=deadline)  # fmt: skip
        scores["val"] = val
        print(f"masklab: validation loss {val['loss']:.4f} nats/token (perplexity {val['perplexity']:.2f}) on "
              f"{val['tokens']:,} held-out tokens after {result.step} steps")  # fmt: skip
    else:
        print(f"masklab: no validation loss: the held-out end has {len(val_tokens)} tokens (< one window)")
    run.write_sidecar("eval.json", scores)
    print(f"masklab: run written to {run.path}")
    return result


# ------------------------------------------------------------------------------------------- inference
def generate(
    run: str | Path,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = 200,
    top_p: float | None = None,
    stop: Sequence[str] = (),
    num_samples: int = 1,
    seed: int = 0,
    device: str = "auto",
) -> list[tuple[str, str]]:
    """``(prompt, continuation)`` for each prompt (``num_samples`` each), batched with left padding and a KV
    cache; one string is one prompt. Seeded: the same ``seed`` gives the same text; ``temperature=0`` is greedy."""
    from masklab.models.clm.generation import generate_text

    if isinstance(prompts, str):  # iterating it would make a prompt of each character
        prompts = [prompts]

    if max_tokens < 0:
        raise ValueError(f"--max-tokens must be >= 0, got {max_tokens}")
    if num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {num_samples}")
    model, tokenizer, _ = load_lm_run(run, str(resolve_device(device)))
    prompts = [p for p in prompts for _ in range(num_samples)]
    texts = generate_text(
        model, prompts, encode=lambda text: tokenizer.encode(text, add_special_tokens=False).ids,
        decode=tokenizer.decode, stop=list(stop), max_new_tokens=max_tokens, temperature=temperature,
        top_k=top_k or None, top_p=top_p, generator=torch.Generator().manual_seed(seed),
        pad_id=tokenizer.role_id("pad") or 0,
    )  # fmt: skip
    return list(zip(prompts, texts, strict=True))


def perplexity(run: str | Path, *, data: str | None = None, split: str | None = None, batch_size: int = 32,
               max_batches: int | None = None, device: str = "auto") -> dict[str, Any]:  # fmt: skip
    """Mean next-token cross entropy over non-overlapping windows of the model's context. Without ``data``:
    the held-out end of the run's own data (``split`` val); with ``data``: all of it (``split`` all). Text is
    read with the run's ``text_field`` / ``doc_per``; the run's own data, when its prepared stream is there
    (``RUN/prepared`` or a prepared ``--data``), is read from it: ``val`` / ``train`` are exactly the tokens the
    run held out / trained on. ``scored`` in the result says which tokens were scored."""
    from masklab.data.lm import LMWindows
    from masklab.models.clm import evaluate_nll

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    model, tokenizer, info = load_lm_run(run, str(resolve_device(device)))
    spec = data or info.get("data")
    if spec is None:
        raise ValueError(f"{run} does not record its training data; pass --data")
    split = split or ("all" if data else "val")
    if split not in ("val", "train", "all"):
        raise ValueError(f"--split must be val, train or all, got {split!r}")
    tokens, scored = _scored_tokens(Path(run), info, tokenizer, spec, own=data is None, split=split)
    context = model.config.context
    if len(tokens) < context + 1:
        raise ValueError(f"--data {spec} ({split}) has {len(tokens)} tokens, fewer than one window of {context + 1}")
    scores = evaluate_nll(model, LMWindows(tokens, context, stride=context), batch_size=batch_size,
                          max_batches=max_batches)  # fmt: skip
    return {"run": str(run), "data": spec, "split": split, "scored": scored, **scores}


def _scored_tokens(run: Path, info: dict[str, Any], tokenizer, spec: str, *, own: bool, split: str):
    """``(tokens, what they are)`` of ``split`` of ``spec``: a prepared folder's stream (a prepared ``spec``, or
    the run's ``RUN/prepared`` for its own data when it still holds the corpus the run trained on), else the
    text read with the run's settings and tokenised now."""
    from masklab.data.lm import split_by_position
    from masklab.data.shards import PreparedCorpus, TokenSpan, corpus_identity, is_prepared
    from masklab.data.shards.run_data import CACHE_NAME
    from masklab.data.text import load_text_corpus

    fraction = info.get("val_fraction", 0.1) if split != "all" else 0.0
    folder, note = None, ""
    if not spec.startswith("builtin:"):
        if is_prepared(spec):
            folder = Path(spec)
        elif own and is_prepared(run / CACHE_NAME):
            recorded, found = info.get("corpus") or {}, corpus_identity(run / CACHE_NAME)
            if all(found.get(k) == v for k, v in recorded.items()):
                folder = run / CACHE_NAME
            else:
                note = f"; {run / CACHE_NAME} no longer holds the corpus the run trained on"
    if folder is not None:
        corpus = PreparedCorpus(folder)
        if corpus.index.get("tokenizer_sha256") != tokenizer.fingerprint:
            raise ValueError(f"{folder} was prepared with another tokenizer than {run}'s")
        train, val = TokenSpan(corpus).split(fraction)
        span = val if split == "val" else train
        return span, f"{split}: positions {span.start:,} to {span.stop:,} of the prepared token stream {folder}"
    source, settings = read_settings(spec, info)
    train_t, val_t = split_by_position(encode_stream(tokenizer, load_text_corpus(source, **settings).texts), fraction)
    field = "" if source.startswith("builtin:") else f", text field {settings['text_field']!r}"
    scored = f"{split}: {source} tokenised now (doc_per {settings['doc_per']}{field}){note}"
    return (val_t if split == "val" else train_t), scored
