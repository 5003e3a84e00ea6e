"""A lowercasing char tokenizer builds its vocabulary with the normalizer it encodes with, so its own training
text has no [UNK] (Python's str.lower makes a word-final "Σ" a "ς"; the tokenizers Lowercase makes it "σ")."""

from masklab.tokenizers.text import TextTokenizer


def test_char_vocabulary_covers_its_lowercased_training_text():
    texts = ["ΟΔΟΣ ΚΑΛΟΣ", "İstanbul", "Straße ǅ"]
    tok = TextTokenizer.train(texts, "char", lowercase=True)
    unk = tok.role_id("unk")
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert unk not in ids, (text, [tok.id_to_token(i) for i in ids])
    assert tok.token_to_id("σ") is not None


def test_char_without_lowercase_keeps_every_character():
    tok = TextTokenizer.train(["ΟΔΟΣ ΚΑΛΟΣ ς"], "char", lowercase=False)
    assert tok.role_id("unk") not in tok.encode("ΟΔΟΣ ΚΑΛΟΣ ς").ids
    assert tok.token_to_id("Σ") is not None and tok.token_to_id("σ") is None


def test_a_run_trained_with_the_old_char_vocabulary_still_resumes_on_it(tmp_path, monkeypatch):
    # Before, the vocabulary came from str.lower ("ς" for a word-final "Σ"): such a run keeps its tokenizer
    # (RUN/prepared/tokenizer.json, RUN/tokenizer.json) on --resume, nothing is trained again.
    import json

    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    import masklab.tokenizers.text as text_module
    from masklab.cli import main

    def old_train_char(texts, lowercase):
        chars = sorted({ch for t in texts for ch in (t.lower() if lowercase else t)})
        vocab = {t: i for i, t in enumerate(text_module._BERT_SPECIALS + chars)}
        tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tok.add_special_tokens(text_module._BERT_SPECIALS)
        return text_module._with_template(tok, "[CLS]", "[SEP]")

    src = tmp_path / "greek.txt"
    src.write_text("\n".join(["ΟΔΟΣ ΚΑΛΟΣ ΜΙΚΡΟΣ"] * 40) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    args = ["pretrain", "mlm", "--data", str(src), "--out", str(run), "--tokenizer-kind", "char", "--preset",
            "bert-tiny", "--seq-len", "16", "--batch-size", "4", "--device", "cpu", "--holdout", "0.1"]  # fmt: skip
    with monkeypatch.context() as patch:
        patch.setattr(text_module, "_train_char", old_train_char)
        assert main([*args, "--steps", "2"]) == 0
    saved = (run / "tokenizer.json").read_text()
    assert "ς" in json.loads(saved)["model"]["vocab"]
    assert main([*args, "--steps", "4", "--resume"]) == 0
    assert (run / "tokenizer.json").read_text() == saved
