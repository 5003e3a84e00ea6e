import os
import tempfile

import pytest
import torch

# Every cache (probe verdicts, generated built-in sets: masklab.core.cache) goes to a throwaway directory.
os.environ.setdefault("MASKLAB_CACHE_DIR", tempfile.mkdtemp(prefix="masklab-cache-"))

# Tests are sized for a 2-core CI machine; more threads only add contention.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)
