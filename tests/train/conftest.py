import sys
from pathlib import Path

# Test helpers (train_tiny.py, ddp_script.py) are imported by name; importlib mode does not add this folder.
sys.path.insert(0, str(Path(__file__).parent))
