"""Where oec keeps what it builds once and reuses: bundled repos, base stores, model checkpoints."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_DIR_ENV = "OEC_CACHE_DIR"


def cache_root(cache_dir: Path | None = None) -> Path:
    """`cache_dir`, else `$OEC_CACHE_DIR`, else `~/.cache/oec`."""
    if cache_dir is not None:
        return Path(cache_dir)
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "oec"


def build_once(final: Path, build: Callable[[Path], None]) -> Path:
    """`final`, made by `build(folder)` in a temporary sibling and renamed into place, unless it exists already.

    A reader never sees half a folder; of two processes building it at once, the loser drops its copy and
    uses the winner's. The folder is left readable by all (mkdtemp makes it private; caches may be shared).
    """
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        build(tmp)
        tmp.chmod(0o755)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
