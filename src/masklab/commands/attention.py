"""``masklab attention RUN INPUT -o attn.png``: what a trained encoder attends to, for one input.

- Text runs (``mlm``, ``clm``): INPUT is a text, or a path to a text file. It is tokenized as the model was
  trained (``[CLS] text [SEP]`` for BERT, bare tokens for GPT) and the PNG holds token x token heatmaps, a row
  per layer and a column per head plus the head mean; a causal model's weights are lower-triangular.
- Image runs (``mae``): INPUT is an image file or ``builtin:NAME[:INDEX]``, converted to the run's channels and
  size. Every patch is encoded (no masking) and the PNG overlays the [CLS] token's attention rollout (Abnar &
  Zuidema 2020) on the picture, or with ``--layer`` the [CLS] row of that one layer (head mean, or ``--head``).

The weights come from the reference attention path for this one forward
(:func:`masklab.viz.attention.collect_attention`); the fused training path is untouched. ``--weights-out``
keeps them as safetensors: ``layer0``, ``layer1``, ... each ``(1, H, L, L)`` float32, a row per query.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TEXT_KINDS = ("mlm", "clm")
TOP = 3  # tokens / patches named in the printed summary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "attention",
        help="attention maps of a trained encoder on one input (token heatmaps, or [CLS] rollout on an image)",
        description="Draw the attention weights of an mlm/clm run on a text (token x token heatmaps), or of an "
        "mae run on an image ([CLS] attention rollout over the patches).",
    )
    parser.add_argument("run", metavar="RUN", help="training run directory (mae, mlm or clm)")
    parser.add_argument("input", metavar="INPUT", help="text runs: a text or a .txt file; image runs: an image "
                        "file or builtin:NAME[:INDEX], e.g. builtin:mnist5k:17")  # fmt: skip
    parser.add_argument("-o", "--output", required=True, help="PNG file to write")
    parser.add_argument("--layer", type=int, default=None, help="draw only this layer (0-based; images: its "
                        "[CLS] row instead of the rollout over all layers)")  # fmt: skip
    parser.add_argument("--head", type=int, default=None, help="draw only this head (images: needs --layer)")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="text runs: keep at most this many tokens, specials included (default: the model's "
                        "limit)")  # fmt: skip
    parser.add_argument("--weights-out", default=None, help="also save every layer's weights to this .safetensors")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=_run)


# ------------------------------------------------------------------------------------------------ helpers
def check_choice(name: str, value: int | None, count: int, what: str) -> None:
    """``ValueError`` naming the option when ``value`` is not in ``0 .. count - 1``."""
    if value is not None and not 0 <= value < count:
        raise ValueError(f"{name} {value} is out of range: the model has {count} {what} (0..{count - 1})")


def read_text_input(value: str) -> str:
    """INPUT of a text run: the file's contents when it names an existing file, else the string itself."""
    path = Path(value).expanduser()
    try:
        is_file = path.is_file()
    except OSError:  # a long text is no valid file name (ENAMETOOLONG): it is the text itself
        is_file = False
    if is_file:
        text = path.read_text(encoding="utf-8")
    elif path.suffix.lower() in (".txt", ".text") and "\n" not in value:
        raise FileNotFoundError(f"INPUT {value} looks like a text file but does not exist")
    else:
        text = value
    if not text.strip():
        raise ValueError(f"INPUT {value!r} holds no text")
    return text


def token_label(token: str) -> str:
    """A tick label that stays on one line: newlines and tabs escaped, a blank token shown as ``␣``."""
    if token and not token.strip():
        return token.replace("\n", "\\n").replace("\t", "\\t").replace(" ", "␣")
    return token


def to_channels(images, channels: int):
    """``(B, C, H, W)`` with C = 1 or 3 -> ``channels`` (gray widened; colour -> ITU-R 601 luma, as PIL's "L")."""
    import torch

    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).clone()
    if images.shape[1] == 3 and channels == 1:
        luma = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
        return (images * luma).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot convert {images.shape[1]}-channel images to the model's {channels} channels")


def load_image_input(value: str, image_size: tuple[int, int], channels: int):
    """INPUT of an image run -> ``(1, channels, H, W)`` in [0, 1] and a short description of it."""
    import torch

    from masklab.data.images import BUILTINS, load_builtin, load_image_files

    if value.startswith("builtin:"):
        name, _, index_text = value.removeprefix("builtin:").partition(":")
        if name not in BUILTINS:
            raise ValueError(f"INPUT {value}: unknown built-in image dataset {name!r}; known: {', '.join(BUILTINS)}")
        try:
            index = int(index_text or 0)
        except ValueError:
            raise ValueError(f"INPUT {value}: the image index must be an integer, got {index_text!r}") from None
        dataset = load_builtin(name)
        if not 0 <= index < len(dataset):
            raise ValueError(f"INPUT {value}: index {index} is out of range for {len(dataset)} {name} images")
        dataset = dataset.subset(torch.tensor([index])).resized(image_size)
        return to_channels(dataset.images(), channels), f"{name}[{index}]"
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"INPUT image {value} does not exist (or use builtin:NAME[:INDEX])")
    # channels=None keeps the file's own channels; to_channels then converts (a photo for a gray model is fine).
    dataset = load_image_files([path], image_size=image_size, channels=None)
    return to_channels(dataset.images(), channels), path.name


def save_weights(path: str | Path, weights, metadata: dict[str, str]) -> Path:
    """Per-layer weights -> safetensors ``layer0``, ``layer1``, ... (``(B, H, L, L)`` float32 each)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({f"layer{i}": w.contiguous() for i, w in enumerate(weights)}, str(path), metadata=metadata)
    return path


# ------------------------------------------------------------------------------------------------- text
def text_attention(args: argparse.Namespace, kind: str, device: str):
    """(weights per layer ``(1, H, T, T)``, token strings, notes) of a text run on INPUT."""
    import torch

    from masklab.viz.attention import collect_attention

    text = read_text_input(args.input)
    if kind == "mlm":
        from masklab.apps.mlm import load_text_run

        model, tokenizer, _ = load_text_run(args.run, device)
        limit, specials = model.cfg.bert.max_len, 2
    else:
        from masklab.apps.clm import load_lm_run

        model, tokenizer, _ = load_lm_run(args.run, device)
        limit, specials = model.cfg.context, 0
    why = "the model's limit"
    if args.max_tokens is not None:
        if args.max_tokens < specials + 1:
            raise ValueError(f"--max-tokens must be >= {specials + 1}, got {args.max_tokens}")
        if args.max_tokens < limit:
            limit, why = args.max_tokens, "--max-tokens"
    # Frame the text as in training: mlm runs encode documents bare and add [CLS] ... [SEP] (encode_truncated).
    body = tokenizer.encode(text, add_special_tokens=False).ids
    notes = []
    if len(body) + specials > limit:
        notes.append(f"INPUT is {len(body) + specials} tokens; truncated to the first {limit} ({why})")
        body = body[: limit - specials]
    if not body:
        raise ValueError(f"INPUT {args.input!r} encodes to no tokens")
    ids = [tokenizer.cls_id, *body, tokenizer.sep_id] if kind == "mlm" else body
    ids_t = torch.tensor([ids], device=device)  # (1, T)
    with torch.inference_mode():
        if kind == "mlm":
            x = model.bert.embeddings(ids_t)  # (1, T, D): word + position + type, LayerNorm (Bert.forward)
            encoder = model.bert.encoder
        else:
            x = model.embed(ids_t)  # (1, T, D) as GPT.forward
            encoder = model.decoder
    weights = collect_attention(encoder, x, is_causal=kind == "clm")
    return weights, [token_label(tokenizer.id_to_token(i)) for i in ids], notes


def text_summary(weights, tokens: list[str]) -> str:
    """Which keys receive the most attention, averaged over layers, heads and queries."""
    import torch

    received = torch.stack(weights).mean(dim=(0, 1, 2, 3))  # (T,) mean over layers, batch, heads, queries
    top = received.topk(min(TOP, len(tokens)))
    named = ", ".join(f"{tokens[i]!r}@{i} {v:.3f}" for v, i in zip(top.values.tolist(), top.indices.tolist(),
                                                                   strict=True))  # fmt: skip
    return f"most attended tokens (mean over layers, heads and queries; uniform {1 / len(tokens):.3f}): {named}"


# ------------------------------------------------------------------------------------------------ images
def image_attention(args: argparse.Namespace, device: str):
    """(weights per layer ``(1, H, 1 + L, 1 + L)``, image ``(C, H, W)``, model config, description)."""
    import torch

    from masklab.apps.mae import load_run_model
    from masklab.viz.attention import collect_attention

    if args.max_tokens is not None:
        raise ValueError("--max-tokens applies to text runs; an image run always encodes every patch")
    model = load_run_model(args.run, device)
    cfg = model.config
    images, described = load_image_input(args.input, tuple(cfg.image_size), cfg.channels)  # (1, C, H, W)
    with torch.inference_mode():  # every patch + its sin-cos position, the CLS token first: (1, 1 + L, D)
        seq = model.encoder_input(model.normalize(images.to(device)))
    weights = collect_attention(model.encoder, seq)
    return weights, images[0], cfg, described


def cls_row(weights, layer: int | None, head: int | None):
    """The [CLS] query's weights over the patches ``(L,)``: rollout over all layers, or one layer (and head)."""
    from masklab.viz.attention import attention_rollout

    if layer is None:
        return attention_rollout(weights)[0, 0, 1:]
    w = weights[layer][0]  # (H, 1 + L, 1 + L)
    return (w.mean(dim=0) if head is None else w[head])[0, 1:]


def image_summary(row, grid: tuple[int, int], what: str) -> str:
    """The patches with the largest share of the [CLS] row's patch weight, as (row, column) of the grid."""
    share = row / row.sum().clamp_min(1e-12)
    top = share.topk(min(TOP, share.numel()))
    gw = grid[1]
    named = ", ".join(f"({i // gw}, {i % gw}) {v:.3f}" for v, i in zip(top.values.tolist(), top.indices.tolist(),
                                                                         strict=True))  # fmt: skip
    return f"top patches (row, col) by {what}, share of the patch weight (uniform {1 / share.numel():.3f}): {named}"


# ------------------------------------------------------------------------------------------------ command
def _run(args: argparse.Namespace) -> int:
    from masklab.apps import run_kind
    from masklab.apps.clm import hf_model_type
    from masklab.core.device import resolve_device
    from masklab.viz.attention import attention_heatmaps, attention_overlay, rollout_overlay

    kind = "clm" if hf_model_type(args.run) == "gpt2" else run_kind(args.run)
    if kind not in (*TEXT_KINDS, "mae"):
        raise ValueError(f"{args.run} is a {kind!r} run; masklab attention draws mae (image), mlm or clm (text) "
                         "runs (a table run's cells have no token x token attention worth showing)")  # fmt: skip
    device = str(resolve_device(args.device))
    if kind in TEXT_KINDS:
        weights, tokens, notes = text_attention(args, kind, device)
        _, n_heads, n_tokens, _ = weights[0].shape
        check_choice("--layer", args.layer, len(weights), "layers")
        check_choice("--head", args.head, n_heads, "heads")
        title = f"{Path(args.run).name} ({kind}): attention weights, rows = queries, columns = keys"
        path = attention_heatmaps([w[0] for w in weights], tokens, args.output, layer=args.layer, head=args.head,
                                  title=title)  # fmt: skip
        for note in notes:
            print(f"note: {note}")
        if n_tokens > 48:
            print(f"note: {n_tokens} tokens: axis labels are left off (--max-tokens 48 keeps them)")
        print(f"wrote {path}: {n_tokens} tokens, {len(weights)} layers x {n_heads} heads ({kind} run)")
        summary = text_summary(weights, tokens)
        metadata = {"kind": kind, "input": args.input[:200], "tokens": json.dumps(tokens)}
    else:
        weights, image, cfg, described = image_attention(args, device)
        _, n_heads, n_tokens, _ = weights[0].shape
        check_choice("--layer", args.layer, len(weights), "layers")
        check_choice("--head", args.head, n_heads, "heads")
        if args.head is not None and args.layer is None:
            raise ValueError("--head needs --layer for an image run (the rollout averages the heads)")
        row = cls_row(weights, args.layer, args.head)  # (L,)
        if args.layer is None:
            what = "[CLS] attention rollout"
        else:
            what = f"[CLS] attention of layer {args.layer} " + ("(head mean)" if args.head is None else
                                                                 f"head {args.head}")  # fmt: skip
        title = f"{described}: {what} (scaled to [0, 1])"
        if args.layer is None:
            path = rollout_overlay(image, row, tuple(cfg.grid), args.output, title=title)
        else:  # rollout_overlay would label one layer's row a rollout
            label = f"[CLS] attention, layer {args.layer}" + ("" if args.head is None else f" head {args.head}")
            path = attention_overlay(image, row, tuple(cfg.grid), args.output, label=label, title=title)
        print(f"wrote {path}: {described}, {cfg.grid[0]}x{cfg.grid[1]} patches + [CLS], "
              f"{len(weights)} layers x {n_heads} heads (mae run)")  # fmt: skip
        summary = image_summary(row, tuple(cfg.grid), what)
        metadata = {"kind": kind, "input": args.input[:200], "grid": json.dumps(list(cfg.grid))}
    if args.weights_out:
        saved = save_weights(args.weights_out, weights, metadata)
        print(f"wrote {saved}: layer0..layer{len(weights) - 1}, each {tuple(weights[0].shape)} (B, H, L, L)")
    print(summary)
    return 0
