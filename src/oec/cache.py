"""Where oec keeps what it builds once and reuses: bundled repos, base stores, model checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "OEC_CACHE_DIR"


def cache_root(cache_dir: Path | None = None) -> Path:
    """`cache_dir`, else `$OEC_CACHE_DIR`, else `~/.cache/oec`."""
    if cache_dir is not None:
        return Path(cache_dir)
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "oec"
