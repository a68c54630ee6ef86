"""Settings of `rrhf view`: the flags, the config-file keys and the meta all come from this model."""

from __future__ import annotations

from pydantic import BaseModel

from stages.runtime.config import setting


class ViewConfig(BaseModel):
    """Settings of `rrhf view`."""

    title: str | None = setting(None, description="The page's title; by default the files' names.")
    page_size: int = setting(20, ge=1, le=1000, description="Prompt cards shown at a time.")
