"""A recording's bookkeeping kept on disk beside its file, so the database is never the recording's weak link.

While a show is recorded its row may not be writable (the database restarting, unreachable). Whatever
the row should say is also written, atomically, to ``<file>.journal.json`` next to the media file; the
row is brought up to date from it when the database answers again, by this process or, if it died, by
whichever process sweeps the directory next. The journal is removed once the row holds its final state.

A process that records a file holds an exclusive ``flock`` on it until its row is final, so another
process (a restart on the same recordings directory, a second server) never "repairs" a file that is
still being written, which would cut the replay where the other process happened to look.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".journal.json"
FINAL = ("complete", "deleted")


@dataclass
class Entry:
    """What a recording's row should hold; ``path`` is the media file's name in the recordings directory."""

    show_id: int
    path: str
    container: str
    codecs: str
    started_wall_ms: int
    duration_ms: int = 0
    bytes: int = 0
    anchors: list[tuple[int, int]] = field(default_factory=list)
    status: str = "recording"
    finished_wall_ms: int | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL


def journal_of(media: Path) -> Path:
    return media.with_name(media.name + SUFFIX)


def media_of(journal: Path) -> Path:
    return journal.with_name(journal.name[: -len(SUFFIX)])


def write(directory: Path, entry: Entry) -> None:
    """Replace the entry's journal atomically (a crash leaves the old or the new one, never half)."""
    target = journal_of(directory / entry.path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(asdict(entry)))
    os.replace(tmp, target)


def read(journal: Path) -> Entry | None:
    """The journal's entry; None when it is gone, or unreadable (logged: nothing can be done with it)."""
    try:
        raw: Any = json.loads(journal.read_text())
        entry = Entry(
            show_id=int(raw["show_id"]),
            path=str(raw["path"]),
            container=str(raw["container"]),
            codecs=str(raw["codecs"]),
            started_wall_ms=int(raw["started_wall_ms"]),
            duration_ms=int(raw.get("duration_ms", 0)),
            bytes=int(raw.get("bytes", 0)),
            anchors=[(int(a), int(b)) for a, b in raw.get("anchors", [])],
            status=str(raw.get("status", "recording")),
            finished_wall_ms=None if raw.get("finished_wall_ms") is None else int(raw["finished_wall_ms"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("recording journal %s is unreadable: %s", journal.name, exc)
        return None
    if entry.path != media_of(journal).name or "/" in entry.path:
        log.error("recording journal %s names another file (%r)", journal.name, entry.path)
        return None
    return entry


def remove(directory: Path, entry: Entry) -> None:
    journal_of(directory / entry.path).unlink(missing_ok=True)


def pending(directory: Path) -> list[Path]:
    """Journals in the directory, oldest name first."""
    return sorted(directory.glob("*" + SUFFIX))


class FileLock:
    """An exclusive ``flock`` on a recording file: held by the process writing it (or settling its row)."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, path: Path, create: bool = False) -> FileLock | None:
        """The lock, or None when another holder has it; FileNotFoundError when there is no file.

        ``create``: the muxer may not have created its file yet (it writes the header with the first
        packet); it later opens the same inode, truncating, so the lock stays on the recording.
        """
        flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        fd = os.open(path, flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the only descriptor drops the flock
