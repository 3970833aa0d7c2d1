"""Request bodies of the reward server (pydantic models, imported only when serving)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward-model request."""

    query: list[str] = Field(..., description="prompt + response, one string per sample")
    prompts: list[str] | None = Field(None, description="the prompt of each sample (a prefix of its query)")
    labels: list[Any] | None = Field(None, description="ignored; accepted for OpenRLHF compatibility")
    principles: list[list[str]] | None = Field(None, description="per-sample principle texts")


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ScoreItem(BaseModel):
    prompt: str | list[ChatMessage] = Field(..., description="text, or a conversation ending with a user turn")
    response: str
    principles: list[str] | None = None


class ScoreRequest(BaseModel):
    items: list[ScoreItem]


class RewardResponse(BaseModel):
    """OpenRLHF's remote reward-model response."""

    rewards: list[float]
    scores: list[float] = Field(..., description="the same as rewards")
    extra_logs: dict[str, list[float]] = Field(default_factory=dict)


class ScoreResponse(BaseModel):
    rewards: list[float]


class HealthResponse(BaseModel):
    status: str
    batches: int = Field(..., description="forward batches scored since start")


class ErrorResponse(BaseModel):
    """Every error the server returns: one line saying what is wrong."""

    error: str


ERRORS = {status: {"model": ErrorResponse, "description": text} for status, text in (
    (400, "malformed request (wrong lengths, empty texts, invalid Unicode, unparsable body)"),
    (401, "missing or wrong token (when the server has one): send it as 'Authorization: Bearer <token>' "
          "or as '?token=<token>' in the URL"),
    (413, "too many samples or texts too long"),
    (422, "fields of the wrong type, a query that does not start with its prompt, or principles "
          "too long for the reward model"),
    (500, "the reward model failed on this item"),
)}
