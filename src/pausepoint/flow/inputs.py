"""Typed inputs (flow inputs and a Pause task's onResume). STUB: being completed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str
    type: str
    description: str | None = None
    required: bool = True
    defaults: Any = None
    values: list[Any] | None = None
    item_type: str | None = Field(default=None, alias="itemType")
