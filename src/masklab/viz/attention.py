"""Attention maps: collect per-layer weights, token x token heatmaps, attention rollout and its image overlay.

Weights come from the reference attention path for the one forward that asks for them
(``masklab.nn.Encoder(..., return_weights=True)``); training keeps the fused kernels. A weight row ``q`` is
query ``q``'s distribution over the keys: it sums to 1 over the keys it may attend to, and blocked or padded
keys have weight exactly 0 (masklab convention: ``padding``/``blocked`` True = padded / may NOT attend).

Shape legend: ``B`` batch, ``H`` heads, ``L`` tokens, ``gh x gw`` patch grid. Plotting needs matplotlib
(``masklab[viz]``), imported inside the functions that draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from masklab.masks.attention import AttnMask
from masklab.viz.literal import LITERAL

MAX_TICK_LABELS = 48  # above this many tokens the axis labels would overlap; they are left off


def collect_attention(
    encoder: nn.Module,
    x: Tensor,
    *,
    blocked: AttnMask | Tensor | None = None,
) -> list[Tensor]:
    """Per-layer attention weights of ``encoder`` (a :class:`masklab.nn.Encoder`) on ``x (B, L, D)``.

    Runs one inference forward with ``return_weights=True`` (reference path for this call only; the encoder in
    eval mode, so no dropout touches the weights, then put back in its mode) and returns one float32 CPU tensor
    ``(B, H, L, L)`` per layer. ``blocked``: the encoder's one mask argument, an
    ``AttnMask`` rule (``causal()``, ``key_padding(padding)``) or a dense bool (..., L, L), True = may NOT attend.
    """
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            _, weights = encoder(x, blocked=blocked, return_weights=True)
    finally:
        encoder.train(was_training)
    return [w.float().cpu() for w in weights]


def attention_rollout(weights: Sequence[Tensor], residual: bool = True) -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each token's final state draws on each input token.

    Each layer's weights ``(B, H, L, L)`` are averaged over heads; with ``residual`` the skip connection is
    modelled as ``0.5 * A + 0.5 * I`` and rows are renormalised. The layers are multiplied in order,
    ``R = A_n ... A_2 A_1``, so ``R[b, i, j]`` is the share of input token ``j`` in output token ``i``.
    Returns ``(B, L, L)`` in the weights' dtype; rows sum to 1 where the weight rows do.
    """
    if not weights:
        raise ValueError("attention_rollout needs at least one layer of weights (B, H, L, L)")
    rollout: Tensor | None = None
    for w in weights:
        if w.ndim != 4 or w.shape[-1] != w.shape[-2]:
            raise ValueError(f"attention weights must be square (B, H, L, L), got {tuple(w.shape)}")
        a = w.mean(dim=1)  # (B, L, L)
        if residual:
            a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
            a = a / a.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)
        rollout = a if rollout is None else a @ rollout
    assert rollout is not None  # weights is non-empty (checked above)
    return rollout


def attention_heatmaps(
    weights: Sequence[Tensor],
    tokens: Sequence[str],
    path: str | Path,
    *,
    layer: int | None = None,
    head: int | None = None,
    title: str | None = None,
) -> Path:
    """Token x token heatmaps of one example: a row per layer, a column per head plus the head mean (one
    colour scale, 0 to 1, for all panels).

    Args:
        weights: one float ``(H, L, L)`` per layer (index the batch first: ``w[b]``).
        tokens: ``L`` labels (query rows, key columns); drawn when there are at most 48.
        path: PNG to write (parent folders are created).
        layer / head: draw only that layer / head (plus the head mean); default all. One layer's panels wrap
            four to a row; with several layers a last row shows the mean over layers and heads.

    Returns the path written.
    """
    from matplotlib.figure import Figure

    if not weights or any(w.ndim != 3 or w.shape != weights[0].shape for w in weights):
        raise ValueError("weights must be a non-empty list of (H, L, L) tensors of one shape (one per layer)")
    n_heads, n_tokens, n_keys = weights[0].shape
    if len(tokens) != n_keys or n_tokens != n_keys:
        raise ValueError(f"{len(tokens)} token labels for attention over {n_tokens} x {n_keys} positions")
    layers = range(len(weights)) if layer is None else [layer]
    heads = range(n_heads) if head is None else [head]
    if layer is not None and not 0 <= layer < len(weights):
        raise ValueError(f"layer {layer} is out of range for {len(weights)} layers")
    if head is not None and not 0 <= head < n_heads:
        raise ValueError(f"head {head} is out of range for {n_heads} heads")
    stack = torch.stack([w.detach().float().cpu() for w in weights])  # (layers, H, L, L)
    panels: list[list[tuple[str, Tensor]]] = []
    for i in layers:
        row = [(f"layer {i} head {h}", stack[i, h]) for h in heads]
        panels.append([*row, (f"layer {i} mean of heads", stack[i].mean(0))])
    if len(layers) > 1:
        panels.append([("mean of layers and heads", stack.mean((0, 1)))])
    else:  # one layer: wrap its panels into rows of at most 4
        panels = [panels[0][i : i + 4] for i in range(0, len(panels[0]), 4)]
    n_cols = max(len(r) for r in panels)
    size = 2.4 if n_tokens <= 16 else 3.2
    fig = Figure(figsize=(size * n_cols + 1.2, size * len(panels) + 0.6), layout="constrained")
    grid = fig.subplots(len(panels), n_cols, squeeze=False)
    labels = n_tokens <= MAX_TICK_LABELS
    image = None
    for r, row in enumerate(panels):
        for c in range(n_cols):
            ax = grid[r][c]
            if c >= len(row):
                ax.set_axis_off()
                continue
            name, matrix = row[c]
            # One colour scale for every panel, so heads and layers compare at a glance.
            image = ax.imshow(matrix.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(name, fontsize=8)
            if labels:
                ticks = range(n_tokens)
                ax.set_xticks(ticks, [str(t) for t in tokens], rotation=90, fontsize=5, **LITERAL)
                ax.set_yticks(ticks, [str(t) for t in tokens], fontsize=5, **LITERAL)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=grid, shrink=0.6, label="attention weight")
    fig.suptitle(title or "attention weights (rows: queries, columns: keys)", fontsize=10, **LITERAL)
    from masklab.core.io import atomic_write_figure

    return atomic_write_figure(fig, path, dpi=110)


def rollout_overlay(
    image: Tensor,
    cls_row_over_patches: Tensor,
    grid: tuple[int, int],
    path: str | Path,
    *,
    alpha: float = 0.55,
    title: str | None = None,
) -> Path:
    """The [CLS] rollout row over the patches as a heatmap on the picture (left: image, right: overlay).

    Args:
        image: ``(C, H, W)`` in [0, 1] (C = 1 or 3).
        cls_row_over_patches: ``(gh * gw,)`` row-major patch scores, e.g. ``attention_rollout(w)[b, 0, 1:]``.
        grid: ``(gh, gw)``.
    """
    if cls_row_over_patches.shape != (grid[0] * grid[1],):
        raise ValueError(f"cls_row_over_patches must be ({grid[0] * grid[1]},) for a {grid[0]}x{grid[1]} grid, "
                         f"got {tuple(cls_row_over_patches.shape)}")  # fmt: skip
    return attention_overlay(image, cls_row_over_patches, grid, path, label="[CLS] attention rollout", alpha=alpha,
                             title=title)  # fmt: skip


def attention_overlay(
    image: Tensor,
    scores: Tensor,
    grid: tuple[int, int],
    path: str | Path,
    *,
    label: str,
    alpha: float = 0.55,
    title: str | None = None,
) -> Path:
    """Like :func:`rollout_overlay`, for any per-patch scores: ``label`` names the right panel (e.g. one layer's
    [CLS] row, ``weights[layer][b].mean(0)[0, 1:]``, is not a rollout). ``scores (gh * gw,)``, row-major."""
    import torch.nn.functional as F
    from matplotlib.figure import Figure

    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be (C, H, W) with C = 1 or 3, got {tuple(image.shape)}")
    gh, gw = grid
    if scores.shape != (gh * gw,):
        raise ValueError(f"scores must be ({gh * gw},) for a {gh}x{gw} grid, got {tuple(scores.shape)}")
    H, W = image.shape[1:]
    heat = F.interpolate(scores.detach().float().cpu().view(1, 1, gh, gw), size=(H, W), mode="bilinear",
                         align_corners=False)[0, 0]  # fmt: skip
    heat = (heat - heat.min()) / (heat.max() - heat.min()).clamp_min(1e-12)  # (H, W) in [0, 1]
    picture = image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()  # (H, W, C)
    cmap = "gray" if picture.shape[-1] == 1 else None
    picture = picture[..., 0] if picture.shape[-1] == 1 else picture
    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.imshow(picture, cmap=cmap, vmin=0, vmax=1)
    left.set_title("input", fontsize=9)
    right.imshow(picture, cmap=cmap, vmin=0, vmax=1)
    shown = right.imshow(heat.numpy(), cmap="inferno", alpha=alpha, vmin=0, vmax=1)
    right.set_title(label, fontsize=9, **LITERAL)
    fig.colorbar(shown, ax=right, shrink=0.8)
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10, **LITERAL)
    from masklab.core.io import atomic_write_figure

    return atomic_write_figure(fig, path, dpi=120)
