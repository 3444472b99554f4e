from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A wire type: fields the server sends that the model does not name are kept, not dropped."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
