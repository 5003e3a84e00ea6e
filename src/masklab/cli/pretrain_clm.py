"""``masklab pretrain clm``: arguments of :func:`masklab.recipes.clm.pretrain_clm`."""

from __future__ import annotations

import argparse

from masklab.cli._args import add_train_args, check_prepared_flags, pretrain_call

FIELDS = ("data", "preset", "context", "dim", "depth", "heads", "dropout", "tokenizer", "init_from",
          "tokenizer_kind", "vocab_size", "val_fraction", "eval_batches", "text_field")  # fmt: skip


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.add_argument("--data", help="a .txt/.jsonl file or folder, or builtin:shakespeare | builtin:bbc-news "
                        "(default builtin:shakespeare)")  # fmt: skip
    parser.add_argument("--preset", help="gpt-tiny | gpt-char | gpt2-small (default gpt-char)")
    parser.add_argument("--context", type=int, help="tokens per training window (default: preset's)")
    parser.add_argument("--dim", type=int, help="model width (default: the preset's)")
    parser.add_argument("--depth", type=int, help="transformer blocks (default: the preset's)")
    parser.add_argument("--heads", type=int, help="attention heads (default: the preset's)")
    parser.add_argument("--dropout", type=float, help="dropout probability in the model (default: the preset's)")
    parser.add_argument("--tokenizer", help="tokenizer.json or a folder holding one (default: train)")
    parser.add_argument("--init-from", help="start from a Hugging Face GPT-2 folder or a clm run (its weights and "
                        "tokenizer; default: a random init)")  # fmt: skip
    parser.add_argument("--tokenizer-kind", choices=("char", "bpe"),
                        help="a tokenizer trained on --data: char or bpe (byte-level) (default char)")  # fmt: skip
    parser.add_argument("--vocab-size", type=int, help="vocabulary of a trained BPE tokenizer (default 2000)")
    parser.add_argument("--val-fraction", type=float, help="the end of the token stream held out (default 0.1)")
    parser.add_argument("--eval-batches", type=int, help="cap on validation batches (default: all)")
    parser.add_argument(
        "--text-field",
        "--column",
        help="the text field of .jsonl records or the column of a datasets folder (default text)",
    )
    # Defaults are nanoGPT's shakespeare_char recipe run on CPU (4 layers x 4 heads x 128, context 64, batch 12,
    # lr 1e-3 -> 1e-4 cosine, 100 warmup steps, beta2 0.99, weight decay 0.1, 2000 iterations).
    add_train_args(parser, steps=2000, batch_size=12, lr=1e-3, min_lr=1e-4, weight_decay=0.1,
                   warmup="100; a tenth of a run under 200 steps", log_every=50, ckpt_every=250)  # fmt: skip
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from masklab.recipes.clm import pretrain_clm

    check_prepared_flags(args)
    pretrain_call(pretrain_clm, args, FIELDS)
    return 0
