"""The cache key of ``make image`` (image/build.py): a cached image is reused only for the same sources."""

from __future__ import annotations

import re
from pathlib import Path

from image import build

ROOT = Path(__file__).resolve().parents[2]


def test_every_file_the_containerfile_copies_is_in_the_build_context_and_so_in_the_cache_key() -> None:
    copied = set()
    for line in (ROOT / "Containerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(line.split()[1:-1])
    assert copied == {"pyproject.toml", "README.md", "mcs_apiserver", "webhooks", "certs"}
    entries = build.context_entries((ROOT / ".containerignore").read_text())
    assert copied == set(entries)
    assert all((ROOT / entry).exists() for entry in entries)


def test_the_containerfile_base_is_a_build_argument_defaulting_to_the_official_python_image() -> None:
    text = (ROOT / "Containerfile").read_text()
    assert re.search(r"^ARG BASE=docker\.io/library/python:3\.11-slim-bookworm$", text, re.MULTILINE)
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["${BASE}", "${BASE}"]


def make_tree(root: Path) -> None:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "Containerfile").write_text("FROM ${BASE}\nCOPY pkg pkg\n")
    (root / ".containerignore").write_text("*\n!pkg\n!a.toml\n**/__pycache__\n")
    (root / "a.toml").write_text("[project]\n")
    (root / "pkg" / "sub" / "mod.py").write_text("x = 1\n")
    (root / "notes.txt").write_text("not in the context\n")


def test_the_image_key_changes_with_every_context_file_and_the_base_but_not_with_bytecode_or_other_files(
        tmp_path: Path) -> None:
    make_tree(tmp_path)
    key = build.context_digest("base:1", tmp_path)
    assert build.context_digest("base:1", tmp_path) == key

    (tmp_path / "pkg" / "sub" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "sub" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "notes.txt").write_text("changed, still not in the context\n")
    assert build.context_digest("base:1", tmp_path) == key

    assert build.context_digest("base:2", tmp_path) != key
    for change in ("pkg/sub/mod.py", "a.toml", "Containerfile", ".containerignore"):
        path = tmp_path / change
        before = path.read_text()
        path.write_text(before + "# changed\n")
        assert build.context_digest("base:1", tmp_path) != key, change
        path.write_text(before)
    (tmp_path / "pkg" / "new.py").write_text("")
    assert build.context_digest("base:1", tmp_path) != key
