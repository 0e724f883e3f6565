"""Content digests of data files: what decides whether a new customization job is needed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    sha256: str  # hex
    size_bytes: int

    @property
    def short(self) -> str:
        """The first 12 hex digits: enough to tell data versions apart in names (job names)."""
        return self.sha256[:12]


def file_digest(path: Path) -> FileDigest:
    """sha256 of a file, read in 1 MiB chunks (constant memory whatever the file size)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(sha256=digest.hexdigest(), size_bytes=size)
