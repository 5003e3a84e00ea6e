"""Requests queued on one run wait in the event loop, not in worker threads: other runs keep answering, and a
run's queue is capped (503 with ``Retry-After`` past :data:`masklab.serve.gate.MAX_WAITING`)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.serve.browser import serving


def test_a_busy_run_does_not_stop_the_others(runs, monkeypatch):
    httpx = pytest.importorskip("httpx")
    from masklab.serve import text

    release = threading.Event()
    original = text.fill

    def slow_fill(*args, **kwargs):
        release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(text, "fill", slow_fill)
    with serving(runs) as url, ThreadPoolExecutor(50) as pool:

        def fill(_):
            return httpx.post(f"{url}/api/runs/mlm/fill", json={"text": "the [MASK] sat"}, timeout=90)

        queued = [pool.submit(fill, i) for i in range(45)]
        try:
            # 45 requests on mlm: another run still answers at once
            other = httpx.post(f"{url}/api/runs/mae/reconstruct", data={"example": 0, "masking": "random"},
                               timeout=20)  # fmt: skip
            assert other.status_code == 200, other.text
            assert httpx.get(f"{url}/api/runs", timeout=20).status_code == 200
        finally:
            release.set()
        answers = [f.result() for f in queued]
    from masklab.serve import gate

    busy = [a for a in answers if a.status_code == 503]
    assert len(busy) == 45 - 1 - gate.MAX_WAITING
    assert all(a.status_code == 200 for a in answers if a.status_code != 503)
    assert busy[0].json()["field"] == "run" and "busy" in busy[0].json()["error"]
    assert int(busy[0].headers["retry-after"]) >= 1


def test_a_queued_request_whose_client_left_gives_its_turn_on(runs, monkeypatch):
    """A stream that is stopped frees the run for the next request (and the gate ends free)."""
    httpx = pytest.importorskip("httpx")
    clm = next(r for r in runs if r.kind == "clm")
    with serving(runs) as url:
        with httpx.stream("POST", f"{url}/api/runs/clm/generate", json={"prompt": "the", "max_tokens": 1000},
                          timeout=30) as stream:  # fmt: skip
            next(stream.iter_lines())
        answer = httpx.post(f"{url}/api/runs/clm/generate", json={"prompt": "the", "max_tokens": 2}, timeout=60)
        assert "event: done" in answer.text
    assert not clm.lock.locked()
