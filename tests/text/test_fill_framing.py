"""fill frames its row as training does ([CLS] text [SEP], explicitly), so a --tokenizer file whose
tokenizer.json has no post-processor still gives the framed row the model was trained on."""

import json

import torch

from masklab.core.contract import preset_config
from masklab.models.mlm import PRESETS, BertConfig, BertForMLM, MLMConfig
from masklab.recipes.mlm_tasks import fill_mask
from masklab.tokenizers.text import TextTokenizer


def _rows_seen(tok, text):
    torch.manual_seed(0)
    bert = preset_config(BertConfig, PRESETS, "bert-tiny", vocab_size=tok.vocab_size, pad_id=tok.pad_id)
    model = BertForMLM(MLMConfig(bert=bert, mask_id=tok.mask_id, special_ids=tok.special_ids)).eval()
    seen = []
    model.register_forward_pre_hook(lambda _module, args: seen.append(args[0].tolist()))
    fill_mask(model, tok, text, top_k=2)
    return seen


def test_fill_frames_the_row_without_a_post_processor(tmp_path):
    trained = TextTokenizer.train(["the cat sat on the mat"] * 50, "bpe", vocab_size=300, min_frequency=1)
    state = json.loads(trained.to_json())
    state["post_processor"] = None
    (tmp_path / "nopp.json").write_text(json.dumps(state))
    tok = TextTokenizer.load(tmp_path / "nopp.json")
    text = "the cat <mask> on the mat"
    want = [tok.cls_id, *tok.encode(text, add_special_tokens=False).ids, tok.sep_id]
    assert _rows_seen(tok, text) == [[want]]
    assert _rows_seen(trained, text) == [[want]]  # the same row as with the post-processor
