"""``masklab pretrain mlm``: arguments of :func:`masklab.recipes.mlm.pretrain_mlm`."""

from __future__ import annotations

import argparse

from masklab.cli._args import DOC_PER_HELP, TOKENIZER_KIND_HELP, add_train_args, check_prepared_flags, pretrain_call

FIELDS = ("data", "preset", "norm", "seq_len", "tokenizer", "tokenizer_kind", "vocab_size", "init_from", "mask",
          "mask_ratio", "doc_per", "text_field", "holdout", "export_hf")  # fmt: skip


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.add_argument("--data", help="a .txt/.jsonl file or folder, a prepared or datasets folder, or "
                        "builtin:bbc-news | builtin:shakespeare (default builtin:bbc-news)")  # fmt: skip
    parser.add_argument("--preset", help="bert-tiny | bert-mini | bert-small | bert-base (default bert-mini)")
    parser.add_argument("--norm", choices=("post", "pre"), help="post-norm (BERT, default) or pre-norm")
    parser.add_argument("--seq-len", type=int, help="tokens per packed sequence (default 128)")
    parser.add_argument("--tokenizer", help="tokenizer.json, vocab.txt or a folder (default: train)")
    parser.add_argument("--tokenizer-kind", choices=("wordpiece", "bpe", "char"),
                        help=TOKENIZER_KIND_HELP + " (default wordpiece)")  # fmt: skip
    parser.add_argument("--vocab-size", type=int, help="vocabulary of a trained tokenizer (default 8000)")
    parser.add_argument("--init-from",
                        help="HF BERT folder (config.json + model.safetensors + tokenizer) to start from (default: a "
                        "random init)")  # fmt: skip
    parser.add_argument("--mask", choices=("bernoulli", "random", "whole_word", "span"),
                        help="which tokens to hide (default bernoulli: BERT's 80/10/10)")  # fmt: skip
    parser.add_argument("--mask-ratio", type=float, help="share of tokens hidden (default 0.15)")
    parser.add_argument("--doc-per", choices=("auto", "file", "line"), help=DOC_PER_HELP + " (default auto)")
    parser.add_argument(
        "--text-field",
        "--column",
        help="the text field of .jsonl records or the column of a datasets folder (default text)",
    )
    parser.add_argument("--holdout", type=float, help="fraction of documents held out for eval (default 0.05)")
    parser.add_argument("--export-hf", help="also write an HF BertForMaskedLM folder here (default: none)")
    # bert-mini on a few CPU minutes: a high peak lr with short warmup (small models tolerate it; Turc et al.
    # 2019 pretrain the miniatures at 1e-4 but for a million steps), RoBERTa's beta2 0.98, decay 0.01.
    add_train_args(parser, steps=600, batch_size=32, lr=1e-3, weight_decay=0.01,
                   warmup="40; a tenth of a run under 80 steps", log_every=20, ckpt_every=200)  # fmt: skip
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from masklab.recipes.mlm import pretrain_mlm

    check_prepared_flags(args)
    pretrain_call(pretrain_mlm, args, FIELDS)
    return 0
