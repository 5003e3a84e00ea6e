"""``masklab fill RUN "The [MASK] won the match." --top-k 5``: fill-mask with a trained MLM.

RUN is a masklab ``mlm`` run directory or a Hugging Face ``BertForMaskedLM`` folder (config.json,
model.safetensors with the ``cls.predictions`` head, tokenizer.json or vocab.txt). Inference is deterministic:
only the [MASK] tokens the text contains are predicted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fill", help="predict the [MASK] tokens of a text with a trained MLM")
    parser.add_argument("run", metavar="RUN", help="mlm run directory, or an HF BertForMaskedLM folder")
    parser.add_argument("text", help='text with one or more [MASK] tokens, e.g. "The [MASK] won the match."')
    parser.add_argument("--top-k", type=int, default=5, help="candidates per [MASK] (default: %(default)s)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_run)


def _load(run: Path, device: str):
    """(model, tokenizer) from a masklab run or an HF folder."""
    from masklab.apps.mlm import check_vocab, load_text_run
    from masklab.interop.hf.bert import load_bert_mlm
    from masklab.tokenizers.text import TextTokenizer

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


def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[dict]:
    """One entry per [MASK] in ``text``: ``{"position", "candidates": [(token, probability), ...]}``."""
    import torch

    if top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {top_k}")
    # Let users write [MASK] whatever the tokenizer's spelling (<mask> for BPE).
    text = text.replace("[MASK]", tokenizer.mask_token)
    ids = torch.tensor([tokenizer.encode(text).ids], device=next(model.parameters()).device)  # (1, L)
    if ids.shape[1] > model.cfg.bert.max_len:
        raise ValueError(f"the text is {ids.shape[1]} tokens; the model reads at most {model.cfg.bert.max_len}")
    masked = ids == tokenizer.mask_id  # (1, L) the positions to predict: exactly the [MASK] tokens
    if not bool(masked.any()):
        raise ValueError(f"the text has no {tokenizer.mask_token} token to fill")
    with torch.no_grad():
        probs = model.predict_masked(model(ids), masked).softmax(-1)  # (M, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    positions = masked[0].nonzero().flatten().tolist()
    return [
        {"position": pos, "candidates": [(tokenizer.id_to_token(i), float(p)) for i, p in zip(idx, val, strict=True)]}
        for pos, idx, val in zip(positions, top.indices.tolist(), top.values.tolist(), strict=True)
    ]


def format_fill(results: list[dict]) -> str:
    lines = []
    for n, result in enumerate(results, start=1):
        lines.append(f"[MASK] {n} (token position {result['position']})")
        lines.append(f"  {'rank':>4}  {'token':<20} {'probability':>11}")
        for rank, (token, prob) in enumerate(result["candidates"], start=1):
            lines.append(f"  {rank:>4}  {token:<20} {prob:>11.4f}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    model, tokenizer = _load(Path(args.run), args.device)
    results = fill_mask(model, tokenizer, args.text, args.top_k)
    print(json.dumps(results, indent=2) if args.json else format_fill(results))
    return 0
