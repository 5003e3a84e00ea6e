"""Folders written aside (``export-hf``, an estimator's ``save``): the hidden sibling names its writer
(``.NAME.tmp-PID-HOST-RANDOM``), and the next write into the same target removes what a writer killed on this
host left (``kill -9`` while writing), never a live writer's nor one from another host."""

import subprocess
import sys

import pytest

from masklab.core.io import new_staging_folder, remove_dead_writers
from tests.core.leftovers import DEAD_PID, plant


@pytest.fixture
def live_pid():
    """The pid of a sleeping child: a writer that is still alive."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield child.pid
    child.kill()
    child.wait()


def test_only_dead_writers_on_this_host_are_removed(tmp_path, live_pid):
    target = tmp_path / "out"
    dead, live = plant(target, DEAD_PID), plant(target, live_pid)
    elsewhere = plant(target, DEAD_PID, host="another-host")
    other_name = plant(tmp_path / "outer", DEAD_PID)  # another target's: not ours to judge here
    unrelated = tmp_path / ".out.tmp-notes"
    unrelated.mkdir()
    assert remove_dead_writers(target) == [dead]
    assert not dead.exists() and live.exists() and elsewhere.exists() and other_name.exists() and unrelated.exists()


def test_a_new_staging_folder_names_its_writer_and_clears_dead_ones(tmp_path, live_pid):
    import os

    target = tmp_path / "deep" / "out"
    target.parent.mkdir()
    dead, live = plant(target, DEAD_PID), plant(target, live_pid)
    tmp = new_staging_folder(target)
    assert tmp.is_dir() and tmp.parent == target.parent
    assert tmp.name.startswith(f".out.tmp-{os.getpid()}-")
    assert not dead.exists() and live.exists()
