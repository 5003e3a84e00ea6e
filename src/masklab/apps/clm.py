"""GPT causal language modeling on text (character-level or byte-level BPE; Shakespeare by default).

``masklab pretrain clm`` trains (or loads) a tokenizer, encodes the corpus into one token stream, holds out its
end for validation and trains a GPT on random windows (nanoGPT's recipe). A run directory holds fit's files plus
``tokenizer.json``, ``lm.json`` (data spec, split, tokenizer fingerprint) and ``eval.json`` (validation loss).
``masklab generate`` and ``masklab perplexity`` read such runs. Top-level imports are stdlib only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from masklab.apps import fit_run, read_run_info

LM_INFO = "lm.json"
DEFAULT_DATA = "builtin:shakespeare"


def add_pretrain_args(parser: argparse.ArgumentParser) -> None:
    from masklab.commands._train_args import add_train_args

    parser.add_argument("--data", default=DEFAULT_DATA, help="a .txt/.jsonl file or folder, or builtin:shakespeare | "
                        "builtin:bbc-news (default: %(default)s)")  # fmt: skip
    parser.add_argument("--preset", default="gpt-char", help="gpt-tiny | gpt-char | gpt2-small (default: gpt-char)")
    parser.add_argument("--context", type=int, default=None, help="tokens per training window (default: preset's)")
    parser.add_argument("--dim", type=int, default=None)
    parser.add_argument("--depth", type=int, default=None)
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument("--dropout", type=float, default=None)
    parser.add_argument("--tokenizer", default=None, help="tokenizer.json or a folder holding one (default: train)")
    parser.add_argument("--init-from", default=None, help="start from a Hugging Face GPT-2 folder or a clm run "
                        "(its weights and tokenizer) instead of a random init")  # fmt: skip
    parser.add_argument("--tokenizer-kind", choices=("char", "bpe"), default="char")
    parser.add_argument("--vocab-size", type=int, default=2000, help="vocabulary of a trained BPE tokenizer")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="the end of the token stream held out")
    parser.add_argument("--eval-batches", type=int, default=None, help="cap on validation batches (default: all)")
    # Defaults are nanoGPT's shakespeare_char recipe run on CPU (4 layers x 4 heads x 128, context 64, batch 12,
    # lr 1e-3 -> 1e-4 cosine, 100 warmup steps, beta2 0.99, weight decay 0.1, 2000 iterations).
    add_train_args(parser, batch_size=12, lr=1e-3, weight_decay=0.1, warmup=100, log_every=50, ckpt_every=250)
    parser.set_defaults(min_lr=1e-4)


# ------------------------------------------------------------------------------------------- run helpers
def resolve_device(name: str) -> str:
    from masklab.core.device import resolve_device as resolve

    return str(resolve(name))


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


def load_lm_run(run_dir: str | Path, device: str = "cpu"):
    """(model in eval mode, tokenizer, lm info dict) of a ``clm`` run or a Hugging Face GPT-2 folder
    (``config.json`` + ``*.safetensors`` + ``tokenizer.json``); a vocabulary mismatch is an error."""
    from masklab.apps import run_kind
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


def encode_stream(tokenizer, texts):
    """Documents -> one long token stream, separated by the tokenizer's ``sep`` token where it has one."""
    from masklab.data.lm import token_stream

    return token_stream(tokenizer, texts, separator=tokenizer.role_id("sep"))


def _tokenizer_for(args, texts, out: Path):
    from masklab.tokenizers.text import TextTokenizer

    if args.resume and (out / "tokenizer.json").is_file():
        return TextTokenizer.load(out / "tokenizer.json")
    if args.tokenizer:
        return TextTokenizer.load(args.tokenizer)
    # Character LMs keep case: capitals carry speaker names and sentence starts in Shakespeare.
    return TextTokenizer.train(texts, args.tokenizer_kind, vocab_size=args.vocab_size, lowercase=False)


def _model_config(args, vocab_size: int):
    from masklab.models.clm import GPTConfig
    from masklab.models.clm.model import PRESETS

    if args.preset not in PRESETS:
        raise ValueError(f"--preset {args.preset!r} is unknown; known: {', '.join(PRESETS)}")
    overrides = {k: getattr(args, k) for k in ("context", "dim", "depth", "heads", "dropout")}
    return GPTConfig.preset(args.preset, vocab_size=vocab_size, **{k: v for k, v in overrides.items() if v is not None})


# -------------------------------------------------------------------------------------------- pretrain
def pretrain(args: argparse.Namespace) -> int:
    from masklab.commands._train_args import train_config
    from masklab.core.io import atomic_write_json
    from masklab.data.lm import LMWindows, split_by_position
    from masklab.data.text import load_text_corpus
    from masklab.models.clm import GPT, evaluate_nll

    out = Path(args.out)
    corpus = load_text_corpus(args.data)
    if args.init_from:
        clash = [f"--{k}" for k in ("dim", "depth", "heads", "dropout", "tokenizer") if getattr(args, k) is not None]
        if clash:
            raise ValueError(f"--init-from takes the architecture and tokenizer from {args.init_from}; drop {clash}")
        model, tokenizer, _ = load_lm_run(args.init_from)
        context = args.context or model.cfg.context
        if context > model.cfg.context:
            raise ValueError(f"--context {context} exceeds the {model.cfg.context} positions of {args.init_from}")
        print(f"masklab: starting from {args.init_from}")
    else:
        tokenizer = _tokenizer_for(args, corpus.texts, out)
        model = GPT(_model_config(args, tokenizer.vocab_size))
        context = model.cfg.context
    model.train()
    stream = encode_stream(tokenizer, corpus.texts)
    train_tokens, val_tokens = split_by_position(stream, args.val_fraction)
    data = LMWindows(train_tokens, context)
    print(f"masklab: {len(corpus)} documents -> {len(stream):,} tokens ({len(val_tokens):,} held out); vocab "
          f"{tokenizer.vocab_size}; {model.num_parameters():,} parameters")  # fmt: skip
    train_cfg = train_config(args, model, data, default_steps=2000, betas=(0.9, 0.99))
    if train_cfg.warmup_steps > train_cfg.steps // 2:  # short runs (tests, small budgets) still get a decay phase
        train_cfg = dataclasses.replace(train_cfg, warmup_steps=train_cfg.steps // 10)

    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out)
    info = {"data": args.data, "val_fraction": args.val_fraction, "tokenizer_sha256": tokenizer.fingerprint,
            "context": context, "init_from": args.init_from, "tokens": len(stream),
            "train_tokens": len(train_tokens), "val_tokens": len(val_tokens)}  # fmt: skip
    atomic_write_json(out / LM_INFO, info)
    result = fit_run(model, data, train_cfg, out, model_config=model.config_dict(), resume=args.resume)

    scores: dict = {"step": result.step, "train_seconds": result.last_metrics.get("elapsed_s")}
    if len(val_tokens) > context:
        val = evaluate_nll(model.eval(), LMWindows(val_tokens, context, stride=context),
                           max_batches=args.eval_batches)  # fmt: skip
        scores["val"] = val
        print(f"masklab: validation loss {val['loss']:.4f} nats/token (perplexity {val['perplexity']:.2f}) on "
              f"{val['tokens']:,} held-out tokens after {result.step} steps")  # fmt: skip
    else:
        print(f"masklab: no validation loss: the held-out end has {len(val_tokens)} tokens (< one window)")
    atomic_write_json(out / "eval.json", scores)
    print(f"masklab: run written to {out}")
    return 0
