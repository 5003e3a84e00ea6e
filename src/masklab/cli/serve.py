"""``masklab serve RUN [RUN ...]``: a local web page to try trained runs (see :mod:`masklab.serve`)."""

from __future__ import annotations

import argparse
import math
import sys

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.description = ("Load every RUN once and serve a page with a panel per run, plus its JSON API (schema at "
                          "/openapi.json). Binds 127.0.0.1 unless --host says otherwise. Needs: pip install "
                          "'masklab[serve]'.")  # fmt: skip
    parser.add_argument("runs", metavar="RUN", nargs="+",
                        help="run directories: mae (plus a segmentation panel when RUN/segment holds a head from "
                             "masklab segment train), mlm, clm, table, series (masklab pretrain series), or a "
                             "segmentation head folder")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: %(default)s)")
    parser.add_argument("--max-upload-mb", type=float, default=8.0, help="largest request body (default: 8 MB)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from masklab.serve.app import create_app
    except ModuleNotFoundError as err:
        raise ValueError(f"masklab serve needs {err.name}: pip install 'masklab[serve]'") from None
    from masklab.serve.runs import load_runs

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    if not math.isfinite(args.max_upload_mb) or args.max_upload_mb <= 0:
        raise ValueError(f"--max-upload-mb must be a finite number of megabytes > 0, got {args.max_upload_mb}")
    _check_listen(args.host, args.port)  # before loading every run: a port in use is known at once
    runs = load_runs(args.runs, args.device)  # RunLoadError (a ValueError): one line per run that failed
    for run in runs:
        print(f"masklab serve: {run.name} ({run.kind}) from {run.path}")
        for note in run.notes:
            print(f"  note: {note}")
    if args.host not in LOCAL_HOSTS:
        print(f"masklab serve: WARNING: binding {args.host}: anyone who can reach this machine on port {args.port} "
              "can use these models (there is no login); use --host 127.0.0.1 to keep it local",
              file=sys.stderr)  # fmt: skip
    app = create_app(runs, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), host=args.host, port=args.port)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"masklab serve: open http://{shown}:{args.port}/ (API schema at /openapi.json; Ctrl+C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _check_listen(host: str, port: int) -> None:
    """``ValueError`` naming ``--host`` / ``--port`` when this process cannot listen there (in use, or an
    address this machine does not have)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise ValueError(f"--host {host}: cannot resolve it ({err.strerror or err})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as err:
            raise ValueError(f"--host {host} --port {port}: cannot listen there ({err.strerror})") from None
