"""Train the tiny BERT of ddp_script.py with FSDP under torchrun, then check what ``fit`` handed back: a plain
module (no DTensor parameter, no FSDP class or hook) holding the checkpoint's weights, ties kept, which evaluates
after the process group is gone (as the recipes' held-out evaluation and --export-hf do).

python -m torch.distributed.run --standalone --nproc-per-node 2 tests/train/fsdp_handback_script.py OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.modules["matplotlib"] = None  # no loss.png

from ddp_script import build  # noqa: E402

from masklab.core.io import load_checkpoint  # noqa: E402
from masklab.train import TrainConfig, fit  # noqa: E402
from masklab.train.distributed import exit_worker  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, data, model_config = build("mlm")
    classes = {name: type(m) for name, m in model.named_modules()}
    n_params = len(list(model.parameters()))  # tied weights count once
    cfg = TrainConfig(steps=2, batch_size=16, lr=1e-2, log_every=1, ckpt_every=2, device="cpu", fsdp=True)
    fit(model, data, cfg, out, model_config=model_config, progress=False)

    from torch.distributed.tensor import DTensor

    assert not torch.distributed.is_initialized()  # fit left no process group behind
    sharded = [name for name, p in model.named_parameters() if isinstance(p, DTensor)]
    assert not sharded, f"still sharded: {sharded}"
    changed = {name: type(m).__name__ for name, m in model.named_modules() if type(m) is not classes[name]}
    assert not changed, f"module classes changed: {changed}"
    hooked = [name for name, m in model.named_modules() if m._forward_pre_hooks or m._forward_hooks]
    assert not hooked, f"forward hooks left on {hooked}"
    assert len(list(model.parameters())) == n_params and model.training
    saved, _ = load_checkpoint(out / "checkpoint.safetensors")
    for name, tensor in model.state_dict().items():
        assert type(tensor) is torch.Tensor and torch.equal(tensor, saved[f"model.{name}"]), name
    model.eval()
    with torch.no_grad():
        batch = data.get_batch(torch.arange(8), torch.Generator().manual_seed(0))
        loss = model.training_loss(batch, torch.Generator().manual_seed(0)).loss
    assert torch.isfinite(loss), loss
    print(f"handed back plain: eval loss {float(loss):.4f}")


if __name__ == "__main__":
    main()
    exit_worker(0)
