"""Train a tiny model with ``fit``; run directly (1 process) or under torchrun (N processes, gloo on CPU).

python tests/train/ddp_script.py OUT --model tiny --steps 6 --batch-size 16 --grad-accum 2
python -m torch.distributed.run --standalone --nproc-per-node 2 tests/train/ddp_script.py OUT ... [--fsdp]

``--model``: ``tiny`` (tests/train/train_tiny.py), ``mae`` (a 1-block MAE on 8x8 synthetic images with
crop + flip augmentation and drop-path) or ``mlm`` (a 1-layer BERT on synthetic token rows of varied length,
with dropout). ``mae`` and ``mlm`` log ``mask_digest``, a fingerprint of the exact mask the model trained on
in each micro-batch (averaged like the loss), so a test can see that masks, not just losses, agree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.modules["matplotlib"] = None  # no loss.png: saves a second per run

from masklab.core.contract import saved_config  # noqa: E402
from masklab.train import TrainConfig, fit  # noqa: E402
from masklab.train.distributed import exit_worker  # noqa: E402


def digest(masked: torch.Tensor) -> torch.Tensor:
    """A number that changes when any position of ``masked bool (B, L)`` flips: sum of masked positions' ranks."""
    flat = masked.flatten().float()
    return (flat * torch.arange(1, flat.numel() + 1)).sum() / flat.numel()


def with_mask_digest(model, draw) -> None:
    """Make ``model.training_loss`` also log :func:`digest` of its mask.

    ``draw(batch, generator) -> masked`` replays the model's first draws on a copy of the loop generator, so
    it sees the very mask training uses. Patched on the instance: the state dict (checkpoint) is unchanged.
    """
    train_loss = model.training_loss

    def training_loss(batch, generator):
        replay = torch.Generator()
        replay.set_state(generator.get_state())
        out = train_loss(batch, generator)
        out.metrics["mask_digest"] = digest(draw(batch, replay))
        return out

    model.training_loss = training_loss


def build_mae():
    from masklab.data.images import Augment, ImageDataset
    from masklab.models.mae import MAE, MAEConfig

    cfg = MAEConfig(image_size=(8, 8), patch_size=2, channels=1, dim=32, depth=1, heads=2, decoder_dim=16,
                    decoder_depth=1, decoder_heads=2, drop_path=0.1)  # fmt: skip
    model = MAE(cfg)
    # Smooth synthetic images: 4x4 noise upsampled to 8x8 (a learnable signal, no dataset download or import).
    g = torch.Generator().manual_seed(1)
    low = torch.rand(96, 1, 4, 4, generator=g)
    pixels = torch.nn.functional.interpolate(low, size=(8, 8), mode="bilinear", align_corners=False)
    data = ImageDataset(pixels, name="synthetic", augment=Augment())
    # The MAE draws its mask first in training_loss (sample_mask before anything else).
    with_mask_digest(model, lambda batch, g: model.sample_mask(batch.images.shape[0], generator=g).masked)
    return model, data, saved_config(model)


def build_mlm():
    from masklab.data.text import TextBlocksData, TokenBlocks
    from masklab.models.mlm import BertForMLM, MLMConfig
    from masklab.models.mlm.bert import BertConfig

    pad, cls, sep, mask, vocab = 0, 2, 3, 4, 63  # an odd vocabulary: FSDP shards it unevenly over 2 ranks
    bert = BertConfig(vocab_size=vocab, dim=32, depth=1, heads=2, max_len=16)  # BERT's dropout 0.1 stays on
    model = BertForMLM(MLMConfig(bert=bert, mask_id=mask, special_ids=(pad, 1, cls, sep, mask)))
    # 96 rows "[CLS] tokens [SEP] pad..." with 4..14 real tokens: micro-batches are cut to their longest row.
    g = torch.Generator().manual_seed(1)
    n, width = 96, 16
    lengths = torch.randint(4, width - 1, (n,), generator=g)  # real tokens incl. [CLS], excl. [SEP]
    pos = torch.arange(width)
    ids = torch.randint(5, vocab, (n, width), generator=g)
    ids[:, 0] = cls
    ids = torch.where(pos == lengths[:, None], sep, ids)
    padding = pos > lengths[:, None]
    ids = ids.masked_fill(padding, pad)
    inside = (pos > 0) & (pos < lengths[:, None])
    word_ids = torch.where(inside, pos - 1, -1)
    data = TextBlocksData(TokenBlocks(ids, word_ids, padding))
    with_mask_digest(model, lambda batch, g: model.draw(batch, g).masked)
    return model, data, saved_config(model)


def build_table():
    import pandas as pd

    from masklab.data.tables import TableTrainData
    from masklab.models.table import TableMAE
    from masklab.tokenizers.table import encode_frame, infer_schema

    # All-numeric on purpose: the categorical head must not exist then (DDP stalls on unused parameters).
    g = torch.Generator().manual_seed(1)
    base = torch.randn(96, 2, generator=g)
    columns = {"a": base[:, 0], "b": base[:, 1], "c": base[:, 0] + base[:, 1], "d": base[:, 0] - base[:, 1]}
    frame = pd.DataFrame({k: v.numpy() for k, v in columns.items()})
    frame.iloc[::7, 2] = float("nan")  # some real missing cells
    schema = infer_schema(frame)
    model = TableMAE.from_preset("table-tiny", schema=schema)
    data = TableTrainData(encode_frame(frame, schema))
    with_mask_digest(model, lambda batch, g: model.mask_observed(batch["missing"], g))
    return model, data, saved_config(model)


def build_mlm_shards(root: str):
    """A 1-layer BERT on rows read from a prepared corpus (``masklab prepare``) at ``root``."""
    from masklab.data.shards import PreparedCorpus
    from masklab.data.shards.datasets import ShardBlocksData
    from masklab.models.mlm import BertForMLM, MLMConfig
    from masklab.models.mlm.bert import BertConfig
    from masklab.tokenizers.text import TextTokenizer

    tok = TextTokenizer.load(f"{root}/tokenizer.json")
    bert = BertConfig(vocab_size=tok.vocab_size, dim=32, depth=1, heads=2, max_len=16)
    model = BertForMLM(MLMConfig(bert=bert, mask_id=tok.mask_id, special_ids=tok.special_ids, masking="whole_word"))
    data = ShardBlocksData(PreparedCorpus(root), 16, cls_id=tok.cls_id, sep_id=tok.sep_id, pad_id=tok.pad_id)
    with_mask_digest(model, lambda batch, g: model.draw(batch, g).masked)
    return model, data, saved_config(model)


def build(name: str, shards: str | None = None):
    """(model, data, model_config) for a tiny instance of ``name``."""
    if name == "mlm-shards":
        return build_mlm_shards(shards)
    if name == "tiny":
        from train_tiny import TinyData, TinyModel

        model = TinyModel()
        return model, TinyData(n=96), model.config()
    if name == "mae":
        return build_mae()
    if name == "mlm":
        return build_mlm()
    if name == "table":
        return build_table()
    raise ValueError(f"unknown model {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--ckpt-every", type=int, default=3)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--fsdp", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes per rank")
    parser.add_argument("--shards", default=None, help="a prepared corpus (for --model mlm-shards)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same initial weights on every rank and in every run
    model, data, model_config = build(args.model, args.shards)
    # Constant lr: runs with different `steps` then share one schedule, so a resumed run can be compared.
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=1e-2,
                      min_lr=1e-2, log_every=1, ckpt_every=args.ckpt_every, device="cpu", fsdp=args.fsdp,
                      workers=args.workers)  # fmt: skip
    fit(model, data, cfg, args.out_dir, model_config=model_config, resume=args.resume, progress=False)


if __name__ == "__main__":
    main()
    exit_worker(0)  # as masklab.cli.run: under torchrun, skip the gloo teardown at exit
