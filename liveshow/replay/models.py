"""Recording and re-air tables."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from liveshow.clock import utcnow

RECORDING_STATES = ("recording", "complete", "deleted")
REAIR_STATES = ("scheduled", "airing", "done", "failed", "cancelled")


class Recording(SQLModel, table=True):
    __tablename__ = "recordings"

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    # File name inside the recordings directory (never a path from a request).
    path: str = Field(max_length=200)
    container: str = Field(max_length=10)  # mp4 | webm
    codecs: str = Field(max_length=40)  # e.g. h264+opus
    # Wall time of the file's first frame: an event's replay offset is its time minus this.
    started_at: datetime
    duration_ms: int = Field(default=0)
    bytes: int = Field(default=0)
    status: str = Field(default="recording", max_length=12, index=True)
    # JSON [[offset_ms, wall_ms], ...]: where the media clock and wall time jumped apart (a republish).
    anchors: str = Field(default="[]")
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class ReAir(SQLModel, table=True):
    __tablename__ = "reairs"

    id: int | None = Field(default=None, primary_key=True)
    # The new live show that airs the recording, and what it airs.
    show_id: int = Field(foreign_key="shows.id", index=True, unique=True)
    source_show_id: int = Field(foreign_key="shows.id", index=True)
    recording_id: int = Field(foreign_key="recordings.id")
    status: str = Field(default="scheduled", max_length=12, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
