"""masklab's GPT against Hugging Face ``GPT2LMHeadModel``: same weights -> same logits and same greedy tokens."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from masklab.interop.hf.gpt2 import (  # noqa: E402
    config_from_hf,
    from_hf_model,
    hf_config_dict,
    load_hf_gpt2,
    state_dict_from_hf,
    to_hf_state_dict,
)
from masklab.models.clm import GPT  # noqa: E402
from masklab.models.clm.generation import generate  # noqa: E402

VOCAB = 61


def hf_gpt2(seed: int = 0, **overrides) -> torch.nn.Module:
    """A random GPT-2; a large init range so random logits are far from ties and greedy decoding varies."""
    torch.manual_seed(seed)
    kwargs = dict(vocab_size=VOCAB, n_positions=48, n_embd=32, n_layer=2, n_head=4, initializer_range=0.6,
                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
                  pad_token_id=0)  # fmt: skip
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**kwargs, **overrides})).eval()


def test_logits_match_hf():
    hf = hf_gpt2()
    ours = from_hf_model(hf)
    ids = torch.randint(0, VOCAB, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-5)


def test_logits_match_hf_with_activation_and_inner_size():
    hf = hf_gpt2(activation_function="gelu", n_inner=48, layer_norm_epsilon=1e-6)
    ours = from_hf_model(hf)
    assert ours.config.activation == "gelu" and ours.config.mlp_hidden == 48 and ours.config.norm_eps == 1e-6
    ids = torch.randint(0, VOCAB, (2, 17), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-5)


def test_greedy_generation_matches_hf():
    hf = hf_gpt2()
    ours = from_hf_model(hf)
    prompt = torch.randint(1, VOCAB, (1, 7), generator=torch.Generator().manual_seed(3))
    want = hf.generate(prompt, max_new_tokens=30, do_sample=False, eos_token_id=None, pad_token_id=0)[0, 7:]
    got = generate(ours, [prompt[0].tolist()], max_new_tokens=30)[0]
    assert got == want.tolist()
    assert len(set(got)) > 3  # the comparison is meaningful: not one repeated token


def test_left_padded_batch_generation_matches_hf():
    """HF builds position ids from the attention mask in generate(); ours from ``padding``. Same tokens."""
    hf = hf_gpt2(seed=4)
    ours = from_hf_model(hf)
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(1, VOCAB, (n,), generator=g).tolist() for n in (9, 4, 6)]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    want = hf.generate(ids, attention_mask=attention_mask, max_new_tokens=12, do_sample=False, eos_token_id=None,
                       pad_token_id=0)[:, width:]  # fmt: skip
    assert generate(ours, prompts, max_new_tokens=12) == want.tolist()


def test_load_hf_folder(tmp_path):
    hf = hf_gpt2(seed=6)
    hf.save_pretrained(tmp_path)  # config.json + model.safetensors, GPT-2's on-disk layout
    ours = load_hf_gpt2(tmp_path)
    ids = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-5)


def test_load_hf_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_hf_gpt2(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(FileNotFoundError, match="never loaded"):
        load_hf_gpt2(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ValueError, match="llama"):
        load_hf_gpt2(tmp_path)


def test_unsupported_variants_and_missing_tensors():
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        config_from_hf({"scale_attn_by_inverse_layer_idx": True})
    with pytest.raises(ValueError, match="activation_function"):
        config_from_hf({"activation_function": "swish"})
    hf = hf_gpt2()
    cfg = config_from_hf(hf.config.to_dict())
    state = dict(hf.state_dict())
    del state["transformer.h.1.mlp.c_fc.bias"]
    with pytest.raises(ValueError, match=r"h\.1\.mlp\.c_fc\.bias"):
        state_dict_from_hf(state, cfg)
    state = {**hf.state_dict(), "transformer.extra.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="does not map"):
        state_dict_from_hf(state, cfg)


def test_export_to_hf_round_trip():
    """The inverse mapping (used by bench/clm.py) puts masklab weights into an HF model exactly."""
    ours = GPT.from_preset("gpt-tiny", vocab_size=VOCAB, context=32).eval()
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**hf_config_dict(ours.config))).eval()
    hf.load_state_dict(to_hf_state_dict(ours))
    ids = torch.randint(0, VOCAB, (2, 32), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-5)
    assert config_from_hf(hf.config.to_dict()) == ours.config
