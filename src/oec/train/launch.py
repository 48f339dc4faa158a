"""The accelerate config files shipped with oec, for `accelerate launch ... -m oec train` on several GPUs.

Why shipped rather than generated with `accelerate config`: the settings that
matter for oec (mixed_precision left to `--precision`, a full state dict
gathered for the final save, ZeRO-3's 16-bit save) are easy to get wrong
interactively; `oec train-config NAME` prints a file's path for --config_file.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).with_name("accelerate")


def accelerate_configs() -> dict[str, Path]:
    """Shipped configs by name (the file name without .yaml)."""
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}


def accelerate_config(name: str) -> Path:
    """The path of the shipped config NAME; KeyError names the ones there are."""
    configs = accelerate_configs()
    if name not in configs:
        raise KeyError(f"no accelerate config {name!r}; shipped: {', '.join(configs)}")
    return configs[name]
