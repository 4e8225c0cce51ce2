"""Blobs on the filesystem under the data dir, by SHA-256 (``blobs/ab/abcdef...``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from flopex.errors import LocalError


class FileBlobStore:
    """Content-addressed files written atomically (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where a blob lives."""
        return self.root / sha256[:2] / sha256

    def put(self, sha256: str, data: bytes) -> None:
        """Store ``data`` under its (already checked) hash; a second put is a no-op."""
        final = self.path(sha256)
        if final.exists():
            return
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise LocalError(
                f"cannot store blob: {exc.strerror}",
                code="store.disk_error",
                hint="the server's data dir is full or not writable",
            ) from None
