"""The writers every file goes through: atomic, and never through a symbolic link."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlip_autopipec.files import LinkRefused, atomic_path, open_for_append, write_text_atomic


@pytest.fixture
def link(tmp_path: Path) -> tuple[Path, Path]:
    """``run/file`` linked to ``outside.txt``."""
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours\n")
    (tmp_path / "run").mkdir()
    link = tmp_path / "run" / "file"
    link.symlink_to(outside)
    return link, outside


def test_the_atomic_writer_refuses_a_link(link: tuple[Path, Path]) -> None:
    path, outside = link
    with pytest.raises(LinkRefused, match=rf"{path} is a symbolic link \(to {outside}\)"):
        write_text_atomic(path, "mine")
    assert outside.read_text() == "not yours\n" and path.is_symlink()
    assert sorted(p.name for p in path.parent.iterdir()) == ["file"]  # no temporary left


def test_a_link_planted_while_the_file_is_written_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours\n")
    target = tmp_path / "file"
    with pytest.raises(LinkRefused, match="symbolic link"), atomic_path(target) as temporary:
        temporary.write_text("mine")
        target.symlink_to(outside)
    assert outside.read_text() == "not yours\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "outside.txt"]


def test_appending_refuses_a_link(link: tuple[Path, Path]) -> None:
    path, outside = link
    with pytest.raises(LinkRefused, match="symbolic link"):
        open_for_append(path)
    assert outside.read_text() == "not yours\n"


def test_appending_and_writing_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "log"
    for line in ("one\n", "two\n"):
        with open_for_append(path) as stream:
            stream.write(line)
    assert path.read_text() == "one\ntwo\n"
    write_text_atomic(path, "three")
    assert path.read_text() == "three"
