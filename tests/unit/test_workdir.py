"""Packing a workdir on the consumer side and unpacking it safely on the agent."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from flopex.agent.runtimes.workspace import unpack_workdir
from flopex.client.workdir import pack_workdir
from flopex.errors import LocalError


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return [m.name for m in tar.getmembers() if m.isfile()]


def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, payload in members:
            info.size = len(payload) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    return buffer.getvalue()


def test_packing_the_same_tree_twice_gives_the_same_sha256(tmp_path: Path) -> None:
    root = _tree(tmp_path / "w", {"train.py": "print(1)\n", "data/a.txt": "a"})
    first = pack_workdir(root)
    (root / "train.py").touch()  # a new mtime must not change the archive
    second = pack_workdir(root)
    assert first.sha256 == second.sha256 == hashlib.sha256(first.data).hexdigest()
    assert (first.file_count, first.size_bytes) == (2, 10)


def test_packing_a_changed_tree_gives_another_sha256(tmp_path: Path) -> None:
    root = _tree(tmp_path / "w", {"train.py": "print(1)\n"})
    before = pack_workdir(root).sha256
    (root / "train.py").write_text("print(2)\n")
    assert pack_workdir(root).sha256 != before


def test_packing_normalises_modes_and_owners(tmp_path: Path) -> None:
    root = _tree(tmp_path / "w", {"run.sh": "#!/bin/sh\n", "notes.txt": "x"})
    (root / "run.sh").chmod(0o700)
    (root / "notes.txt").chmod(0o600)
    with tarfile.open(fileobj=io.BytesIO(pack_workdir(root).data), mode="r:gz") as tar:
        modes = {m.name: (m.mode, m.uid, m.uname, m.mtime) for m in tar.getmembers()}
    assert modes == {"notes.txt": (0o644, 0, "", 0), "run.sh": (0o755, 0, "", 0)}


def test_gitignore_is_honoured_at_the_root_and_nested_with_negation(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "w",
        {
            ".gitignore": "*.log\n!keep.log\ncheckpoints/\n",
            "a.log": "",
            "keep.log": "",
            "checkpoints/big.bin": "",
            "src/.gitignore": "*.tmp\n!important.tmp\n",
            "src/x.tmp": "",
            "src/important.tmp": "",
            "src/deep/y.log": "",
            "src/deep/main.py": "",
            ".git/HEAD": "ref",
        },
    )
    assert _names(pack_workdir(root).data) == [
        ".gitignore",
        "keep.log",
        "src/.gitignore",
        "src/deep/main.py",
        "src/important.tmp",
    ]


def test_symlinks_are_left_out(tmp_path: Path) -> None:
    root = _tree(tmp_path / "w", {"a.txt": "a"})
    (root / "link").symlink_to("/etc/passwd")
    assert _names(pack_workdir(root).data) == ["a.txt"]


def test_a_tree_over_the_size_limit_is_refused_with_a_hint(tmp_path: Path) -> None:
    root = _tree(tmp_path / "w", {"data.bin": "x" * 2000})
    with pytest.raises(LocalError) as err:
        pack_workdir(root, max_bytes=1000)
    assert err.value.code == "workdir.too_large"
    assert "2000 bytes" in err.value.message and "1000 bytes" in err.value.message
    assert ".gitignore" in err.value.hint


def test_a_missing_workdir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalError) as err:
        pack_workdir(tmp_path / "nope")
    assert err.value.code == "workdir.not_found"


def test_unpacking_restores_the_packed_tree(tmp_path: Path) -> None:
    files = {"train.py": "print(1)\n", "data/a.txt": "a", "data/sub/b.txt": "bb"}
    packed = pack_workdir(_tree(tmp_path / "w", files))
    dest = tmp_path / "dest"
    assert unpack_workdir(packed.data, dest, max_bytes=1000) == 3
    assert {rel: (dest / rel).read_text() for rel in files} == files


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/etc/evil"])
def test_unpacking_refuses_paths_that_escape(tmp_path: Path, name: str) -> None:
    archive = _tar_gz([(tarfile.TarInfo(name), b"x")])
    with pytest.raises(LocalError) as err:
        unpack_workdir(archive, tmp_path / "dest", max_bytes=1000)
    assert err.value.code == "workdir.unsafe"
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_unpacking_refuses_links_and_devices(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("thing")
    info.type = kind
    info.linkname = "target"
    archive = _tar_gz([(tarfile.TarInfo("target"), b"x"), (info, b"")])
    with pytest.raises(LocalError) as err:
        unpack_workdir(archive, tmp_path / "dest", max_bytes=1000)
    assert err.value.code == "workdir.unsafe"
    assert not (tmp_path / "dest" / "thing").exists()


def test_unpacking_refuses_a_tar_bomb(tmp_path: Path) -> None:
    archive = _tar_gz([(tarfile.TarInfo(f"f{i}"), b"\0" * 600) for i in range(2)])
    with pytest.raises(LocalError) as err:
        unpack_workdir(archive, tmp_path / "dest", max_bytes=1000)
    assert err.value.code == "workdir.unsafe"


def test_unpacking_refuses_garbage(tmp_path: Path) -> None:
    with pytest.raises(LocalError) as err:
        unpack_workdir(b"not a tarball", tmp_path / "dest", max_bytes=1000)
    assert err.value.code == "workdir.corrupt"
