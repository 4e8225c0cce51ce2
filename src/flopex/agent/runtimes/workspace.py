"""A job's workspace on the agent: safe unpacking, ownership, output collection, removal.

An archive comes from a consumer and is not trusted: absolute paths, ``..``, links,
devices and trees bigger than the limit are refused before anything is written
(``workdir.unsafe``). On any error ``dest`` may hold part of the tree; the caller
removes the whole workspace.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flopex.errors import LocalError

MAX_UNPACK_ENTRIES = 200_000
MAX_OUTPUT_FILES = 100_000
_HASH_CHUNK_BYTES = 1024 * 1024
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)


@dataclass(frozen=True)
class OutputFile:
    """A file the job left in ``$FLOPEX_OUTPUT_DIR``."""

    path: str  # relative POSIX path inside $FLOPEX_OUTPUT_DIR
    sha256: str
    size_bytes: int
    local_path: Path


@dataclass(frozen=True)
class Workspace:
    """The directories of one attempt: ``root`` is the job's HOME."""

    root: Path
    work: Path
    output: Path
    tmp: Path

    @classmethod
    def at(cls, root: Path) -> Workspace:
        """The workspace layout under ``root`` (nothing is created)."""
        return cls(root=root, work=root / "work", output=root / "output", tmp=root / "tmp")

    def prepare(
        self, archive: bytes | None, *, max_bytes: int, owner: tuple[int, int] | None
    ) -> None:
        """Create the workspace afresh, unpack ``archive`` into ``work``, give it to ``owner``."""
        parent = self.root.parent
        parent.mkdir(parents=True, exist_ok=True)
        remove_tree(self.root)
        if owner is not None:
            parent.chmod(0o711)  # the job user may enter its own workspace, not list others
            _check_traversable(self.root, *owner)
        self.root.mkdir(mode=0o700)
        for directory in (self.work, self.output, self.tmp):
            directory.mkdir(mode=0o700)
        if archive is not None:
            unpack_workdir(archive, self.work, max_bytes=max_bytes)
        if owner is not None:
            _chown_tree(self.root, *owner)


def unpack_workdir(
    archive: bytes, dest: Path, *, max_bytes: int, max_entries: int = MAX_UNPACK_ENTRIES
) -> int:
    """Unpack a workdir tar.gz into ``dest``, refusing anything unsafe; returns files written."""
    dest.mkdir(parents=True, exist_ok=True)
    files = size_bytes = entries = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r|gz") as tar:
            for member in tar:
                entries += 1
                size_bytes += member.size if member.isreg() else 0
                _check_member(member, entries, size_bytes, max_entries, max_bytes)
                tar.extract(member, dest, filter="data")
                files += 1 if member.isreg() else 0
    except tarfile.FilterError as exc:
        raise _unsafe(str(exc)) from exc
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise LocalError(
            f"the workdir archive is not a valid tar.gz: {exc}",
            code="workdir.corrupt",
            hint="pack the workdir again with flopex",
        ) from exc
    except OSError as exc:
        raise LocalError(
            f"cannot unpack the workdir into {dest}: {exc}",
            code="workdir.unpack_failed",
            hint="check free disk space in the agent's work root",
        ) from exc
    return files


def _check_member(
    member: tarfile.TarInfo, entries: int, size_bytes: int, max_entries: int, max_bytes: int
) -> None:
    """Refuse a member whose path escapes, which is not a file or dir, or which is too much."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith("/"):
        raise _unsafe(f"absolute path {member.name!r}")
    if ".." in name.parts:
        raise _unsafe(f"path {member.name!r} climbs out with '..'")
    if member.type not in _FILE_TYPES and not member.isdir():
        kind = "link" if member.issym() or member.islnk() else "special file"
        raise _unsafe(f"{member.name!r} is a {kind}; only files and directories are allowed")
    if size_bytes > max_bytes:
        raise _unsafe(f"the archive unpacks to more than {max_bytes} bytes")
    if entries > max_entries:
        raise _unsafe(f"the archive has more than {max_entries} entries")


def _unsafe(reason: str) -> LocalError:
    return LocalError(
        f"refused the workdir archive: {reason}",
        code="workdir.unsafe",
        hint="pack workdirs with `flopex`; archives may hold only files and directories",
    )


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give ``root`` and everything below it to ``uid``:``gid`` without following links."""
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _unreachable_parent(path: Path, uid: int, gid: int) -> Path | None:
    """The first parent of ``path`` that ``uid``:``gid`` cannot enter, or None."""
    for parent in path.parents:
        st = parent.stat()
        if st.st_mode & stat.S_IXOTH:
            continue
        if st.st_uid == uid and st.st_mode & stat.S_IXUSR:
            continue
        if st.st_gid == gid and st.st_mode & stat.S_IXGRP:
            continue
        return parent
    return None


def reachable_work_root(preferred: Path, owner: tuple[int, int] | None) -> Path:
    """Where workspaces go: ``preferred``, unless the job user could not reach it.

    An agent running as root usually keeps its data dir private (0700 parents), so its jobs,
    which run as an unprivileged user, could not enter a workspace below it. Then workspaces go
    to a directory of the agent's own under the system temp dir, mode 0711: the job user may
    pass through it to its own workspace but cannot list the others.
    """
    if owner is None:
        return preferred
    preferred.mkdir(parents=True, exist_ok=True)
    if _unreachable_parent(preferred / "x", *owner) is None:
        return preferred
    tag = hashlib.sha256(str(preferred.resolve()).encode()).hexdigest()[:16]
    root = Path(tempfile.gettempdir()) / f"flopex-work-{tag}"
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o711)
    st = root.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise LocalError(
            f"{root} exists but is not a directory owned by this agent",
            code="runtime.workspace_unreachable",
            hint=f"remove {root}, or give the agent a --work-dir the job user can enter",
        )
    root.chmod(0o711)
    return root


def _check_traversable(path: Path, uid: int, gid: int) -> None:
    """Refuse a workspace whose parent directories the job user cannot enter."""
    parent = _unreachable_parent(path, uid, gid)
    if parent is not None:
        raise LocalError(
            f"the job user (uid {uid}) cannot enter {parent}",
            code="runtime.workspace_unreachable",
            hint=f"put the agent's work root where every parent is searchable (chmod o+x {parent})",
        )


def collect_outputs(
    output_dir: Path, *, max_bytes: int, max_files: int = MAX_OUTPUT_FILES
) -> tuple[OutputFile, ...]:
    """Hash the regular files under ``output_dir``, sorted by path; links are never followed."""
    found: list[OutputFile] = []
    total_bytes = 0
    for dirpath, dirnames, filenames, dirfd in os.fwalk(output_dir, follow_symlinks=False):
        dirnames.sort()
        rel_dir = PurePosixPath(Path(dirpath).relative_to(output_dir).as_posix())
        for name in sorted(filenames):
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                continue
            if len(found) >= max_files:
                raise _outputs_too_large(f"more than {max_files} files")
            if total_bytes + st.st_size > max_bytes:
                raise _outputs_too_large(f"more than {max_bytes} bytes")
            digest, size_bytes = _hash_at(dirfd, name, max_bytes - total_bytes)
            total_bytes += size_bytes
            rel = (rel_dir / name).as_posix()
            found.append(OutputFile(rel, digest, size_bytes, output_dir / rel))
    return tuple(sorted(found, key=lambda f: f.path))


def _hash_at(dirfd: int, name: str, budget_bytes: int) -> tuple[str, int]:
    """SHA-256 and size of a file, read in chunks; refuses one that grows past the budget."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    digest = hashlib.sha256()
    size_bytes = 0
    with open(fd, "rb", closefd=True) as source:
        while chunk := source.read(_HASH_CHUNK_BYTES):
            size_bytes += len(chunk)
            if size_bytes > budget_bytes:
                raise _outputs_too_large(f"{name} grew past the output limit")
            digest.update(chunk)
    return digest.hexdigest(), size_bytes


def _outputs_too_large(reason: str) -> LocalError:
    return LocalError(
        f"the output directory holds {reason}",
        code="runtime.outputs_too_large",
        hint="write fewer or smaller files to $FLOPEX_OUTPUT_DIR",
    )


def remove_tree(root: Path) -> None:
    """Remove a workspace, even one where the job took away its own permissions."""
    if not root.exists() and not root.is_symlink():
        return
    try:
        shutil.rmtree(root)
    except PermissionError:
        # Only without root: the job ran as this user, so restoring access gives it nothing.
        _grant_owner_access(root)
        shutil.rmtree(root)


def _grant_owner_access(root: Path) -> None:
    """Make every directory under ``root`` rwx for its owner, without following links."""
    root.chmod(0o700)
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            child = Path(dirpath, name)
            if not child.is_symlink():
                child.chmod(0o700)
