"""Training-step throughput: masklab BertForMLM vs Hugging Face BertForMaskedLM, same config, same process.

Both models hold the same weights (copied through masklab's HF converter), see the same batches with the same
masks and 80/10/10 corruption, and take full AdamW steps (forward, backward, optimizer). Timed steps alternate
between the two models so that load from other processes hits both alike. Before timing, one batch is run
without dropout and the two losses must agree: the speed-up is for the same computation.

    python bench/mlm.py                       # bert-mini, seq 128, vocab 30522, batch 32, 1 thread
    python bench/mlm.py --steps 3 --preset bert-tiny --vocab 2000 --batch-size 8    # a smoke run

Tokens/s counts every input token (batch x seq-len), masked or not. masklab runs as ``auto`` picks on this
machine (GEMM library and precision, with the probes' reasons printed) and with each forced choice.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from cpu_arms import default_and_forced_arms, run_arm

HF = "HF BertForMaskedLM"


def build_models(preset: str, vocab: int, seq_len: int, seed: int):
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForMaskedLM

    from masklab.core.contract import preset_config
    from masklab.interop.hf.bert import bert_config_to_hf, bert_mlm_state_to_hf
    from masklab.models.mlm import PRESETS, BertConfig, BertForMLM, MLMConfig

    torch.manual_seed(seed)
    bert = preset_config(BertConfig, PRESETS, preset, vocab_size=vocab, max_len=max(512, seq_len))
    ours = BertForMLM(MLMConfig(bert=bert, mask_id=4, special_ids=(0, 1, 2, 3, 4)))
    hf_config = HFBertConfig(**bert_config_to_hf(bert))
    hf = BertForMaskedLM(hf_config)  # transformers' default attention implementation
    missing, unexpected = hf.load_state_dict(bert_mlm_state_to_hf(ours), strict=False)
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"weight copy failed: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    return ours, hf


def make_batches(n: int, batch_size: int, seq_len: int, vocab: int, model, seed: int) -> list[dict]:
    """Random token batches (no padding, like packed text) with masks drawn once and shared by both models."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        ids = torch.randint(5, vocab, (batch_size, seq_len), generator=g)
        ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
        batch = {"ids": ids, "padding": torch.zeros_like(ids, dtype=torch.bool)}
        drawn = model.draw(batch, g)
        inputs, masked = drawn.inputs, drawn.masked
        labels = torch.where(masked, ids, torch.full_like(ids, -100))  # HF: -100 = not predicted
        batches.append({**batch, "inputs": inputs, "masked": masked, "labels": labels})
    return batches


def ours_step(model, opt, b) -> torch.Tensor:
    logits = model.predict_masked(model(b["inputs"], b["padding"]), b["masked"])  # (M, V): sparse
    loss = torch.nn.functional.cross_entropy(logits, b["ids"][b["masked"]])
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.detach()


def hf_step(model, opt, b) -> torch.Tensor:
    attention_mask = (~b["padding"]).long()  # HF polarity: 1 = keep
    loss = model(input_ids=b["inputs"], attention_mask=attention_mask, labels=b["labels"]).loss  # (B, L, V)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.detach()


def check_same_loss(ours, hf, b) -> float:
    ours.eval(), hf.eval()
    with torch.no_grad():
        a = torch.nn.functional.cross_entropy(
            ours.predict_masked(ours(b["inputs"]), b["masked"]), b["ids"][b["masked"]]
        )
        c = hf(input_ids=b["inputs"], labels=b["labels"]).loss
    ours.train(), hf.train()
    return abs(float(a) - float(c))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="bert-mini")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ours, hf = build_models(args.preset, args.vocab, args.seq_len, args.seed)
    batches = make_batches(args.warmup + args.steps, args.batch_size, args.seq_len, args.vocab, ours, args.seed)
    diff = check_same_loss(ours, hf, batches[0])
    if diff > 1e-4:
        raise SystemExit(f"the two models disagree on the same batch (|loss diff| = {diff:.2e}); not benchmarking")

    def probe_step(dtype) -> None:  # what fit's probes time: forward + backward of one batch
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            b = batches[0]
            loss = torch.nn.functional.cross_entropy(ours.predict_masked(ours(b["inputs"]), b["masked"]),
                                                     b["ids"][b["masked"]])  # fmt: skip
        loss.backward()
        ours.zero_grad(set_to_none=True)

    workload = f"bench/mlm {args.preset} batch={args.batch_size}x{args.seq_len} vocab={args.vocab}"
    arms, notes = default_and_forced_arms(ours, probe_step, workload)
    runners = {HF: (hf, lambda m, o, b: hf_step(m, o, b))}
    for arm in arms:
        model = copy.deepcopy(ours)
        runners[arm[0]] = (model, lambda m, o, b, arm=arm: run_arm(m, arm, lambda: ours_step(m, o, b)))
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, (m, _) in runners.items()}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for i, batch in enumerate(batches):
        order = list(runners) if i % 2 == 0 else list(reversed(runners))  # alternate who goes first
        for name in order:
            model, step = runners[name]
            start = time.perf_counter()
            step(model, opts[name], batch)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)

    tokens = args.batch_size * args.seq_len
    masked = statistics.mean(float(b["masked"].sum()) for b in batches)
    attn = getattr(hf.config, "_attn_implementation", "?")
    print(
        f"# {args.preset} (D={ours.config.bert.dim}, depth={ours.config.bert.depth}), seq {args.seq_len}, vocab "
        f"{args.vocab}, batch {args.batch_size}, {masked:.0f} masked tokens/batch, {args.threads} thread(s), "
        f"torch {torch.__version__}, {args.steps} timed steps each; same-batch loss diff {diff:.1e}"
    )
    for note in notes:
        print(f"# {note}")
    print(f"| {'arm':<66} | {'median step ms':>14} | {'tokens/s':>9} | {'vs HF':>6} |")
    print(f"|{'-' * 68}|{'-' * 16}|{'-' * 11}|{'-' * 8}|")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        label = f"{HF} (attn={attn})" if name == HF else name
        print(f"| {label:<66} | {median * 1e3:>14.1f} | {tokens / median:>9.0f} | {medians[HF] / median:>5.2f}x |")


if __name__ == "__main__":
    main()
