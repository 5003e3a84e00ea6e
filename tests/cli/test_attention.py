"""``masklab attention`` end to end on tiny mae / mlm / clm runs: PNGs, saved weights against float64
softmax(QKᵀ/√d + mask) on each layer's own input, the encoder input against the model's forward, and errors.

(The float64 check of ``collect_attention`` on a bare encoder lives in test_attention_viz.py; here the weights
are the ones the command writes, from a trained run's real input.)
"""

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import masklab.viz.attention as viz
from masklab import masks as M
from masklab.cli import main

TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("attn_runs")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join("the cat sat on the mat and the dog ran to the park ." for _ in range(40)))
    cpu = ["--device", "cpu", "--steps", "2", "--log-every", "1"]
    assert main(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--batch-size", "16",
                 "--out", str(root / "mae"), *cpu]) == 0  # fmt: skip
    assert main(["pretrain", "mlm", "--data", str(corpus), "--preset", "bert-tiny", "--vocab-size", "60",
                 "--seq-len", "16", "--batch-size", "4", "--holdout", "0.1", "--out", str(root / "mlm"),
                 *cpu]) == 0  # fmt: skip
    assert main(["pretrain", "clm", "--data", str(corpus), "--preset", "gpt-tiny", "--context", "16",
                 "--batch-size", "4", "--out", str(root / "clm"), *cpu]) == 0  # fmt: skip
    (root / "table").mkdir()
    (root / "table" / "config.json").write_text(json.dumps({"kind": "table", "model": {}}))
    return root


@pytest.fixture
def spy(monkeypatch):
    """Records (encoder, encoder input, is_causal) of every collect_attention call the command makes (causal =
    the command passed the ``causal()`` rule as the encoder's one mask argument)."""
    calls = []
    original = viz.collect_attention

    def recording(encoder, x, **kwargs):
        blocked = kwargs.get("blocked")
        calls.append((encoder, x.clone(), blocked is not None and getattr(blocked, "name", None) == "causal"))
        return original(encoder, x, **kwargs)

    monkeypatch.setattr(viz, "collect_attention", recording)
    return calls


@torch.no_grad()
def float64_weights(encoder, x: torch.Tensor, is_causal: bool) -> list[torch.Tensor]:
    """softmax(q kᵀ / sqrt(Dh) + mask) in float64, q and k from each layer's qkv projection on that layer's own
    attention input (caught by a hook, so pre-norm MAE/GPT and post-norm BERT blocks are both covered)."""
    enc = copy.deepcopy(encoder).double()
    inputs = []
    hooks = [b.attn.register_forward_pre_hook(lambda _m, args: inputs.append(args[0])) for b in enc.blocks]
    enc(x.double(), blocked=M.causal() if is_causal else None)
    for hook in hooks:
        hook.remove()
    out = []
    for block, h in zip(enc.blocks, inputs, strict=True):
        B, L, D = h.shape
        heads = block.attn.heads
        q, k, _ = block.attn.qkv(h).view(B, L, 3, heads, D // heads).permute(2, 0, 3, 1, 4)  # (B, H, L, Dh) each
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // heads)  # (B, H, L, L)
        if is_causal:
            scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), -math.inf)
        out.append(scores.softmax(dim=-1))
    return out


def check_saved_weights(path, encoder, x, is_causal, n_tokens):
    saved = load_file(str(path))
    depth = len(encoder.blocks)
    assert sorted(saved) == [f"layer{i}" for i in range(depth)]
    reference = float64_weights(encoder, x, is_causal)
    heads = encoder.blocks[0].attn.heads
    for i, ref in enumerate(reference):
        w = saved[f"layer{i}"]
        assert w.shape == (1, heads, n_tokens, n_tokens) and w.dtype == torch.float32
        torch.testing.assert_close(w.double(), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(w.sum(-1), torch.ones(1, heads, n_tokens))
    return saved


def assert_png(path, min_width=300, min_height=200):
    with Image.open(path) as png:
        assert png.format == "PNG" and png.width >= min_width and png.height >= min_height
        png.load()  # fully decodable, not truncated


def test_mae_rollout_png_and_weights_match_float64(runs, tmp_path, spy, capsys):
    out, weights_out = tmp_path / "attn.png", tmp_path / "w.safetensors"
    argv = ["attention", str(runs / "mae"), "builtin:digits:5", "-o", str(out), "--weights-out", str(weights_out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and str(weights_out) in printed and "[CLS] attention rollout" in printed
    assert_png(out)
    ((encoder, x, is_causal),) = spy
    assert x.shape == (1, 1 + 4, 32)  # [CLS] + the 2x2 patches of an 8x8 digit, mae-tiny width 32
    check_saved_weights(weights_out, encoder, x, is_causal, n_tokens=5)
    # The command's encoder input is exactly what MAE.encode feeds its encoder for the same digit.
    from masklab.data.images import load_builtin
    from masklab.recipes.mae import load_mae_run as load_run_model

    model = load_run_model(runs / "mae")
    with torch.inference_mode():
        torch.testing.assert_close(encoder(x), model.encode(load_builtin("digits").images(slice(5, 6))))


def test_mae_single_layer_and_colour_file_for_a_gray_model(runs, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "layer.png"
    assert main(["attention", str(runs / "mae"), str(photo), "-o", str(out), "--layer", "1", "--head", "0"]) == 0
    assert "layer 1 head 0" in capsys.readouterr().out
    assert_png(out)


def test_mlm_heatmaps_text_file_and_weights_match_float64(runs, tmp_path, spy, capsys):
    text_file = tmp_path / "input.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    out, weights_out = tmp_path / "text.png", tmp_path / "tw.safetensors"
    assert main(["attention", str(runs / "mlm"), str(text_file), "-o", str(out),
                 "--weights-out", str(weights_out)]) == 0  # fmt: skip
    assert "most attended tokens" in capsys.readouterr().out
    assert_png(out, min_width=400, min_height=300)
    ((encoder, x, is_causal),) = spy
    assert not is_causal
    from masklab.recipes.mlm import load_mlm_run as load_text_run

    model, tokenizer, _ = load_text_run(runs / "mlm")
    ids = torch.tensor([tokenizer.encode(TEXT).ids])  # the tokenizer's own [CLS] ... [SEP] framing
    n = ids.shape[1]
    check_saved_weights(weights_out, encoder, x, is_causal, n_tokens=n)
    with torch.inference_mode():
        torch.testing.assert_close(encoder(x), model(ids))  # same input as BertForMLM's forward
    with safe_open(str(weights_out), "pt") as f:
        tokens = json.loads(f.metadata()["tokens"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(tokens) == n


def test_mlm_max_tokens_truncates_and_says_so(runs, tmp_path, spy, capsys):
    long_text = " ".join([TEXT] * 60)  # longer than a file name may be: still read as the text itself
    assert main(["attention", str(runs / "mlm"), long_text, "-o", str(tmp_path / "t.png"), "--max-tokens", "4",
                 "--layer", "1", "--head", "1"]) == 0  # fmt: skip
    assert "INPUT is 362 tokens; truncated to the first 4 (--max-tokens)" in capsys.readouterr().out
    ((_, x, _),) = spy
    assert x.shape[1] == 4  # [CLS] two tokens [SEP]


def test_clm_weights_are_causal_and_match_float64(runs, tmp_path, spy):
    weights_out = tmp_path / "cw.safetensors"
    assert main(["attention", str(runs / "clm"), TEXT, "-o", str(tmp_path / "c.png"),
                 "--weights-out", str(weights_out)]) == 0  # fmt: skip
    ((encoder, x, is_causal),) = spy
    assert is_causal
    n = x.shape[1]
    saved = check_saved_weights(weights_out, encoder, x, is_causal, n_tokens=n)
    future = torch.ones(n, n, dtype=torch.bool).triu(1)
    assert all((w[..., future] == 0).all() for w in saved.values())  # lower-triangular
    from masklab.recipes.clm import load_lm_run

    model, tokenizer, _ = load_lm_run(runs / "clm")
    ids = torch.tensor([tokenizer.encode(TEXT, add_special_tokens=False).ids[:n]])  # cut to the context, as told
    with torch.inference_mode():
        torch.testing.assert_close(F.linear(encoder(x, blocked=M.causal()), model.tok_embed.weight), model(ids))


@pytest.mark.parametrize(
    ("run", "extra", "named"),
    [
        ("mlm", ["--layer", "2"], "--layer 2"),
        ("mlm", ["--head", "-1"], "--head -1"),
        ("mlm", ["--max-tokens", "2"], "--max-tokens"),
        ("mae", ["--layer", "9"], "--layer 9"),
        ("mae", ["--head", "0"], "--head needs --layer"),
        ("mae", ["--max-tokens", "8"], "--max-tokens"),
        ("table", [], "table"),
    ],
)
def test_bad_options_are_errors_naming_the_argument(runs, tmp_path, capsys, run, extra, named):
    source = "builtin:digits:0" if run == "mae" else TEXT
    assert main(["attention", str(runs / run), source, "-o", str(tmp_path / "x.png"), *extra]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_bad_inputs_are_errors(runs, tmp_path, capsys):
    base = ["-o", str(tmp_path / "x.png")]
    assert main(["attention", str(runs / "mae"), str(tmp_path / "missing.png"), *base]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert main(["attention", str(runs / "mae"), "builtin:digits:99999", *base]) == 2
    assert "index 99999" in capsys.readouterr().err
    assert main(["attention", str(runs / "mlm"), str(tmp_path / "notes.txt"), *base]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert main(["attention", str(tmp_path), TEXT, *base]) == 2  # not a run directory
    assert "config.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["attention", str(runs / "mlm"), TEXT])  # -o is required
