"""A model provider that travels as its spec and options, and is rebuilt where it lands.

Why: live models do not pickle (an HTTP client bound to an event loop, torch
weights, thread pools), and should not: a Ray worker on another machine must
build its own. `PortableProvider` pickles as ``(spec, options)`` and builds
the real provider on first use in each process, once per process, so an
``hf:`` model loads once per worker however many rollouts that worker runs.
In the driver the provider is built eagerly, so a bad spec fails at startup,
not inside the first remote rollout.
"""

from __future__ import annotations

import gc
import threading
from typing import Any

from oec.models.base import Model
from oec.models.registry import ModelOptions, ModelProvider, make_provider

_CACHE: dict[tuple[str, str], ModelProvider] = {}
_CACHE_LOCK = threading.Lock()


def cached_provider(spec: str, options: ModelOptions) -> ModelProvider:
    """The provider for (spec, options) in this process, built on first request."""
    key = (spec, options.model_dump_json())
    with _CACHE_LOCK:
        provider = _CACHE.get(key)
        if provider is None:
            provider = _CACHE[key] = make_provider(spec, options)
        return provider


def release_providers() -> int:
    """Drop every provider this process built, closing the models that hold weights (hf: its engine, weights and
    prefix caches); returns how many. A later request builds afresh.

    A long job evaluates one checkpoint after another (`oec experiment`): each stayed loaded with up to 1 GiB
    of prefix cache for the life of the process, and the miniature's process reached 15 GB and was killed
    for memory when it began the next arm's training."""
    with _CACHE_LOCK:
        providers = list(_CACHE.values())
        _CACHE.clear()
    for provider in providers:
        close = getattr(getattr(provider, "model", None), "close", None)
        if callable(close):
            close()
    gc.collect()
    return len(providers)


class PortableProvider:
    """A `ModelProvider` that pickles as its spec and options (see the module docstring)."""

    def __init__(self, spec: str, options: ModelOptions | None = None) -> None:
        self.source = spec
        self.options = options or ModelOptions()
        self.spec = cached_provider(spec, self.options).spec  # validates here; the canonical spec for records

    def resolve(self) -> ModelProvider:
        return cached_provider(self.source, self.options)

    def for_task(self, task: Any) -> Model:
        return self.resolve().for_task(task)

    def __getstate__(self) -> dict[str, Any]:
        # only the fields that were set: a backend may refuse an option it cannot send (anthropic's temperature)
        return {"source": self.source, "options": self.options.model_dump(exclude_unset=True), "spec": self.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # not built here: unpickling happens before the task runs, and a failure belongs to the rollout
        self.source, self.spec = state["source"], state["spec"]
        self.options = ModelOptions.model_validate(state["options"])

    def __repr__(self) -> str:
        return f"PortableProvider({self.source!r})"
