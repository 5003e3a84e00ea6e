"""Greedy decoding tokens/s of masklab's GPT, to compare two source trees of masklab in separate processes.

Same seeds, configs and prompts in every tree, so the checksums of the generated tokens must agree::

    PYTHONPATH=/path/to/old/src python bench/decode.py
    PYTHONPATH=src python bench/decode.py
"""

from __future__ import annotations

import statistics
import subprocess
import time

import torch

from masklab.models.clm import GPT, GPTConfig
from masklab.models.clm.generation import generate


def main() -> None:
    torch.set_num_threads(1)
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    print(next((line for line in out.splitlines() if line.startswith("Model name")), "Model name: unknown"))
    settings = [
        ("gpt-char (4x128)", GPTConfig(vocab_size=65, context=256, dim=128, depth=4, heads=4), 8, 56),
        ("gpt-6x384", GPTConfig(vocab_size=65, context=256, dim=384, depth=6, heads=6), 16, 200),
    ]
    for name, cfg, prompt_len, new in settings:
        torch.manual_seed(0)
        model = GPT(cfg).eval()
        for batch in (1, 8):
            prompts = [[(i * 7 + j) % 65 for j in range(prompt_len)] for i in range(batch)]
            generate(model, prompts, max_new_tokens=8)  # warm-up
            times, tokens = [], []
            for _ in range(5):
                start = time.perf_counter()
                tokens = generate(model, prompts, max_new_tokens=new)
                times.append(time.perf_counter() - start)
            rate = batch * new / statistics.median(times)
            print(f"{name:18s} B={batch}  {rate:8.1f} tok/s  checksum {sum(map(sum, tokens))}")


if __name__ == "__main__":
    main()
