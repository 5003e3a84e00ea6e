"""``masklab serve``: a local web page to try trained runs (MAE and its segmentation head, MLM, causal LM, table,
series) interactively.

:func:`masklab.serve.runs.load_runs` loads the runs once; :func:`masklab.serve.app.create_app` builds the
FastAPI app (JSON API + the static page in ``static/``). Needs the ``serve`` extra (fastapi, uvicorn,
python-multipart). Nothing in masklab imports this package except the CLI.
"""
