"""Masking as augmentation: accuracy under occlusion, with vs without masking augmentation (MNIST and BBC News).

For each dataset two classifiers of one architecture train from scratch with masklab's ``fit`` for the same
steps and seed; the only difference is the training transform from :func:`masklab.masks.augment.parse_augment`:
none, or ``mask:F`` (images: :class:`PatchDrop`, F of the 4x4 patches zeroed; text: :class:`MaskSubstitution`,
F of the real tokens replaced by [MASK]). Test inputs are then occluded with :func:`masklab.masks.augment.occlude`
(fixed seed, the same occlusion for both models):

- mnist5k (ViT encoder of ``masklab.models.mae`` with a linear head; 1,000 held-out digits): random 4x4 patches
  zeroed (25/50%), and one black rectangle (Cutout) of 25/50% of the image;
- BBC News (BERT-tiny from ``masklab.models.mlm``, WordPiece trained on the training split; 445 held-out
  articles, first 126 tokens): 25/50% of the tokens replaced by [MASK], or deleted.

    python bench/mask_augment.py                          # ~10 CPU minutes
    python bench/mask_augment.py --mnist-steps 20 --bbc-steps 10 --max-test 100   # smoke test
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from masklab.core.contract import saved_config
from masklab.data.augment import AugmentedData, parse_augment
from masklab.eval.occlusion import occlude
from masklab.train import TrainConfig, fit


def subsample(indices: torch.Tensor, limit: int | None) -> torch.Tensor:
    """A seeded random ``limit`` of ``indices`` (both datasets are sorted by class: never take the first ones)."""
    if limit is None or limit >= len(indices):
        return indices
    return indices[torch.randperm(len(indices), generator=torch.Generator().manual_seed(7))[:limit]].sort().values


def train_config(steps: int, batch_size: int, lr: float, seed: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=steps // 10, weight_decay=0.05,
                       seed=seed, device="cpu", log_every=max(1, steps // 5), ckpt_every=steps)  # fmt: skip


def table(title: str, columns: list[str], rows: dict[str, list[float]]) -> str:
    width = max(len(c) for c in columns) + 2
    lines = [title, f"{'training':<22}" + "".join(f"{c:>{width}}" for c in columns)]
    lines += [f"{name:<22}" + "".join(f"{100 * v:>{width - 1}.1f}%" for v in values) for name, values in rows.items()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- MNIST
def mnist(args, out: Path) -> str:
    from masklab.data.images import load_images, split_indices
    from masklab.models.mae import MAE, MAEConfig

    dataset = load_images("builtin:mnist5k")
    train_idx, test_idx = split_indices(len(dataset), dataset.labels, 0.2, 0)
    test_idx = subsample(test_idx, args.max_test)
    mean, std = dataset.subset(train_idx).pixel_stats()
    config = MAEConfig(image_size=(28, 28), patch_size=4, dim=64, depth=4, heads=4, mask_ratio=0.0,
                       objective="classify", num_classes=10, pixel_mean=mean, pixel_std=std)  # fmt: skip
    images, labels = dataset.images(test_idx), dataset.labels[test_idx]
    conditions = [("clean", None, 0.0), ("patches 25%", "patches", 0.25), ("patches 50%", "patches", 0.5),
                  ("block 25%", "block", 0.25), ("block 50%", "block", 0.5)]  # fmt: skip
    rows = {}
    for name, spec in (("no augmentation", None), (f"mask:{args.fraction:g}", f"mask:{args.fraction:g}")):
        torch.manual_seed(args.seed)
        model = MAE(config)
        transform = None if spec is None else parse_augment(spec, "image", patch_size=4)
        data = AugmentedData(dataset.subset(train_idx), transform)
        fit(model, data, train_config(args.mnist_steps, 128, 2e-3, args.seed), out / f"mnist-{name.split(':')[0]}",
            model_config=saved_config(model), progress=False)  # fmt: skip
        model.eval()
        accuracies = []
        with torch.inference_mode():
            for _, kind, fraction in conditions:
                g = torch.Generator().manual_seed(2024)
                x = images if kind is None else occlude(images, fraction, g, "image", kind=kind, patch_size=4)
                accuracies.append(float((model.logits(x).argmax(-1) == labels).float().mean()))
        rows[name] = accuracies
    return table(f"mnist5k: accuracy on {len(test_idx)} held-out digits ({args.mnist_steps} steps of 128)",
                 [c[0] for c in conditions], rows)  # fmt: skip


# ------------------------------------------------------------------------------------------------- BBC
def bbc(args, out: Path) -> str:
    from masklab.core.contract import preset_config
    from masklab.data.text import TextBlocksData, encode_truncated, load_text_corpus, stratified_split
    from masklab.models.mlm import PRESETS, BertConfig, BertForMLM, MLMConfig
    from masklab.tokenizers.text import TextTokenizer

    corpus = load_text_corpus("builtin:bbc-news")
    train_idx, test_idx = stratified_split(corpus.labels, 0.2, args.seed)
    test_idx = subsample(torch.tensor(test_idx), args.max_test).tolist()
    tokenizer = TextTokenizer.train(corpus.subset(train_idx).texts, "wordpiece", vocab_size=8000)
    framing = dict(cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)

    def blocks(indices):
        part = corpus.subset(indices)
        return encode_truncated(tokenizer.encode_batch(part.texts, add_special_tokens=False), 128,
                                labels=part.labels, **framing)  # fmt: skip

    train, test = blocks(train_idx), blocks(test_idx)
    specials = dict(special_ids=tokenizer.special_ids, mask_id=tokenizer.mask_id, pad_id=tokenizer.pad_id)
    bert = preset_config(BertConfig, PRESETS, "bert-tiny", vocab_size=tokenizer.vocab_size, max_len=128)
    config = MLMConfig(bert=bert, mask_id=tokenizer.mask_id, special_ids=tokenizer.special_ids, task="classify",
                       num_labels=len(corpus.label_names))  # fmt: skip
    conditions = [("clean", None, 0.0), ("[MASK] 25%", "mask", 0.25), ("[MASK] 50%", "mask", 0.5),
                  ("deleted 25%", "delete", 0.25), ("deleted 50%", "delete", 0.5)]  # fmt: skip
    rows = {}
    for name, spec in (("no augmentation", None), (f"mask:{args.fraction:g}", f"mask:{args.fraction:g}")):
        torch.manual_seed(args.seed)
        model = BertForMLM(config)
        transform = None if spec is None else parse_augment(spec, "text", **specials)
        data = AugmentedData(TextBlocksData(train), transform)
        fit(model, data, train_config(args.bbc_steps, 32, 1e-3, args.seed), out / f"bbc-{name.split(':')[0]}",
            model_config=saved_config(model), progress=False)  # fmt: skip
        model.eval()
        accuracies = []
        with torch.inference_mode():
            for _, kind, fraction in conditions:
                g = torch.Generator().manual_seed(2024)
                batch = {"ids": test.ids, "padding": test.padding}
                if kind is not None:
                    batch = occlude(batch, fraction, g, "text", kind=kind, **specials)
                pred = torch.cat([model.classify(batch["ids"][s : s + 128], batch["padding"][s : s + 128]).argmax(-1)
                                  for s in range(0, len(test), 128)])  # fmt: skip
                accuracies.append(float((pred == test.labels).float().mean()))
        rows[name] = accuracies
    return table(f"BBC News: accuracy on {len(test)} held-out articles ({args.bbc_steps} steps of 32)",
                 [c[0] for c in conditions], rows)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fraction", type=float, default=0.25, help="masking augmentation fraction (mask:F)")
    parser.add_argument("--mnist-steps", type=int, default=600)
    parser.add_argument("--bbc-steps", type=int, default=400)
    parser.add_argument("--max-test", type=int, default=None, help="score only this many test examples")
    parser.add_argument("--only", choices=("mnist", "bbc"), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="directory for the runs (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="masklab-augment-"))
    start = time.perf_counter()
    tables = []
    if args.only in (None, "mnist"):
        tables.append(mnist(args, out))
    if args.only in (None, "bbc"):
        tables.append(bbc(args, out))
    print()
    print("\n\n".join(tables))
    print(f"\n({time.perf_counter() - start:.0f} s wall; runs in {out})")


if __name__ == "__main__":
    main()
