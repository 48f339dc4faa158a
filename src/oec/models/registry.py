"""Model specs (``BACKEND:MODEL``) -> providers that hand each rollout its Model.

Why providers and not models: the oracle expert and scripted models hold
per-rollout state (the task's gold patch, a script cursor), while HTTP
backends are stateless and should share one client, one connection pool and
one concurrency limit. `ModelProvider.for_task` covers both.

Backends register a factory ``factory(model, options) -> ModelProvider``,
where `model` is the text after the first ``:`` of the spec (it may itself
contain ``:`` or ``/``, and is empty for a bare ``oracle``). ``openai``,
``anthropic`` and ``scripted`` are registered here; ``hf`` and ``oracle``
register themselves from their own modules, which `make_provider` imports on
first use so that this module never imports torch or the oracle's deps.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from oec.models.base import Model

if TYPE_CHECKING:
    from oec.models.retry import RetryPolicy


class ModelOptions(BaseModel):
    """Settings shared by all backends; each backend uses the ones that apply to it."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    api_key: str | None = None  # else the backend's env var; "EMPTY" for a custom base_url
    max_concurrency: int = Field(8, ge=1)  # requests in flight per model instance
    temperature: float = 0.0
    max_tokens: int = Field(1024, ge=1)
    timeout_s: float = Field(120.0, gt=0)  # per HTTP request
    max_retries: int = Field(5, ge=0)  # retries after the first attempt
    retry_base_s: float = Field(1.0, ge=0)  # first backoff delay; doubles per retry
    retry_max_s: float = Field(60.0, ge=0)  # cap on one backoff delay (and on Retry-After)
    seed: int | None = None
    price_in_per_mtok: float | None = None  # USD per million prompt tokens (overrides the table)
    price_out_per_mtok: float | None = None
    native_tools: bool | None = None  # None: the backend's default
    stop_after_action: bool = True  # local (hf) text-format models stop decoding once a reply holds an action

    def resolve_api_key(self, env_var: str) -> str:
        """The key to send: explicit, else `env_var`, else "EMPTY" for a custom base_url.

        Raises ValueError when none applies, at construction rather than on
        the first call deep inside a run.
        """
        key = self.api_key or os.environ.get(env_var)
        if key:
            return key
        if self.base_url:
            return "EMPTY"
        raise ValueError(f"no API key: set {env_var} or the api_key option (or a base_url for a local server)")

    def retry_policy(self) -> "RetryPolicy":
        from oec.models.retry import RetryPolicy

        return RetryPolicy(max_retries=self.max_retries, base_s=self.retry_base_s, max_s=self.retry_max_s)


@runtime_checkable
class ModelProvider(Protocol):
    """Gives each rollout the Model to call; `spec` is the string it was made from."""

    spec: str

    def for_task(self, task: Any) -> Model: ...


class SharedProvider:
    """A provider for stateless backends: every rollout shares one model (and its semaphore)."""

    def __init__(self, spec: str, model: Model) -> None:
        self.spec = spec
        self.model = model

    def for_task(self, task: Any) -> Model:
        return self.model

    def __repr__(self) -> str:
        return f"SharedProvider({self.spec!r})"


ProviderFactory = Callable[[str, ModelOptions], ModelProvider]

_BACKENDS: dict[str, ProviderFactory] = {}
#: backends whose modules register themselves; imported by make_provider on first use
_LAZY_MODULES = {"hf": "oec.models.hf", "oracle": "oec.models.oracle"}


def register_backend(name: str, factory: ProviderFactory) -> None:
    """Make ``name:MODEL`` specs build providers with `factory(MODEL, options)`; re-registering replaces."""
    if not name or ":" in name or name != name.strip():
        raise ValueError(f"bad backend name {name!r}")
    _BACKENDS[name] = factory


def known_backends() -> list[str]:
    return sorted(set(_BACKENDS) | set(_LAZY_MODULES))


def parse_spec(spec: str) -> tuple[str, str]:
    """``"openai:gpt-4o"`` -> ``("openai", "gpt-4o")``; a bare ``"oracle"`` -> ``("oracle", "")``."""
    backend, _, model = spec.strip().partition(":") if isinstance(spec, str) else ("", "", "")
    if not backend or backend != backend.strip():
        raise ValueError(f"malformed model spec {spec!r}: expected BACKEND:MODEL; "
                         f"known backends: {', '.join(known_backends())}")
    return backend, model


def make_provider(spec: str, options: ModelOptions | None = None) -> ModelProvider:
    """Build the provider for `spec`; ValueError names the spec and the known backends."""
    backend, model = parse_spec(spec)
    if backend not in _BACKENDS and backend in _LAZY_MODULES:
        try:
            importlib.import_module(_LAZY_MODULES[backend])
        except ImportError as exc:
            module = _LAZY_MODULES[backend]
            if getattr(exc, "name", None) == module:
                raise ImportError(f"model spec {spec!r}: backend {backend!r} is not part of this install "
                                  f"(no module {module})") from exc
            hint = " (install the extras: pip install -e '.[hf]')" if backend == "hf" else ""
            raise ImportError(f"model spec {spec!r} needs {module}, which failed to import: {exc}{hint}") from exc
    factory = _BACKENDS.get(backend)
    if factory is None:
        raise ValueError(f"unknown backend {backend!r} in model spec {spec!r}; "
                         f"known backends: {', '.join(known_backends())}")
    return factory(model, options or ModelOptions())


def _require_model(backend: str, model: str) -> str:
    if not model:
        raise ValueError(f"model spec {backend + ':'!r} names no model: expected {backend}:MODEL")
    return model


def _openai_factory(model: str, options: ModelOptions) -> ModelProvider:
    from oec.models.openai_backend import OpenAIModel

    return SharedProvider(f"openai:{model}", OpenAIModel(_require_model("openai", model), options))


def _anthropic_factory(model: str, options: ModelOptions) -> ModelProvider:
    from oec.models.anthropic_backend import AnthropicModel

    return SharedProvider(f"anthropic:{model}", AnthropicModel(_require_model("anthropic", model), options))


def _scripted_factory(model: str, options: ModelOptions) -> ModelProvider:
    from oec.models.scripted import ScriptedProvider

    return ScriptedProvider.from_spec(_require_model("scripted", model), options)


register_backend("openai", _openai_factory)
register_backend("anthropic", _anthropic_factory)
register_backend("scripted", _scripted_factory)
