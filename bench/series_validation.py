"""Validation-only experiments for the series classifier (issue 20's third run): pretrain once on 3/4 of a
built-in's TRAINING split (stratified, seeded: ``bench/series.py``'s ``validation_split``), then score the
linear probe and one fine-tuning per ``--ft STEPS:LR`` on the other quarter. The test split is never read.

    python bench/series_validation.py --dataset plaid --seed 0 --ft 300:1e-3 600:1e-3 \
        --set input_transform=asinh input_scale=0.094

``--set KEY=VALUE`` replaces settings of ``masklab.recipes.series.classifier_overrides``. Timings printed here
are measured under load.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import series as bench

from masklab.data.series import load_series
from masklab.eval.probe import linear_probe_accuracy
from masklab.recipes import series as recipes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="plaid")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--ft", nargs="+", default=["300:5e-4"], metavar="STEPS:LR")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, val = bench.validation_split(load_series(f"builtin:{args.dataset}").part("train"))
    settings = dict(recipes.classifier_overrides(train), mask_kind="random", mask_ratio=0.4)
    settings.update(bench._setting(t) for t in args.set)
    print("settings", settings, flush=True)
    model = recipes.build_model(train, "series-small", seed=args.seed, **settings)
    cfg = recipes.train_config(steps=args.pretrain_steps, minutes=None, batch_size=32, lr=1e-3, seed=args.seed,
                               device="cpu")  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        model = recipes.pretrain(model, train, out, train=cfg, progress=False).model
    tx, vx = recipes.embed(model, train), recipes.embed(model, val)
    probe = linear_probe_accuracy(tx, train.labels, vx, val.labels, seed=args.seed)
    print(f"RESULT probe {100 * probe:.2f}", flush=True)
    for spec in args.ft:
        steps, lr = spec.split(":")
        cfg = recipes.train_config(steps=int(steps), minutes=None, batch_size=32, lr=float(lr), seed=args.seed,
                                   device="cpu")  # fmt: skip
        start = time.time()
        tuned = recipes.finetune_classify(model, train, num_classes=len(train.classes), config=cfg)
        fit_acc = float((recipes.predict_classes(tuned, train) == train.labels).mean())
        acc = float((recipes.predict_classes(tuned, val) == val.labels).mean())
        print(f"RESULT finetune {spec}: val {100 * acc:.2f} (accuracy on its own training part {100 * fit_acc:.1f}) "
              f"({time.time() - start:.0f} s, under load)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
