"""CLI tests: tiny models, so one intra-op thread (the machine is shared)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # The models here are tiny: a second intra-op thread only adds contention on the shared 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
