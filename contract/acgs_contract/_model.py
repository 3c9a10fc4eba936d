"""The base of the contract's JSON models: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """A JSON document one program writes and another reads."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self, exclude_none: bool = False) -> dict[str, Any]:
        """The JSON object as it travels (camelCase keys)."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=exclude_none)

    @classmethod
    def from_wire(cls, data: dict[str, Any] | None) -> Self | None:
        """``data`` (say, a parsed termination message) as this model; None when there is none or it
        is not one (a crash leaves a log tail where a result would be)."""
        if not data:
            return None
        try:
            return cls.model_validate(data)
        except ValidationError:
            return None
