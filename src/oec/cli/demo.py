"""`oec demo`: the main job on the embedded default config (bundled tasks, SmolLM2 student, oracle expert)."""

from __future__ import annotations

from pathlib import Path

import typer

from oec.cli.run_cmd import run_command


def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="where the demo writes its run directory"),
) -> None:
    """Run the whole OEC method on the embedded default: collect, filter, export, train, evaluate."""
    run_command(config=None, out=out)
