"""What a writer killed while it wrote a folder aside leaves: ``.NAME.KIND-PID-HOST-RANDOM`` beside the target
(the name :func:`masklab.core.io.staging_path` gives, spelled out here)."""

import re
import secrets
import socket

DEAD_PID = 2**22 + 12345  # above Linux's largest pid_max: never a live process


def plant(target, pid, kind="tmp", host=None):
    """A leftover of writer ``pid`` (on ``host``, default this one) beside ``target``, holding a file as a
    half-written save would."""
    host = host or re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:32]
    leftover = target.parent / f".{target.name}.{kind}-{pid}-{host}-{secrets.token_hex(6)}"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    return leftover
