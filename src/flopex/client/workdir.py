"""Pack a job's workdir into a deterministic ``.tar.gz`` on the consumer side.

The same tree always gives the same bytes (and so the same sha256): entries are sorted,
owners and times are zeroed, modes are normalised to 0o755/0o644 and gzip has mtime 0.
``.gitignore`` files (root and nested, with negation) are honoured as git does, and
``.git`` is always left out. Only regular files and directories are packed; symlinks,
sockets, FIFOs and devices are skipped, since the agent refuses links when it unpacks.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pathspec

from flopex.errors import LocalError

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 200_000
_GZIP_LEVEL = 6


@dataclass(frozen=True)
class PackedWorkdir:
    """A packed workdir: the archive bytes, their hash and what went in."""

    data: bytes
    sha256: str
    file_count: int
    size_bytes: int


@dataclass(frozen=True)
class _Entry:
    rel: str  # POSIX path relative to the workdir root
    path: Path
    is_dir: bool
    mode: int
    size_bytes: int


@dataclass(frozen=True)
class _Ignore:
    base: str  # POSIX dir the .gitignore lives in, "" for the root
    spec: pathspec.GitIgnoreSpec


def pack_workdir(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> PackedWorkdir:
    """Pack ``path`` into a deterministic tar.gz, honouring ``.gitignore`` files."""
    if not path.is_dir():
        raise LocalError(
            f"workdir {path} does not exist or is not a directory",
            code="workdir.not_found",
            hint="set `workdir:` in the task YAML to an existing directory",
        )
    try:
        entries = _scan(path)
    except OSError as exc:
        raise _unreadable(exc) from exc
    size_bytes = sum(e.size_bytes for e in entries)
    if size_bytes > max_bytes:
        raise LocalError(
            f"workdir {path} holds {_mib(size_bytes)} before compression, "
            f"over the limit of {_mib(max_bytes)}",
            code="workdir.too_large",
            hint="add a .gitignore to the workdir to leave out data, checkpoints and "
            "virtualenvs; jobs can download large inputs themselves",
        )
    data = _archive(entries)
    return PackedWorkdir(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        file_count=sum(1 for e in entries if not e.is_dir),
        size_bytes=size_bytes,
    )


def _mib(size_bytes: int) -> str:
    return f"{size_bytes / (1024 * 1024):.1f} MiB ({size_bytes} bytes)"


def _scan(root: Path) -> list[_Entry]:
    """Every packable entry under ``root`` in sorted, depth-first order (stat only)."""
    entries: list[_Entry] = []
    stack: list[tuple[Path, str, tuple[_Ignore, ...]]] = [(root, "", ())]
    while stack:
        directory, rel_dir, ignores = stack.pop()
        ignores = _with_gitignore(directory, rel_dir, ignores)
        subdirs: list[tuple[Path, str, tuple[_Ignore, ...]]] = []
        for child in sorted(os.scandir(directory), key=lambda e: e.name):
            rel = f"{rel_dir}{child.name}"
            entry = _entry(child, rel, ignores)
            if entry is None:
                continue
            entries.append(entry)
            if entry.is_dir:
                subdirs.append((entry.path, rel + "/", ignores))
            if len(entries) > MAX_ENTRIES:
                raise LocalError(
                    f"workdir {root} has more than {MAX_ENTRIES} files and directories",
                    code="workdir.too_large",
                    hint="add a .gitignore to the workdir to leave out generated files",
                )
        stack.extend(subdirs)
    entries.sort(key=lambda e: e.rel.split("/"))
    return entries


def _entry(child: os.DirEntry[str], rel: str, ignores: tuple[_Ignore, ...]) -> _Entry | None:
    """The entry for one directory child, or None when it is ignored or not packable."""
    if child.name == ".git":
        return None
    st = child.stat(follow_symlinks=False)
    is_dir = stat.S_ISDIR(st.st_mode)
    if not (is_dir or stat.S_ISREG(st.st_mode)):
        return None  # symlinks, sockets, FIFOs, devices
    if _ignored(rel, is_dir, ignores):
        return None
    executable = is_dir or bool(st.st_mode & stat.S_IXUSR)
    return _Entry(
        rel=rel,
        path=Path(child.path),
        is_dir=is_dir,
        mode=0o755 if executable else 0o644,
        size_bytes=0 if is_dir else st.st_size,
    )


def _with_gitignore(
    directory: Path, rel_dir: str, ignores: tuple[_Ignore, ...]
) -> tuple[_Ignore, ...]:
    """``ignores`` plus the ``.gitignore`` of ``directory``, if it has one."""
    gitignore = directory / ".gitignore"
    if not gitignore.is_file() or gitignore.is_symlink():
        return ignores
    lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
    return (*ignores, _Ignore(base=rel_dir, spec=pathspec.GitIgnoreSpec.from_lines(lines)))


def _ignored(rel: str, is_dir: bool, ignores: tuple[_Ignore, ...]) -> bool:
    """Git's rule: the deepest ``.gitignore`` with a matching pattern decides."""
    for ignore in reversed(ignores):
        candidate = rel[len(ignore.base) :] + ("/" if is_dir else "")
        result = ignore.spec.check_file(candidate)
        if result.include is not None:
            return bool(result.include)
    return False


def _archive(entries: list[_Entry]) -> bytes:
    """The tar.gz of ``entries``, with every varying field zeroed."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(
            filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=_GZIP_LEVEL
        ) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for entry in entries:
            _add(tar, entry)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, entry: _Entry) -> None:
    info = tarfile.TarInfo(entry.rel)
    info.mode = entry.mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.is_dir:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        return
    info.size = entry.size_bytes
    try:
        with entry.path.open("rb") as source:
            tar.addfile(info, source)
    except OSError as exc:
        raise _unreadable(exc) from exc


def _unreadable(exc: OSError) -> LocalError:
    return LocalError(
        f"cannot pack the workdir: {exc}",
        code="workdir.unreadable",
        hint="make the file readable or list it in .gitignore; "
        "files must not change while the workdir is packed",
    )
