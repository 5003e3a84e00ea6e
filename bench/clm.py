"""Causal LM speed: masklab GPT vs Hugging Face GPT2LMHeadModel, same config, same weights, same process.

Training: tokens/s of forward + backward + AdamW step on random token windows (the same cross-entropy and
optimizer for both models, so only the models differ). Generation: new tokens/s of greedy decoding with a KV
cache (HF ``generate(do_sample=False)`` vs ``masklab.models.generation.generate``), checking both produce the
same tokens. Runs are interleaved (ours, HF, ours, HF, ...) and the median is reported, because the machine may
be shared. masklab runs as ``auto`` picks on this machine (GEMM library and precision; the probes' reasons
are printed) and with each forced choice; decoding uses the fp32 arms.

    python bench/clm.py                         # gpt-char and gpt-6x384 on 1 thread
    python bench/clm.py --configs gpt-char --repeats 3 --train-steps 10 --gen-tokens 32   # quick check
    python bench/clm.py --configs gpt2-small --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from masklab.core.contract import preset_config
from masklab.interop.hf.gpt2 import hf_config_dict, to_hf_state_dict
from masklab.models.clm import GPT, GPTConfig
from masklab.models.clm.model import PRESETS

sys.path.insert(0, str(Path(__file__).parent))
from cpu_arms import default_and_forced_arms, rotated, run_arm

HF = "HF GPT2LMHeadModel"


@dataclass(frozen=True)
class Setting:
    model: GPTConfig
    batch: int  # training windows per step
    prompt: int  # prompt tokens for generation
    new_tokens: int  # generated tokens (prompt + new_tokens <= context)


SETTINGS = {
    # nanoGPT's CPU recipe for character-level Shakespeare.
    "gpt-char": Setting(
        preset_config(GPTConfig, PRESETS, "gpt-char", vocab_size=65), batch=12, prompt=8, new_tokens=56
    ),
    # nanoGPT's (GPU) shakespeare_char model size, context 256.
    "gpt-6x384": Setting(GPTConfig(vocab_size=65, context=256, dim=384, depth=6, heads=6), 4, 16, 200),
    "gpt2-small": Setting(preset_config(GPTConfig, PRESETS, "gpt2-small"), batch=1, prompt=16, new_tokens=64),
}


def make_pair(cfg: GPTConfig) -> tuple[torch.nn.Module, torch.nn.Module]:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    ours = GPT(cfg)
    hf = GPT2LMHeadModel(GPT2Config(**hf_config_dict(cfg), bos_token_id=0, eos_token_id=0, pad_token_id=0))
    hf.load_state_dict(to_hf_state_dict(ours))
    return ours, hf


def train_tokens_per_s(model, kind: str, ids: torch.Tensor, steps: int) -> float:
    """fwd + bwd + AdamW on ``ids (B, T + 1)``; one warm-up step is not timed."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        logits = model(ids[:, :-1]) if kind == "ours" else model(input_ids=ids[:, :-1]).logits  # (B, T, V)
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * ids[:, 1:].numel() / (time.perf_counter() - start)


@torch.no_grad()
def generate_tokens_per_s(model, kind: str, prompt: torch.Tensor, new: int) -> tuple[float, list[list[int]]]:
    """Greedy decoding of ``new`` tokens after ``prompt (B, P)``; returns new tokens/s and the tokens."""
    model.eval()
    start = time.perf_counter()
    if kind == "ours":
        from masklab.models.clm.generation import generate

        out = generate(model, prompt.tolist(), max_new_tokens=new)
    else:
        ids = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new,
                             min_new_tokens=new, do_sample=False, eos_token_id=None, pad_token_id=0)  # fmt: skip
        out = ids[:, prompt.shape[1] :].tolist()
    return prompt.shape[0] * new / (time.perf_counter() - start), out


def bench(name: str, setting: Setting, *, repeats: int, train_steps: int, gen_batches: list[int]) -> list[dict]:
    cfg = setting.model
    ours, hf = make_pair(cfg)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (setting.batch, cfg.context + 1), generator=g)

    def probe_step(dtype) -> None:  # what fit's probes time: forward + backward of one batch
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            logits = ours(ids[:, :-1])
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1)).backward()
        ours.zero_grad(set_to_none=True)

    arms, notes = default_and_forced_arms(ours, probe_step, f"bench/clm {name} batch={setting.batch}")
    for note in notes:
        print(f"# {name}: {note}", file=sys.stderr)
    rows = []
    speeds: dict[str, list[float]] = {HF: [], **{arm[0]: [] for arm in arms}}
    for r in range(repeats):
        for arm in rotated([None, *arms], r):  # None: HF
            if arm is None:
                speeds[HF].append(train_tokens_per_s(hf, "hf", ids, train_steps))
            else:
                speeds[arm[0]].append(run_arm(ours, arm, lambda: train_tokens_per_s(ours, "ours", ids, train_steps)))
    rows += _rows(name, f"train B={setting.batch} T={cfg.context}", speeds, None)
    ours, hf = make_pair(cfg)  # fresh, identical weights for generation
    gen_arms = [arm for arm in arms if arm[2] is None]  # decoding runs fp32: the default's GEMM and each forced
    for batch in gen_batches:
        prompt = torch.randint(0, cfg.vocab_size, (batch, setting.prompt), generator=g)
        speeds, outs = {HF: [], **{arm[0]: [] for arm in gen_arms}}, {}
        generate_tokens_per_s(ours, "ours", prompt, 4)  # warm-up
        generate_tokens_per_s(hf, "hf", prompt, 4)
        for r in range(repeats):
            for arm in rotated([None, *gen_arms], r):  # None: HF
                if arm is None:
                    speed, outs[HF] = generate_tokens_per_s(hf, "hf", prompt, setting.new_tokens)
                    speeds[HF].append(speed)
                    continue
                speed, outs[arm[0]] = run_arm(
                    ours, arm, lambda p=prompt: generate_tokens_per_s(ours, "ours", p, setting.new_tokens)
                )
                speeds[arm[0]].append(speed)
        label = f"generate B={batch} prompt={setting.prompt} new={setting.new_tokens}"
        rows += _rows(name, label, speeds, all(out == outs[HF] for out in outs.values()))
    return rows


def _rows(name: str, what: str, speeds: dict[str, list[float]], same: bool | None) -> list[dict]:
    hf = statistics.median(speeds[HF])
    return [{"config": name, "what": what, "arm": arm, "tok_s": statistics.median(v),
             "vs_hf": statistics.median(v) / hf, "same_tokens": same} for arm, v in speeds.items()]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["gpt-char", "gpt-6x384"], choices=sorted(SETTINGS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--gen-batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--gen-tokens", type=int, default=None, help="override each config's new-token count")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} thread(s), "
          f"median of {args.repeats} interleaved runs",
          file=sys.stderr)  # fmt: skip
    rows = []
    for name in args.configs:
        setting = SETTINGS[name]
        if args.gen_tokens is not None:
            new = min(args.gen_tokens, setting.model.context - setting.prompt)
            setting = Setting(setting.model, setting.batch, setting.prompt, new)
        rows += bench(name, setting, repeats=args.repeats, train_steps=args.train_steps, gen_batches=args.gen_batches)
    print("| config | measurement | arm | tok/s | vs HF | same tokens |")
    print("|---|---|---|---:|---:|---|")
    for r in rows:
        same = "" if r["same_tokens"] is None else ("yes" if r["same_tokens"] else "NO")
        print(f"| {r['config']} | {r['what']} | {r['arm']} | {r['tok_s']:,.0f} | {r['vs_hf']:.2f}x | {same} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
