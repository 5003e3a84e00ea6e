"""A prepared folder knows what it was made from: a changed input, other settings, a broken line or a replaced
tokenizer are refused naming the file (exit 2); an unfinished prepare never blocks a corrected one."""

import json
import os

import pytest

from masklab.cli import main
from tests.data.conftest import write_corpus

SMALL = ["--vocab-size", "60", "--workers", "1", "--shard-mb", "0.002"]


def _jsonl(path, lines: int, broken_at: int | None = None):
    rows = [json.dumps({"text": f"the team and the goal of the season number {i}."}) for i in range(lines)]
    if broken_at is not None:
        rows.insert(broken_at - 1, '{"text": broken')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("masklab: error: "), err
    return err


def _prepare(data, out, capsys) -> int:
    code = main(["prepare", "--data", str(data), "--out", str(out), *SMALL])
    if code == 0:
        capsys.readouterr()
    return code


def _files(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def test_a_broken_jsonl_line_is_named_with_its_number(tmp_path, capsys):
    bad = _jsonl(tmp_path / "bad.jsonl", 60, broken_at=51)
    assert main(["prepare", "--data", str(bad), "--out", str(tmp_path / "out"), *SMALL]) == 2
    err = _error(capsys)
    assert f"{bad}:51: not valid JSON (Expecting value" in err


def test_continuing_a_killed_prepare_after_the_input_changed_is_refused(tmp_path, capsys):
    # The old shards were kept and mixed with the new text's: "257 documents" from a 250-line file, exit 0.
    data, out = write_corpus(tmp_path / "c.txt", docs=300), tmp_path / "out"
    assert _prepare(data, out, capsys) == 0
    (out / "index.json").unlink()  # a crash before the end
    (out / "shard-00002.json").unlink()
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[50:]))
    kept = _files(out)
    assert _prepare(data, out, capsys) == 2
    err = _error(capsys)
    assert f"--data {data.resolve()} changed (" in err and "bytes) since" in err and f"delete {out}" in err
    assert _files(out) == kept  # nothing deleted, nothing written


def test_a_finished_folder_is_not_reused_after_the_input_changed(tmp_path, capsys):
    # Appending 100 documents and rerunning printed the old counts, exit 0: the new documents left out.
    data, out = write_corpus(tmp_path / "c.txt", docs=300), tmp_path / "out"
    assert _prepare(data, out, capsys) == 0
    # Same size, modified since (mtime set explicitly: two writes within a clock tick may share one).
    text = data.read_text()
    data.write_text(text.replace("team", "tEAm", 1))
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert _prepare(data, out, capsys) == 2
    assert f"--data {data.resolve()} changed (same size, modified since) since" in _error(capsys)
    data.write_text(text + "the new goal of the season.\n" * 100)
    assert _prepare(data, out, capsys) == 2
    assert f"--data {data.resolve()} changed ({len(text):,} -> " in _error(capsys)


def test_a_file_added_to_a_data_folder_is_named(tmp_path, capsys):
    folder, out = tmp_path / "docs", tmp_path / "out"
    folder.mkdir()
    write_corpus(folder / "a.txt", docs=100)
    assert _prepare(folder, out, capsys) == 0
    write_corpus(folder / "b.txt", docs=10, seed=1)
    assert _prepare(folder, out, capsys) == 2
    assert f"{(folder / 'b.txt').resolve()} is new since" in _error(capsys)
    (folder / "b.txt").unlink()
    assert _prepare(folder, out, capsys) == 0  # back as it was: reused


def test_an_input_changed_while_it_is_read_is_refused(tmp_path):
    from masklab.data.shards.prepare import prepare_corpus

    data = write_corpus(tmp_path / "c.txt", docs=300)

    def append(k: int) -> None:
        if k == 0:
            with open(data, "a") as f:
                f.write("a late document.\n")

    with pytest.raises(ValueError, match=r"changed while .* was being prepared \(.*changed \("):
        prepare_corpus(data, tmp_path / "out", vocab_size=60, workers=1, shard_mb=0.002, progress=False,
                       on_shard=append)  # fmt: skip
    assert not (tmp_path / "out" / "index.json").exists()


def test_a_finished_folder_whose_input_was_removed_is_used_with_a_warning(tmp_path, capsys):
    data, out = write_corpus(tmp_path / "c.txt", docs=100), tmp_path / "out"
    assert _prepare(data, out, capsys) == 0
    data.unlink()
    assert main(["prepare", "--data", str(data), "--out", str(out), *SMALL]) == 0
    err = capsys.readouterr().err
    assert f"masklab: warning: --data {data} no longer exists; using the tokens {out} holds" in err


def test_pretrain_resume_is_refused_after_its_input_changed(tmp_path, capsys):
    data, run = write_corpus(tmp_path / "c.txt", docs=200), tmp_path / "run"
    argv = ["pretrain", "mlm", "--data", str(data), "--preset", "bert-tiny", "--vocab-size", "60", "--seq-len",
            "16", "--steps", "2", "--workers", "1", "--device", "cpu", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    checkpoint = (run / "checkpoint.safetensors").read_bytes()
    with open(data, "a") as f:
        f.write("the new goal of the season.\n" * 20)
    assert main([*argv, "--steps", "4", "--resume"]) == 2
    assert f"--data {data.resolve()} changed (" in _error(capsys)
    assert (run / "checkpoint.safetensors").read_bytes() == checkpoint


def test_a_failed_pretrain_does_not_block_a_corrected_retry(tmp_path, capsys):
    # The retry said "RUN/prepared was prepared with other settings ...; use another --out" though the failed
    # call had left only prepared/prepare.json (no shard, no run).
    bad, good, run = _jsonl(tmp_path / "bad.jsonl", 60, 51), _jsonl(tmp_path / "good.jsonl", 300), tmp_path / "run"
    argv = ["pretrain", "mlm", "--preset", "bert-tiny", "--vocab-size", "60", "--seq-len", "16", "--steps", "2",
            "--workers", "1", "--device", "cpu", "--out", str(run)]  # fmt: skip
    assert main([*argv, "--data", str(bad)]) == 2
    assert f"{bad}:51: not valid JSON" in _error(capsys)
    assert main([*argv, "--data", str(good)]) == 0
    err = capsys.readouterr().err
    assert f"masklab: warning: starting {run / 'prepared'} over: it holds no finished shard" in err
    assert json.loads((run / "prepared" / "prepare.json").read_text())["data"] == str(good.resolve())


def test_an_unfinished_prepare_with_finished_shards_is_kept_and_refused(tmp_path, capsys):
    data, out = write_corpus(tmp_path / "c.txt", docs=300), tmp_path / "out"
    assert _prepare(data, out, capsys) == 0
    (out / "index.json").unlink()
    kept = _files(out)
    other = write_corpus(tmp_path / "other.txt", docs=50, seed=3)
    assert _prepare(other, out, capsys) == 2
    assert f"{out} was prepared with other settings (saved, given): {{'data': (" in _error(capsys)
    assert _files(out) == kept  # finished shards are never deleted


def test_a_changed_input_restarts_a_prepare_that_finished_no_shard(tmp_path, capsys):
    from masklab.data.lm import token_stream
    from masklab.data.shards import PreparedCorpus
    from masklab.data.text import read_corpus
    from masklab.tokenizers.text import TextTokenizer

    data, out = write_corpus(tmp_path / "c.txt", docs=300), tmp_path / "out"
    assert _prepare(data, out, capsys) == 0
    for path in [out / "index.json", *out.glob("shard-*")]:  # killed after training its tokenizer
        path.unlink()
    old = TextTokenizer.train(["zebra quartz"], "char")  # stands for one trained on the old text
    old.save(out)
    write_corpus(data, docs=200, seed=5)
    assert main(["prepare", "--data", str(data), "--out", str(out), *SMALL]) == 0
    assert "it holds no finished shard" in capsys.readouterr().err
    tokenizer = TextTokenizer.load(out / "tokenizer.json")
    assert tokenizer.fingerprint != old.fingerprint  # trained again, on the new text
    corpus = PreparedCorpus(out)
    want = token_stream(tokenizer, read_corpus(data).texts, separator=tokenizer.sep_id)
    assert corpus.index["documents"] == 200 and (corpus.read(0, len(corpus))[0] == want.numpy()).all()


def test_pretraining_on_a_folder_whose_tokenizer_was_replaced_is_refused(tmp_path, capsys):
    # Another tool overwrote tokenizer.json: a 25-token model trained on ids up to 200 (IndexError traceback).
    from masklab.tokenizers.text import TextTokenizer

    data, prepared, run = write_corpus(tmp_path / "c.txt", docs=200), tmp_path / "prepared", tmp_path / "run"
    assert _prepare(data, prepared, capsys) == 0
    TextTokenizer.train(["abc def"], "char").save(prepared)
    argv = ["pretrain", "mlm", "--data", str(prepared), "--preset", "bert-tiny", "--seq-len", "16", "--steps",
            "2", "--device", "cpu", "--out", str(run)]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"masklab: error: {prepared / 'tokenizer.json'} is not the tokenizer {prepared / 'index.json'} was prepared "
        f"with; restore it, or prepare {prepared} again (its sha256 differs)"
    )
    assert "step " not in captured.out and not (run / "checkpoint.safetensors").exists()


def test_a_tokenizer_with_another_vocabulary_is_refused_by_the_reader(tmp_path, capsys):
    from masklab.data.shards import PreparedCorpus, ShardError
    from masklab.tokenizers.text import TextTokenizer

    data, prepared = write_corpus(tmp_path / "c.txt", docs=100), tmp_path / "prepared"
    assert _prepare(data, prepared, capsys) == 0
    index = json.loads((prepared / "index.json").read_text())
    del index["tokenizer_file_sha256"]  # as an index written before the file's sha256 was recorded
    (prepared / "index.json").write_text(json.dumps(index))
    PreparedCorpus(prepared)
    TextTokenizer.train(["abc def"], "char").save(prepared)
    with pytest.raises(ShardError, match=r"tokenizer\.json is not the tokenizer .* vocabulary's sha256 differs"):
        PreparedCorpus(prepared)
    (prepared / "tokenizer.json").unlink()
    with pytest.raises(ShardError, match=r"tokenizer\.json is missing"):
        PreparedCorpus(prepared)


def test_resuming_a_run_whose_cached_tokenizer_was_replaced_is_refused(tmp_path, capsys):
    from masklab.tokenizers.text import TextTokenizer

    data, run = write_corpus(tmp_path / "c.txt", docs=100), tmp_path / "run"
    argv = ["pretrain", "clm", "--data", str(data), "--preset", "gpt-char", "--context", "16", "--depth", "1",
            "--dim", "16", "--heads", "2", "--steps", "2", "--device", "cpu", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    TextTokenizer.train(["abc def"], "char").save(run / "prepared")
    assert main([*argv, "--steps", "4", "--resume"]) == 2
    assert f"{run / 'prepared' / 'tokenizer.json'} is not the tokenizer" in _error(capsys)
