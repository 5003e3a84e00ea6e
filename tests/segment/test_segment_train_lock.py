"""``segment train`` holds the head folder's lock: a second writer is refused at once (two trainings into one
folder left one's config beside the other's weights, loaded without error)."""

import json
import os
import socket

from masklab.cli import main
from masklab.train.run import LOCK_NAME


def test_a_head_folder_being_written_is_refused(tmp_path, capsys):
    run, head = tmp_path / "mae", tmp_path / "mae" / "segment"
    head.mkdir(parents=True)
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "since": 0.0}  # a live process, not this one
    (head / LOCK_NAME).write_text(json.dumps(holder))
    assert main(["segment", "train", str(run), "--steps", "1"]) == 2
    assert f"{head} is being written by process {holder['pid']}" in capsys.readouterr().err
    assert sorted(p.name for p in head.iterdir()) == [LOCK_NAME]
