"""Value objects of the GLM chat completions API (requests, streamed chunks, results)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# finish_reason values documented by Z.AI for chat completions.
FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_TOOL_CALLS = "tool_calls"
FINISH_SENSITIVE = "sensitive"
FINISH_NETWORK_ERROR = "network_error"
FINISH_CONTEXT_EXCEEDED = "model_context_window_exceeded"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int = 0  # thinking, where reported (part of completion_tokens)
    cached_tokens: int = 0  # input served from the cache (part of prompt_tokens)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage | None:
        if not isinstance(data, dict):
            return None
        completion = data.get("completion_tokens_details")
        prompt = data.get("prompt_tokens_details")
        return cls(
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            total_tokens=int(data.get("total_tokens") or 0),
            reasoning_tokens=int(
                (completion.get("reasoning_tokens") if isinstance(completion, dict) else 0) or 0
            ),
            cached_tokens=int(
                (prompt.get("cached_tokens") if isinstance(prompt, dict) else 0) or 0
            ),
        )


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as sent by the model


@dataclass(frozen=True, slots=True)
class Chunk:
    """One parsed streaming event: visible text, hidden reasoning, or the end of the answer."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole (non-streamed or fully collected) answer."""

    content: str
    finish_reason: str | None
    usage: Usage | None = None
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    model: str = ""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the bot asks the model for; ``to_payload`` gives the JSON body."""

    messages: list[dict[str, Any]]
    model: str
    user_id: str = ""
    thinking: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_payload(self, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "stream": stream,
            "thinking": {"type": "enabled" if self.thinking else "disabled"},
        }
        if self.user_id:
            body["user_id"] = self.user_id
        if self.tools:
            body["tools"] = self.tools
            if self.tool_choice is not None:
                body["tool_choice"] = self.tool_choice
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.extra)
        return body
