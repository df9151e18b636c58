"""Starting JupyterLab on the self-paced notebooks, the same way for learners and for tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def lab_command(notebooks: Path, port: int, token: str) -> list[str]:
    """The command that serves ``notebooks`` on 127.0.0.1:``port``, protected by ``token``."""
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
               f"--ServerApp.root_dir={notebooks}", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
               f"--IdentityProvider.token={token}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI machines often run as root
    return command


def lab_url(port: int, token: str, notebook: str = "00-start-here.ipynb") -> str:
    return f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}"
