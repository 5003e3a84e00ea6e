"""``attention``: what a trained encoder attends to, for one input (``masklab attention RUN INPUT -o attn.png``).

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

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

TEXT_KINDS = ("mlm", "clm")
TOP = 3  # tokens / patches named in the printed summary


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
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"INPUT {value} is not UTF-8 text; a text run (mlm, clm) takes a text or a .txt file "
                             "(for an image, use an mae run)") from None  # fmt: skip
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


def load_image_input(value: str, image_size: tuple[int, int], channels: int):
    """INPUT of an image run -> ``(1, channels, H, W)`` in [0, 1] and a short description of it."""
    import torch

    from masklab.data.images import BUILTINS, load_builtin, load_image_files, to_channels

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
    if path.is_dir():
        from masklab.data.image_files import IMAGE_SUFFIXES

        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file()):
            raise ValueError(f"INPUT {value} is a folder holding no image; attention reads one image file "
                             "(or builtin:NAME[:INDEX])")  # fmt: skip
        raise ValueError(f"INPUT {value} is a folder; attention reads one image file (or builtin:NAME[:INDEX])")
    if not path.is_file():
        raise FileNotFoundError(f"INPUT image {value} does not exist (or use builtin:NAME[:INDEX])")
    # channels=None keeps the file's own channels; then the model's (a photo for a gray model is fine, and said).
    from masklab.recipes.embedding import pictures_for_model
    from masklab.recipes.images import note_transparency

    dataset = load_image_files([path], image_size=image_size, channels=None)
    note_transparency([path])
    return pictures_for_model(dataset.images(), [str(path)], channels), path.name


def save_weights(path: str | Path, weights, metadata: dict[str, str]) -> Path:
    """Per-layer weights -> safetensors ``layer0``, ``layer1``, ... (``(B, H, L, L)`` float32 each)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({f"layer{i}": w.contiguous() for i, w in enumerate(weights)}, str(path), metadata=metadata)
    return path


# ------------------------------------------------------------------------------------------------- text
def text_limits(model: Any, kind: str) -> tuple[int, int]:
    """(most tokens the model reads, special tokens framing a text) of an ``mlm`` or ``clm`` model."""
    return (model.config.bert.max_tokens, 2) if kind == "mlm" else (model.config.context, 0)


def text_attention_weights(
    model: Any, tokenizer: Any, kind: str, text: str, limit: int, why: str = "the model's limit"
) -> tuple[list[Tensor], list[str], list[str]]:
    """(weights per layer ``(1, H, T, T)``, token strings, notes) of a loaded ``mlm``/``clm`` model on ``text``,
    cut to ``limit`` tokens, specials included (``why`` names the limit in the note that says so)."""
    import torch

    from masklab.masks.attention import causal
    from masklab.viz.attention import collect_attention

    _, specials = text_limits(model, kind)
    # Frame the text as in training: mlm runs encode documents bare and add [CLS] ... [SEP] (encode_truncated).
    body = tokenizer.encode(text, add_special_tokens=False).ids
    notes = []
    if len(body) + specials > limit:
        notes.append(f"INPUT is {len(body) + specials} tokens; truncated to the first {limit} ({why})")
        body = body[: limit - specials]
    if not body:
        raise ValueError(f"INPUT {text[:80]!r} encodes to no tokens")
    ids = [tokenizer.cls_id, *body, tokenizer.sep_id] if kind == "mlm" else body
    ids_t = torch.tensor([ids], device=next(model.parameters()).device)  # (1, T)
    with torch.inference_mode():
        if kind == "mlm":
            x = model.bert.embeddings(ids_t)  # (1, T, D): word + position + type, LayerNorm (Bert.forward)
            encoder = model.bert.encoder
        else:
            x = model.embed_tokens(ids_t)  # (1, T, D) as GPT.forward
            encoder = model.decoder
    weights = collect_attention(encoder, x, blocked=causal() if kind == "clm" else None)
    return weights, [token_label(tokenizer.id_to_token(i)) for i in ids], notes


def text_attention(run: str, input: str, kind: str, device: str, max_tokens: int | None = None):
    """(weights per layer ``(1, H, T, T)``, token strings, notes) of a text run on INPUT."""
    text = read_text_input(input)
    if kind == "mlm":
        from masklab.recipes.mlm import load_mlm_run

        model, tokenizer, info = load_mlm_run(run, device)
    else:  # a GPT's context is the length it was trained on
        from masklab.recipes.clm import load_lm_run

        model, tokenizer, _ = load_lm_run(run, device)
        info = {}
    limit, specials = text_limits(model, kind)
    why = "the model's limit"
    trained = info.get("seq_len")
    if isinstance(trained, int) and specials < trained < limit:  # later positions were never trained
        limit, why = trained, f"the run was trained on {trained}-token sequences, text.json seq_len"
    if max_tokens is not None:
        if max_tokens < specials + 1:
            raise ValueError(f"--max-tokens must be >= {specials + 1}, got {max_tokens}")
        if max_tokens < limit:
            limit, why = max_tokens, "--max-tokens"
    return text_attention_weights(model, tokenizer, kind, text, limit, why)


def text_summary(weights, tokens: list[str]) -> str:
    """Which keys receive the most attention, averaged over layers, heads and queries."""
    import torch

    received = torch.stack(weights).mean(dim=(0, 1, 2, 3))  # (T,) mean over layers, batch, heads, queries
    top = received.topk(min(TOP, len(tokens)))
    named = ", ".join(f"{tokens[i]!r}@{i} {v:.3f}" for v, i in zip(top.values.tolist(), top.indices.tolist(),
                                                                   strict=True))  # fmt: skip
    return f"most attended tokens (mean over layers, heads and queries; uniform {1 / len(tokens):.3f}): {named}"


# ------------------------------------------------------------------------------------------------ images
def image_attention(run: str, input: str, device: str, max_tokens: int | None = None):
    """(weights per layer ``(1, H, 1 + L, 1 + L)``, image ``(C, H, W)``, model config, description)."""
    from masklab.recipes.mae import load_mae_run

    if max_tokens is not None:
        raise ValueError("--max-tokens applies to text runs; an image run always encodes every patch")
    model = load_mae_run(run, device)
    cfg = model.config
    images, described = load_image_input(input, tuple(cfg.image_size), cfg.channels)  # (1, C, H, W)
    return image_attention_weights(model, images), images[0], cfg, described


def image_attention_weights(model: Any, images: Tensor) -> list[Tensor]:
    """Per-layer weights ``(B, H, 1 + L, 1 + L)`` of an MAE encoder reading every patch of ``images (B, C, H, W)``."""
    import torch

    from masklab.viz.attention import collect_attention

    device = next(model.parameters()).device
    with torch.inference_mode():  # every patch + its sin-cos position, the CLS token first: (B, 1 + L, D)
        seq = model.encoder_input(model.normalize(images.to(device)))
    return collect_attention(model.encoder, seq)


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
def attention(
    run: str,
    input: str,
    output: str | Path,
    *,
    layer: int | None = None,
    head: int | None = None,
    max_tokens: int | None = None,
    weights_out: str | Path | None = None,
    device: str = "cpu",
) -> list[str]:
    """Draw the attention of an mlm/clm run on a text, or of an mae run on an image, into ``output`` (see the
    module docstring); returns the report lines (what was written, notes, the most attended tokens/patches)."""
    input = os.fspath(input)  # a Path works as a str does
    from masklab.core.device import resolve_device
    from masklab.recipes.clm import hf_model_type
    from masklab.recipes.common import check_outputs, check_picture_output, check_writable, figure_formats

    check_outputs({"-o": output, "--weights-out": weights_out}, [("INPUT", input)], "attention")
    check_picture_output(output, figure_formats(), "attention")
    if weights_out:
        check_writable(weights_out, "--weights-out")
    from masklab.train.run import Run
    from masklab.viz.attention import attention_heatmaps, attention_overlay, rollout_overlay

    kind = "clm" if hf_model_type(run) == "gpt2" else Run(run).kind()
    if kind not in (*TEXT_KINDS, "mae"):
        raise ValueError(f"{run} is a {kind!r} run; masklab attention draws mae (image), mlm or clm (text) "
                         "runs (a table run's cells have no token x token attention worth showing)")  # fmt: skip
    device = str(resolve_device(device))
    lines: list[str] = []
    if kind in TEXT_KINDS:
        weights, tokens, notes = text_attention(run, input, kind, device, max_tokens)
        _, n_heads, n_tokens, _ = weights[0].shape
        check_choice("--layer", layer, len(weights), "layers")
        check_choice("--head", head, n_heads, "heads")
        title = f"{Path(run).name} ({kind}): attention weights, rows = queries, columns = keys"
        path = attention_heatmaps([w[0] for w in weights], tokens, output, layer=layer, head=head,
                                  title=title)  # fmt: skip
        for note in notes:
            lines.append(f"note: {note}")
        if n_tokens > 48:
            lines.append(f"note: {n_tokens} tokens: axis labels are left off (--max-tokens 48 keeps them)")
        lines.append(f"wrote {path}: {n_tokens} tokens, {len(weights)} layers x {n_heads} heads ({kind} run)")
        summary = text_summary(weights, tokens)
        metadata = {"kind": kind, "input": input[:200], "tokens": json.dumps(tokens)}
    else:
        weights, image, cfg, described = image_attention(run, input, device, max_tokens)
        _, n_heads, n_tokens, _ = weights[0].shape
        check_choice("--layer", layer, len(weights), "layers")
        check_choice("--head", head, n_heads, "heads")
        if head is not None and layer is None:
            raise ValueError("--head needs --layer for an image run (the rollout averages the heads)")
        row = cls_row(weights, layer, head)  # (L,)
        if layer is None:
            what = "[CLS] attention rollout"
        else:
            what = f"[CLS] attention of layer {layer} " + ("(head mean)" if head is None else
                                                                 f"head {head}")  # fmt: skip
        title = f"{described}: {what} (scaled to [0, 1])"
        if layer is None:
            path = rollout_overlay(image, row, tuple(cfg.grid), output, title=title)
        else:  # rollout_overlay would label one layer's row a rollout
            label = f"[CLS] attention, layer {layer}" + ("" if head is None else f" head {head}")
            path = attention_overlay(image, row, tuple(cfg.grid), output, label=label, title=title)
        lines.append(f"wrote {path}: {described}, {cfg.grid[0]}x{cfg.grid[1]} patches + [CLS], "
              f"{len(weights)} layers x {n_heads} heads (mae run)")  # fmt: skip
        summary = image_summary(row, tuple(cfg.grid), what)
        metadata = {"kind": kind, "input": input[:200], "grid": json.dumps(list(cfg.grid))}
    if weights_out:
        saved = save_weights(weights_out, weights, metadata)
        lines.append(f"wrote {saved}: layer0..layer{len(weights) - 1}, each {tuple(weights[0].shape)} (B, H, L, L)")
    lines.append(summary)
    return lines
