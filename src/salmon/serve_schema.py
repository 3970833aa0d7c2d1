"""Request bodies of the reward server (pydantic models, imported only when serving)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward-model request."""

    query: list[str] = Field(..., description="prompt + response, one string per sample")
    prompts: list[str] | None = Field(None, description="the prompt of each sample (a prefix of its query)")
    labels: list[Any] | None = Field(None, description="ignored; accepted for OpenRLHF compatibility")
    principles: list[list[str]] | None = Field(None, description="per-sample principle texts")


class ScoreItem(BaseModel):
    prompt: str
    response: str
    principles: list[str] | None = None


class ScoreRequest(BaseModel):
    items: list[ScoreItem]
