"""Check every model of a run once, before its first rollout (see `ApiModel.preflight`).

Why: without it, a server that is down, still loading, or answers 401 turns
every rollout of the run into a failed attempt, one timeout at a time. Local
models (hf), the oracle and scripted models have nothing to reach and are not
checked here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from oec.models.api_model import PreflightError


async def _check(role: str, provider: Any, task: Any) -> str | None:
    model = provider.for_task(task)
    check = getattr(model, "preflight", None)
    if check is None:
        return None
    try:
        await check()
    except PreflightError as exc:
        return f"{role} {provider.spec}: {exc}"
    return None


def preflight(models: dict[str, Any], task: Any) -> None:
    """Raise PreflightError listing every role whose model failed its check (all are asked, concurrently)."""

    async def run() -> list[str | None]:
        return await asyncio.gather(*(_check(role, p, task) for role, p in models.items() if p is not None))

    problems = [p for p in asyncio.run(run()) if p]
    if problems:
        raise PreflightError("pre-flight check failed", "; ".join(problems))
