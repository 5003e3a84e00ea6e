"""Arguments shared by the run-dispatched commands (embed, finetune, probe)."""

from __future__ import annotations

import argparse


def add_run_data_args(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("run", metavar="RUN", help="training run directory (holds config.json + checkpoint)")
    parser.add_argument("--data", default=None, help="dataset: a path, or builtin:NAME (default: the run's data)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    if command == "embed":
        parser.add_argument("-o", "--output", required=True, help="output .npy file (N, D)")
    if command == "finetune":
        parser.add_argument("--task", default="classify", help="downstream task (default: classify)")
        parser.add_argument("--steps", type=int, default=None)
        parser.add_argument("--epochs", type=float, default=None)
        parser.add_argument("--lr", type=float, default=None)
        parser.add_argument("--augment", default=None, metavar="NAME:F[,...]",
                            help="masking augmentation of the training inputs: mask:F (images: F of the patches "
                            "zeroed; text: F of the tokens -> [MASK]), images cutout:F / erase:P, text tokendrop:F; "
                            "comma-separated to compose")  # fmt: skip
        parser.add_argument("--out", default=None, help="output run directory for the fine-tuned model")
    if command == "probe":
        parser.add_argument("--max-examples", type=int, default=None)


def parse_hw(text: str, expected: str) -> tuple[int, int]:
    """``"28"`` or ``"32x48"`` -> ``(H, W)`` of positive ints; ``ArgumentTypeError`` saying ``expected`` otherwise."""
    try:
        parts = [int(p) for p in text.lower().replace("x", " ").split()]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return parts[0], parts[-1]
