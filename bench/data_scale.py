"""Data bigger than memory: peak RSS and time to the first step at two dataset sizes 4x apart, prepare
throughput, streamed image loading with and without workers, and a 2 GB corpus. One command per part:

    python bench/data_scale.py text   --text-mb 100 400      # prepare + pretrain mlm/clm at both sizes,
                                                             # prepare MB/s with 1 and 2 workers
    python bench/data_scale.py images --images 8000 32000    # pretrain mae on PNG folders of both sizes
    python bench/data_scale.py loader                        # samples/s, --workers 0 vs 2, large JPEGs -> 32 px
    python bench/data_scale.py big    --big-mb 2000          # prepare + 100 steps of pretrain mlm on 2 GB
    python bench/data_scale.py text images loader big ...    # several parts in one go
    python bench/data_scale.py text images loader big --text-mb 2 8 --images 200 800 --big-mb 20 --big-steps 5
                                                             # a quick check of the whole bench

Every masklab command runs as a child process. Peak RSS is ``ru_maxrss`` from ``wait4`` (the largest single
process of the child's tree, as ``/usr/bin/time -v`` reports it) and, with DataLoader or prepare workers, the
largest sum of the RSS of the whole process tree polled every 0.2 s (an upper bound: pages shared after fork
count once per process). Time to first step: from the child's start to the first line of ``metrics.jsonl``
(``--log-every 1``). Synthetic data (Zipf pseudo-word text, smooth-noise PNGs / JPEGs) is generated once and
reused from ``--workdir``, as are prepared corpora (a cached prepare is not timed again; ``--fresh`` redoes it).
Timings on a shared machine are "under load"; RSS is not affected by load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")


# -------------------------------------------------------------------------------------------- data (cached)
def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown"


def text_file(work: Path, mb: float, seed: int = 0) -> Path:
    """About ``mb`` MB of text (8 distinct 4 MB blocks of Zipf pseudo-words, cycled), written once."""
    path = work / f"text-{mb:g}mb-{seed}.txt"
    if path.is_file() and path.stat().st_size == int(mb * 1e6):
        return path
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, size=rng.integers(2, 10))) for _ in range(20_000)], dtype=object)
    blocks = []
    for _ in range(8):
        words = vocab[np.minimum(rng.zipf(1.2, size=700_000), len(vocab)) - 1]
        lines = [" ".join(words[i : i + 60]) for i in range(0, len(words), 60)]
        blocks.append(("\n".join(lines) + "\n").encode())
    target, written = int(mb * 1e6), 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        while written < target:
            block = blocks[(written // len(blocks[0])) % len(blocks)][: target - written]
            f.write(block)
            written += len(block)
    tmp.rename(path)
    return path


def _write_image(job: tuple[str, int, int, int, str]) -> None:
    from PIL import Image

    path, i, width, height, fmt = job
    rng = np.random.default_rng([7, i])
    low = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((width, height), Image.Resampling.BILINEAR)
    img.save(path, **({"quality": 90} if fmt == "jpg" else {}))


def image_folder(work: Path, count: int, width: int = 96, height: int = 96, fmt: str = "png") -> Path:
    """``count`` RGB images of smooth noise (they compress like photos more than like noise), written once."""
    folder = work / f"images-{count}-{width}x{height}-{fmt}"
    done = folder / ".complete"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / f"{i:06d}.{fmt}"), i, width, height, fmt) for i in range(count)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(_write_image, jobs, chunksize=64))
    done.write_text(str(count))
    return folder


def tokenizer_file(work: Path) -> Path:
    """One wordpiece tokenizer (8,000 pieces, trained on 10 MB) shared by every prepare, so sizes compare."""
    folder = work / "tokenizer"
    if not (folder / "tokenizer.json").is_file():
        sys.path.insert(0, str(ROOT / "src"))
        from masklab.data.shards.prepare import _sample, iter_documents
        from masklab.tokenizers.text import TextTokenizer

        docs = _sample(iter_documents(text_file(work, 10, seed=9)), int(10e6))
        TextTokenizer.train(docs, "wordpiece", vocab_size=8000, lowercase=True).save(folder)
    return folder / "tokenizer.json"


# ----------------------------------------------------------------------------------------------- children
def tree_rss_bytes(root: int) -> int:
    """Sum of the resident memory of ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(pid, []))
    return total


def run_child(cmd: list[str], log: Path, metrics: Path | None = None) -> dict:
    """Run ``cmd`` (output to ``log``): wall s, first-step s, peak RSS MB (largest process; whole tree)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        first, tree_peak = None, 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            tree_peak = max(tree_peak, tree_rss_bytes(proc.pid))
            if first is None and metrics is not None and metrics.is_file() and metrics.stat().st_size > 0:
                first = time.perf_counter() - start
            time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = log.read_text(errors="replace")
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{output[-3000:]}")
    return {"wall_s": time.perf_counter() - start, "first_step_s": first, "output": output,
            "peak_rss_mb": usage.ru_maxrss / 1024, "tree_rss_mb": tree_peak / 2**20,
            "cpu_s": usage.ru_utime + usage.ru_stime}  # fmt: skip


def masklab(*args: str) -> list[str]:
    return [sys.executable, "-m", "masklab", *args]


def prepare(work: Path, corpus: Path, out: Path, workers: int, fresh: bool) -> dict | None:
    """Prepare ``corpus`` into ``out`` (None when a finished one is reused)."""
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    if (out / "index.json").is_file():
        return None
    cmd = masklab("prepare", "--data", str(corpus), "--out", str(out), "--workers", str(workers),
                  "--tokenizer", str(tokenizer_file(work)))  # fmt: skip
    res = run_child(cmd, work / "prepare.log")
    inner = re.findall(r"\(([\d.]+) s\)\s*$", res["output"])  # prepare's own time, without interpreter start
    res["prepare_s"] = float(inner[-1]) if inner else res["wall_s"]
    mb = corpus.stat().st_size / 1e6
    res["rate"] = f"{mb / res['prepare_s']:.2f} MB/s ({mb / res['cpu_s']:.2f} MB per CPU-s)"
    return res


def pretrain(work: Path, kind: str, data: Path, steps: int, *extra: str) -> dict:
    out = work / f"run-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    preset = {"mlm": ["--preset", "bert-tiny", "--seq-len", "128", "--holdout", "0.001"],
              "clm": ["--preset", "gpt-tiny", "--eval-batches", "20"],
              "mae": ["--preset", "mae-tiny", "--image-size", "32"]}[kind]  # fmt: skip
    cmd = masklab("pretrain", kind, "--data", str(data), "--out", str(out), "--steps", str(steps),
                  "--log-every", "1", "--device", "cpu", *preset, *extra)  # fmt: skip
    if kind == "mae" and "--stream-workers-0" in extra:  # the streamed loader in the training process
        cmd = [sys.executable, __file__, "--stream-child", *cmd[3:]]
        cmd.remove("--stream-workers-0")
    res = run_child(cmd, work / f"{kind}.log", out / "metrics.jsonl")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    res["records"] = records
    shutil.rmtree(out)
    return res


def samples_per_s(records: list[dict], batch: int, skip: int = 5) -> float:
    """Steady-state rate from the metrics records: steps after the first ``skip`` (workers starting, warm-up)."""
    a, b = records[min(skip, len(records) - 2)], records[-1]
    return (b["step"] - a["step"]) * batch / (b["elapsed_s"] - a["elapsed_s"])


# -------------------------------------------------------------------------------------------------- parts
class Table:
    """Result rows, each printed as a markdown table line as it arrives (a long run is useful when stopped)."""

    HEAD = ("what", "peak RSS MB (largest process)", "peak RSS MB (process tree)", "first step s", "total s", "rate")

    def __init__(self) -> None:
        self.rows: list[tuple[str, ...]] = []

    def add(self, what: str, res: dict | None, rate: str = "-") -> None:
        if res is None:
            row: tuple[str, ...] = (what, "cached", "-", "-", "-", "-")
        else:
            first = f"{res['first_step_s']:.1f}" if res.get("first_step_s") else "-"
            row = (what, f"{res['peak_rss_mb']:.0f}", f"{res['tree_rss_mb']:.0f}", first, f"{res['wall_s']:.1f}", rate)
        self.rows.append(row)
        print("| " + " | ".join(row) + " |", flush=True)

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.HEAD) + " |", "|" + "|".join("---" for _ in self.HEAD) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in self.rows])


def part_text(args, work: Path, table: Table) -> None:
    for mb in args.text_mb:
        corpus = text_file(work, mb)
        prepared = work / f"prepared-{mb:g}mb"
        res = prepare(work, corpus, prepared, 2, args.fresh)
        table.add(f"prepare {mb:g} MB, 2 workers", res, res["rate"] if res else "-")
        for kind in ("mlm", "clm"):
            res = pretrain(work, kind, prepared, args.steps)
            table.add(f"pretrain {kind} on {mb:g} MB ({args.steps} steps)", res)
    corpus = text_file(work, args.throughput_mb, seed=1)
    for workers in (1, 2):
        res = prepare(work, corpus, work / f"throughput-{workers}", workers, fresh=True)
        assert res is not None
        table.add(f"prepare {args.throughput_mb:g} MB, {workers} worker(s)", res, res["rate"])
        shutil.rmtree(work / f"throughput-{workers}")


def part_images(args, work: Path, table: Table) -> None:
    for count in args.images:
        folder = image_folder(work, count)
        for workers in args.image_workers:
            res = pretrain(work, "mae", folder, args.steps, "--workers", str(workers))
            how = "in memory" if workers == 0 else f"streamed, {workers} workers"
            table.add(f"pretrain mae on {count:,} PNG 96x96 ({args.steps} steps, {how})", res)


def part_loader(args, work: Path, table: Table) -> None:
    folder = image_folder(work, args.loader_images, args.loader_side, args.loader_side * 3 // 4, "jpg")
    what = f"{args.loader_images} JPEG {args.loader_side}x{args.loader_side * 3 // 4} -> 32 px, mae-tiny"
    batch, rates = 32, {}
    runs = [("0, in memory (decoded before step 1)", ["--workers", "0"]),
            ("0, streamed (decoded in the training process)", ["--workers", "0", "--stream-workers-0"]),
            (f"{args.loader_workers}, streamed", ["--workers", str(args.loader_workers)])]  # fmt: skip
    for label, extra in runs:
        res = pretrain(work, "mae", folder, args.loader_steps, "--batch-size", str(batch), *extra)
        rates[label] = samples_per_s(res["records"], batch)
        table.add(f"{what}, workers {label} ({args.loader_steps} steps)", res, f"{rates[label]:.0f} samples/s")
    streamed0, streamed_n = rates[runs[1][0]], rates[runs[2][0]]
    print(f"streamed loading: {args.loader_workers} workers / 0 workers = {streamed_n / streamed0:.2f}x", flush=True)


def part_big(args, work: Path, table: Table) -> None:
    corpus = text_file(work, args.big_mb)
    prepared = work / f"prepared-{args.big_mb:g}mb"
    res = prepare(work, corpus, prepared, 2, args.fresh)
    table.add(f"prepare {args.big_mb:g} MB, 2 workers", res, res["rate"] if res else "-")
    res = pretrain(work, "mlm", prepared, args.big_steps)
    table.add(f"pretrain mlm on {args.big_mb:g} MB ({args.big_steps} steps)", res)


def stream_child(argv: list[str]) -> None:
    """``pretrain mae`` with the folder streamed although ``--workers 0`` (decoding in the training process)."""
    sys.path.insert(0, str(ROOT / "src"))
    import masklab.data.images as images
    from masklab.cli import main

    load = images.load_images
    images.load_images = lambda *a, **k: load(*a, **{**k, "stream": k.get("image_size") is not None})
    sys.exit(main(argv))


def main() -> None:
    if sys.argv[1:2] == ["--stream-child"]:
        return stream_child(sys.argv[2:])
    parts = {"text": part_text, "images": part_images, "loader": part_loader, "big": part_big}
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="+", choices=sorted(parts))
    parser.add_argument("--workdir", default="/tmp/masklab-data-scale", help="data and prepared corpora, kept")
    parser.add_argument("--fresh", action="store_true", help="prepare again even where a prepared corpus exists")
    parser.add_argument("--steps", type=int, default=3, help="training steps of the text and images parts")
    parser.add_argument("--text-mb", type=float, nargs="+", default=[100, 400])
    parser.add_argument("--throughput-mb", type=float, default=200, help="corpus of the 1 vs 2 prepare workers runs")
    parser.add_argument("--images", type=int, nargs="+", default=[8000, 32000], help="PNG folder sizes (files)")
    parser.add_argument("--image-workers", type=int, nargs="+", default=[2], help="--workers of the images part")
    parser.add_argument("--loader-images", type=int, default=400)
    parser.add_argument("--loader-side", type=int, default=1024, help="JPEG width (height = 3/4 of it)")
    parser.add_argument("--loader-steps", type=int, default=40)
    parser.add_argument("--loader-workers", type=int, default=2)
    parser.add_argument("--big-mb", type=float, default=2000)
    parser.add_argument("--big-steps", type=int, default=100)
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores; {os.sysconf('SC_PHYS_PAGES') * PAGE / 2**30:.0f} GiB RAM; "
          f"free disk under {work}: {shutil.disk_usage(work).free / 1e9:.0f} GB", flush=True)  # fmt: skip
    table = Table()
    for name in dict.fromkeys(args.parts):
        parts[name](args, work, table)
    print("\n" + table.markdown())
    (work / "results.md").write_text(f"CPU: {cpu_model()}\n\n{table.markdown()}\n")


if __name__ == "__main__":
    main()
