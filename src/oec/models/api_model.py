"""What the OpenAI and Anthropic backends share: slots, retries, latency and SDK error mapping.

Both official SDKs are generated from one template, so their clients take the
same constructor arguments and raise the same four exception classes; a
backend only says which SDK, how to call it, how to read its error bodies and
its responses. Retrying belongs to `oec.models.retry` (the SDKs' own retries
are off) so tests can count attempts.
"""

from __future__ import annotations

import asyncio
import time
from types import ModuleType
from typing import Any, ClassVar

from oec.agent.tools import TOOLS
from oec.models.base import Completion, Message, ModelError, ToolSpec
from oec.models.registry import ModelOptions
from oec.models.retry import PerLoop, TransientError, call_with_retries, classify_status


class PreflightError(RuntimeError):
    """A model the run needs is not usable; the message names it, where it was asked, and the answer."""

    def __init__(self, where: str, answer: str) -> None:
        super().__init__(f"{where}: {answer}")
        self.where, self.answer = where, answer

    def __str__(self) -> str:
        return f"{self.where}: {self.answer}"


def field_of(obj: Any, key: str, default: Any = None) -> Any:
    """A response field, whether the SDK parsed it into a model or a local server's reply stayed a dict."""
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


class ApiModel:
    """A model behind an HTTP API, reached through its official SDK (`sdk`).

    `complete` holds one of `max_concurrency` slots for the whole call,
    retries included, so a rate-limited call backs off without letting
    another request take its place. `latency_s` is the time from taking the
    slot to the answer: failed attempts and backoff waits included, queueing
    for a slot excluded. The client and the semaphore are per event loop, so
    one instance also works across several ``asyncio.run`` calls.
    """

    sdk: ClassVar[ModuleType]        # openai or anthropic
    client_class: ClassVar[str]      # its async client, e.g. "AsyncOpenAI"
    api_key_env: ClassVar[str]       # where the API key comes from unless options name one
    error_tag: ClassVar[str] = "code"  # the field of an error body that names the kind of error

    def __init__(self, model: str, options: ModelOptions | None = None, *, client: Any | None = None) -> None:
        self.options = options or ModelOptions()
        self.name = model
        self.native_tools = True if self.options.native_tools is None else self.options.native_tools
        api_key = self.options.resolve_api_key(self.api_key_env) if client is None else ""
        # one client and one semaphore per event loop (see PerLoop); an injected client is used as is
        self._client = PerLoop(lambda: client or getattr(self.sdk, self.client_class)(
            api_key=api_key, base_url=self.options.base_url, timeout=self.options.timeout_s, max_retries=0))
        self._semaphore = PerLoop(lambda: asyncio.Semaphore(self.options.max_concurrency))
        self.policy = self.options.retry_policy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, base_url={self.options.base_url!r})"

    def request_body(self, messages: list[Message], tools: list[ToolSpec] | None) -> dict[str, Any]:
        """Keyword arguments for the SDK's create call (public so tests and logs can see them)."""
        raise NotImplementedError

    async def send(self, client: Any, body: dict[str, Any]) -> Any:
        """One request with the SDK's client."""
        raise NotImplementedError

    def parse(self, response: Any) -> Completion:
        """The Completion in a response; raise TransientError("bad_response", ...) for one we cannot use."""
        raise NotImplementedError

    @classmethod
    def error_text(cls, exc: Any) -> str:
        """The server's own message in an APIStatusError: both APIs nest it as {"error": {"message", ...}},
        with the kind of error under `error_tag`; else the SDK's message."""
        body = exc.body
        if isinstance(body, dict):
            err = body.get("error", body)
            if isinstance(err, dict) and err.get("message"):
                tag = err.get(cls.error_tag)
                return f"{err['message']}" + (f" [{tag}]" if tag else "")
            if isinstance(err, str):
                return err
        return str(exc.message or exc)

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> Completion:
        body = self.request_body(messages, tools)
        async with self._semaphore.get():
            start = time.monotonic()
            completion = await call_with_retries(lambda: self._attempt(body), self.policy,
                                                 attempt_timeout_s=self.options.timeout_s * 2 + 5)
            completion.latency_s = time.monotonic() - start
        return completion

    async def preflight(self) -> None:
        """One small request, no retries: raise PreflightError saying what the server answered, if it failed.

        Checks what a run needs before its first rollout: the server answers, the key is accepted, the model
        name is served, and (in the native format) tool calls are accepted. The served-model list is
        asked first where the API has one, so a wrong name is named with the ones that are served.
        """
        await self.check_served()
        probe = [Message(role="system", content="Preflight check."), Message(role="user", content="Say OK.")]
        body = self.request_body(probe, TOOLS if self.native_tools else None)
        body[self.max_tokens_key(body)] = 16
        try:
            await asyncio.wait_for(self._attempt(body), timeout=self.options.timeout_s)
        except (TransientError, ModelError) as exc:
            raise PreflightError(self.where(), f"{exc}") from exc
        except asyncio.TimeoutError as exc:
            raise PreflightError(self.where(), f"no answer within {self.options.timeout_s}s") from exc

    async def check_served(self) -> None:
        """Backends with a model list raise PreflightError when the name is not on it; by default nothing."""

    @staticmethod
    def max_tokens_key(body: dict[str, Any]) -> str:
        return "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"

    def where(self) -> str:
        return f"{self.name} at {self.options.base_url or 'the default endpoint'}"

    async def _attempt(self, body: dict[str, Any]) -> Completion:
        sdk = self.sdk
        try:
            response = await self.send(self._client.get(), body)
        except sdk.APITimeoutError as exc:
            raise TransientError("timeout", f"no answer within {self.options.timeout_s}s: {exc}") from exc
        except sdk.APIConnectionError as exc:
            raise TransientError("connection", f"{exc}: {exc.__cause__ or ''}") from exc
        except sdk.APIStatusError as exc:
            raise classify_status(exc.status_code, self.error_text(exc), exc.response.headers) from exc
        except (sdk.APIResponseValidationError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            raise TransientError("bad_response", f"unparseable response: {exc}") from exc
        return self.parse(response)
