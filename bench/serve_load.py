"""Bounded load test of ``masklab serve`` on 127.0.0.1: N requests from C concurrent clients to the fill and
reconstruct endpoints; p50/p95 latency per endpoint, and every response checked against the answer the same
server gave to the same request when it came alone (so a mix-up between concurrent requests would show).

    PYTHONPATH=src python bench/serve_load.py                      # tiny runs trained here (2 steps each)
    PYTHONPATH=src python bench/serve_load.py --mae runs/demo-mae --mlm runs/demo-mlm

The server is a real ``masklab serve`` process (uvicorn) bound to 127.0.0.1 only. Latencies include queueing
behind the per-model lock: with C clients on one model a request waits for the ones ahead of it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

HOST = "127.0.0.1"  # never another interface: this is a load test of the local server
SENTENCES = ["the [MASK] sat on the mat .", "the dog ran to the [MASK] .", "the cat [MASK] on the mat and the dog .",
             "[MASK] cat sat on the [MASK] ."]  # fmt: skip


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return "unknown CPU"


def tiny_runs(root: Path) -> tuple[Path, Path]:
    """A 2-step mae and mlm run (the shapes matter here, not the quality)."""
    from masklab.cli import main

    (root / "corpus.txt").write_text("the cat sat on the mat and the dog ran to the park .\n" * 60)
    cpu = ["--device", "cpu", "--steps", "2", "--log-every", "1"]
    assert main(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--image-size", "16",
                 "--batch-size", "16", "--out", str(root / "mae"), *cpu]) == 0  # fmt: skip
    assert main(["pretrain", "mlm", "--data", str(root / "corpus.txt"), "--preset", "bert-tiny", "--vocab-size",
                 "60", "--seq-len", "16", "--batch-size", "4", "--out", str(root / "mlm"), *cpu]) == 0  # fmt: skip
    return root / "mae", root / "mlm"


def start_server(mae: Path, mlm: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "masklab", "serve", str(mae), str(mlm), "--host", HOST, "--port", str(port)]
    server = subprocess.Popen(cmd, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"masklab serve exited: {server.stdout.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("masklab serve did not come up in 180 s")


def requests_plan(count: int, mae_name: str, mlm_name: str, patches: int) -> list[tuple[str, str, dict]]:
    """``count`` requests alternating fill / reconstruct over a few distinct inputs each."""
    rng = np.random.default_rng(0)
    masks = []
    for _ in range(4):
        hidden = rng.permutation(patches) < patches // 2
        masks.append("".join("1" if h else "0" for h in hidden))
    plan = []
    for i in range(count):
        if i % 2 == 0:
            plan.append(("fill", f"/api/runs/{mlm_name}/fill", {"json": {"text": SENTENCES[(i // 2) % 4]}}))
        else:
            j = (i // 2) % 4
            form = {"example": str(j), "masking": "paint", "masked": masks[j]}
            plan.append(("reconstruct", f"/api/runs/{mae_name}/reconstruct", {"data": form}))
    return plan


def send(client: httpx.Client, url: str, request: tuple[str, str, dict]) -> tuple[str, float, int, str]:
    kind, path, options = request
    start = time.perf_counter()
    response = client.post(url + path, timeout=300, **options)
    return kind, time.perf_counter() - start, response.status_code, response.text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mae", default=None, help="MAE run (default: a tiny one trained here)")
    parser.add_argument("--mlm", default=None, help="MLM run (default: a tiny one trained here)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="serve-load-")
    if args.mae is None or args.mlm is None:
        mae, mlm = tiny_runs(Path(tmp.name))
        mae, mlm = Path(args.mae or mae), Path(args.mlm or mlm)
    else:
        mae, mlm = Path(args.mae), Path(args.mlm)
    server, url = start_server(mae, mlm)
    try:
        runs = {r["kind"]: r for r in httpx.get(f"{url}/api/runs").json()}
        grid = runs["mae"]["details"]["grid"]
        plan = requests_plan(args.requests, runs["mae"]["name"], runs["mlm"]["name"], grid[0] * grid[1])
        with httpx.Client() as client:  # the answers to each distinct request, one at a time
            expected = {json.dumps(r[2], sort_keys=True): send(client, url, r)[3] for r in plan[:8]}
        clients = [httpx.Client() for _ in range(args.clients)]
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda ir: send(clients[ir[0] % args.clients], url, ir[1]), enumerate(plan)))
        wall = time.perf_counter() - start
        for c in clients:
            c.close()
        healthy = httpx.get(f"{url}/health").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    wrong = sum(status != 200 or text != expected[json.dumps(r[2], sort_keys=True)]
                for r, (_, _, status, text) in zip(plan, results, strict=True))  # fmt: skip
    print(f"masklab serve load test on {HOST}: {args.requests} requests from {args.clients} concurrent clients "
          f"({cpu_name()}, {os.cpu_count()} CPUs; latencies measured under load from other processes)")  # fmt: skip
    print(f"runs: mae {mae} (grid {grid[0]}x{grid[1]}), mlm {mlm}")
    print(f"{'endpoint':<12} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for kind in ("fill", "reconstruct"):
        times = np.array([t for k, t, _, _ in results if k == kind]) * 1000
        print(f"{kind:<12} {len(times):>8} {np.percentile(times, 50):>8.1f} {np.percentile(times, 95):>8.1f} "
              f"{times.max():>8.1f}")  # fmt: skip
    print(f"throughput {len(results) / wall:.1f} requests/s over {wall:.2f} s")
    print(f"correct responses: {len(results) - wrong}/{len(results)} (status 200 and identical to the request's "
          f"answer when sent alone); server healthy afterwards: {healthy}")  # fmt: skip
    tmp.cleanup()
    return 0 if wrong == 0 and healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
