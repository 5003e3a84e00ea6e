"""MLM quality for a fixed CPU budget: masklab BertForMLM vs HF BertForMaskedLM trained for the same wall time.

Same data (builtin:bbc-news, documents split once into train / held-out), same WordPiece tokenizer (trained on
the train documents), same config and initial weights (copied through masklab's converter), same batches and
masks, same AdamW and time-based schedule (linear warmup over the first 5% of the budget, cosine to 0 at the
end). The two models train interleaved step by step, each until its own step time reaches the budget, so that
a busy machine slows both alike. The masked-token top-1 accuracy on the held-out documents then uses one fixed
set of masks for both. Finally each pretrained encoder is fine-tuned on BBC 5-class classification
(stratified, seeded 80/20 split, masklab's fit with the same recipe) and its test accuracy reported.

    python bench/mlm_quality.py --minutes 3                 # the reported setting (bert-mini, 1 thread)
    python bench/mlm_quality.py --minutes 0.2 --finetune-epochs 0.2 --preset bert-tiny    # a smoke run
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch
import torch.nn.functional as F


def prepare(args):
    from masklab.data.text import holdout_split, load_builtin, pack_sequences
    from masklab.tokenizers.text import TextTokenizer

    corpus = load_builtin("bbc-news")
    train_idx, held_idx = holdout_split(len(corpus), args.holdout, args.seed)
    tokenizer = TextTokenizer.train(corpus.subset(train_idx).texts, vocab_size=args.vocab_size)
    pack = dict(sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id, cls_id=tokenizer.cls_id)

    def blocks(indices):
        return pack_sequences(
            tokenizer.encode_batch(corpus.subset(indices).texts, add_special_tokens=False), args.seq_len, **pack
        )

    return corpus, tokenizer, blocks(train_idx), blocks(held_idx)


def build(args, tokenizer):
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForMaskedLM

    from masklab.core.contract import preset_config
    from masklab.interop.hf.bert import bert_config_to_hf
    from masklab.models.mlm import PRESETS, BertConfig, BertForMLM, MLMConfig

    torch.manual_seed(args.seed)
    bert = preset_config(BertConfig, PRESETS, args.preset, vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id)
    ours = BertForMLM(MLMConfig(bert=bert, mask_id=tokenizer.mask_id, special_ids=tokenizer.special_ids))
    hf = BertForMaskedLM(HFBertConfig(**bert_config_to_hf(bert)))
    hf.load_state_dict(ours.hf_state_dict(), strict=False)
    hf.tie_weights()
    return ours, hf


def lr_at(fraction: float, peak: float) -> float:
    """Warmup over the first 5% of the time budget, then half a cosine to 0 at its end."""
    if fraction < 0.05:
        return peak * fraction / 0.05
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (fraction - 0.05) / 0.95)))


class Trainer:
    """One model's optimizer, schedule and data streams; batch k and its masks are the same for every model."""

    def __init__(self, name, model, loss_fn, args) -> None:
        from masklab.train.optim import param_groups

        self.name, self.model, self.loss_fn, self.args = name, model.train(), loss_fn, args
        self.opt = torch.optim.AdamW(param_groups(model, 0.01), lr=args.lr, betas=(0.9, 0.98))
        self.sampler_g = torch.Generator().manual_seed(args.seed)
        self.mask_g = torch.Generator().manual_seed(args.seed + 1)
        self.steps, self.seconds = 0, 0.0

    def step(self, data, masker) -> float:
        """One AdamW step; returns its wall time, which is what the budget counts."""
        start = time.perf_counter()
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.seconds / (self.args.minutes * 60), self.args.lr)
        batch = data.get_batch(torch.randint(len(data), (self.args.batch_size,), generator=self.sampler_g))
        drawn = masker.draw(batch, self.mask_g)  # masklab's 80/10/10 draw, shared by both
        inputs, masked = drawn.inputs, drawn.masked
        loss = self.loss_fn(self.model, batch, inputs, masked)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.steps += 1
        self.seconds += time.perf_counter() - start
        if self.steps % 20 == 0:
            print(f"  {self.name}: step {self.steps}, loss {float(loss.detach()):.3f}, {self.seconds:.0f}s")
        return self.seconds


def train_interleaved(trainers: list[Trainer], data, masker, args) -> dict:
    """Give each model the same wall-clock budget of its own step time, interleaving their steps (always the one
    that has used the least time next) so that load from other processes falls on both alike."""
    budget = args.minutes * 60
    while active := [t for t in trainers if t.seconds < budget]:
        min(active, key=lambda t: t.seconds).step(data, masker)
    tokens = args.batch_size * args.seq_len
    return {
        t.name: {"steps": t.steps, "seconds": t.seconds, "tokens_per_s": t.steps * tokens / t.seconds} for t in trainers
    }


def ours_loss(model, batch, inputs, masked):
    logits = model.predict_masked(model(inputs, batch["padding"]), masked)  # (M, V)
    return F.cross_entropy(logits, batch["ids"][masked])


def hf_loss(model, batch, inputs, masked):
    labels = torch.where(masked, batch["ids"], torch.full_like(batch["ids"], -100))
    return model(input_ids=inputs, attention_mask=(~batch["padding"]).long(), labels=labels).loss


def heldout_top1(logits_fn, held, masker, seed: int) -> float:
    """Top-1 accuracy at one fixed set of masked positions (the same draw for every model)."""
    from masklab.data.text import TextBlocksData

    data, g, correct, total = TextBlocksData(held), torch.Generator().manual_seed(seed), 0, 0
    with torch.no_grad():
        for start in range(0, len(data), 64):
            batch = data.get_batch(torch.arange(start, min(start + 64, len(data))))
            drawn = masker.draw(batch, g)
            inputs, masked = drawn.inputs, drawn.masked
            logits = logits_fn(inputs, batch["padding"], masked)  # (M, V)
            correct += int((logits.argmax(-1) == batch["ids"][masked]).sum())
            total += int(masked.sum())
    return correct / total


def finetune(encoder_state, ours_cfg, corpus, tokenizer, args) -> float:
    """BBC 5-class: the pretrained encoder + a linear head on mean-pooled states, masklab's fit, test accuracy."""
    import dataclasses

    from masklab.core.contract import saved_config
    from masklab.data.text import TextBlocksData, encode_truncated, stratified_split
    from masklab.models.mlm import BertForMLM
    from masklab.train import TrainConfig, fit

    train_idx, test_idx = stratified_split(corpus.labels, 0.2, args.seed)
    ids = dict(cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)

    def encode(indices):
        sub = corpus.subset(indices)
        return encode_truncated(
            tokenizer.encode_batch(sub.texts, add_special_tokens=False), args.seq_len, labels=sub.labels, **ids
        )

    train, test = encode(train_idx), encode(test_idx)
    model = BertForMLM(dataclasses.replace(ours_cfg, task="classify", num_labels=len(corpus.label_names)))
    model.load_state_dict(encoder_state, strict=False)
    steps = max(1, round(args.finetune_epochs * len(train) / 32))
    cfg = TrainConfig(
        steps=steps,
        batch_size=32,
        lr=args.finetune_lr,
        warmup_steps=steps // 10,
        weight_decay=0.01,
        betas=(0.9, 0.999),
        seed=args.seed,
        device="cpu",
        log_every=max(1, steps // 5),
        ckpt_every=steps,
    )
    with tempfile.TemporaryDirectory() as out:
        fit(model, TextBlocksData(train), cfg, out, model_config=saved_config(model), progress=False)
    model.eval()
    with torch.no_grad():
        preds = torch.cat(
            [model.classify(test.ids[i : i + 64], test.padding[i : i + 64]).argmax(-1) for i in range(0, len(test), 64)]
        )
    return float((preds == test.labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="pretraining wall time per model")
    parser.add_argument("--preset", default="bert-mini")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--holdout", type=float, default=0.1)
    parser.add_argument("--finetune-epochs", type=float, default=3.0)
    parser.add_argument("--finetune-lr", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from masklab.data.text import TextBlocksData
    from masklab.models.mlm import BertForMLM

    corpus, tokenizer, train_blocks, held_blocks = prepare(args)
    ours, hf = build(args, tokenizer)
    data = TextBlocksData(train_blocks)
    print(
        f"# bbc-news: {len(train_blocks)} train / {len(held_blocks)} held-out sequences of {args.seq_len}; "
        f"vocab {tokenizer.vocab_size}; {args.preset}; {args.minutes:g} min each; {args.threads} thread(s)"
    )
    initial = {k: v.clone() for k, v in ours.state_dict().items()}  # the shared starting point
    trainers = [Trainer("masklab", ours, ours_loss, args), Trainer("hf", hf, hf_loss, args)]
    runs = train_interleaved(trainers, data, ours, args)
    ours.eval(), hf.eval()
    runs["masklab"]["top1"] = heldout_top1(
        lambda x, p, m: ours.predict_masked(ours(x, p), m), held_blocks, ours, args.seed + 2
    )
    runs["hf"]["top1"] = heldout_top1(
        lambda x, p, m: hf(input_ids=x, attention_mask=(~p).long()).logits[m], held_blocks, ours, args.seed + 2
    )
    if args.finetune_epochs > 0:
        runs["masklab"]["finetune_acc"] = finetune(ours.state_dict(), ours.config, corpus, tokenizer, args)
        with tempfile.TemporaryDirectory() as folder:
            hf.save_pretrained(folder)  # back through the HF -> masklab converter
            hf_as_ours, _ = BertForMLM.from_hf(folder, mask_id=tokenizer.mask_id)
        runs["hf"]["finetune_acc"] = finetune(hf_as_ours.state_dict(), ours.config, corpus, tokenizer, args)
        # The same fine-tuning from the untrained initial weights: what the pretraining budget bought.
        runs["none"] = {"steps": 0, "finetune_acc": finetune(initial, ours.config, corpus, tokenizer, args)}

    print(
        f"| {'pretrained with':<30} | {'steps':>6} | {'tokens/s':>9} | {'held-out MLM top-1':>18} | "
        f"{'BBC 5-class acc':>15} |"
    )
    print(f"|{'-' * 32}|{'-' * 8}|{'-' * 11}|{'-' * 20}|{'-' * 17}|")
    labels = {
        "masklab": "masklab BertForMLM",
        "hf": f"HF BertForMaskedLM ({hf.config._attn_implementation})",
        "none": "no pretraining (same init)",
    }
    for name, r in runs.items():
        acc = f"{r['finetune_acc']:.4f}" if "finetune_acc" in r else "-"
        speed = f"{r['tokens_per_s']:.0f}" if "tokens_per_s" in r else "-"
        top1 = f"{r['top1']:.4f}" if "top1" in r else "-"
        print(f"| {labels[name]:<30} | {r['steps']:>6} | {speed:>9} | {top1:>18} | {acc:>15} |")


if __name__ == "__main__":
    main()
