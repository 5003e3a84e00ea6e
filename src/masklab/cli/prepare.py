"""``masklab prepare``: tokenise a text corpus once into memory-mapped shards (see :mod:`masklab.data.shards`)."""

from __future__ import annotations

import argparse

from masklab.cli._args import DOC_PER_HELP, TOKENIZER_KIND_HELP


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.description = (
        "Tokenise a .txt/.jsonl file or folder, or a Hugging Face datasets folder (save_to_disk), in parallel "
        "worker processes into shards of token ids (uint16/uint32), word ids and document starts, with an "
        "index.json holding each shard's sha256. Rerun the same command to continue a killed prepare (or one "
        "stopped by a full disk). One prepare at a time per folder: while one runs (it holds OUT/.lock), a second "
        "is refused, naming its process. Train with 'masklab pretrain mlm|clm --data OUT'."
    )
    parser.add_argument(
        "--data", required=True, help="a .txt/.jsonl file or folder, a datasets save_to_disk folder, or builtin:NAME"
    )
    parser.add_argument("--out", required=True, help="folder to write (or continue)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer.json, vocab.txt or a folder (default: train)")
    parser.add_argument("--tokenizer-kind", choices=("wordpiece", "bpe", "char"), default="wordpiece",
                        help=TOKENIZER_KIND_HELP)  # fmt: skip
    parser.add_argument("--vocab-size", type=int, default=8000, help="vocabulary of a trained tokenizer")
    parser.add_argument("--cased", action="store_true", help="keep case when training a wordpiece/char tokenizer")
    parser.add_argument("--sample-mb", type=float, default=50.0, help="text the tokenizer trains on (the start)")
    parser.add_argument("--shard-mb", type=float, default=64.0, help="input text per shard")
    parser.add_argument("--doc-per", choices=("auto", "file", "line"), default="auto",
                        help=DOC_PER_HELP)  # fmt: skip
    parser.add_argument("--text-field", "--column", default="text",
                        help="the text field of .jsonl records, or the column of a datasets folder (default: text, "
                        "else its only string column)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="tokenising processes (default: every core)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json
    import time

    from masklab.data.shards.prepare import prepare_corpus

    start = time.perf_counter()
    out = prepare_corpus(
        args.data, args.out, tokenizer=args.tokenizer, tokenizer_kind=args.tokenizer_kind,
        vocab_size=args.vocab_size, lowercase=not args.cased, doc_per=args.doc_per, text_field=args.text_field,
        workers=args.workers, shard_mb=args.shard_mb, sample_mb=args.sample_mb,
    )  # fmt: skip
    index = json.loads((out / "index.json").read_text())
    print(f"masklab: {index['documents']:,} documents -> {index['tokens']:,} tokens ({index['token_dtype']}) in "
          f"{len(index['shards'])} shards under {out} ({time.perf_counter() - start:.1f} s)")  # fmt: skip
    return 0
