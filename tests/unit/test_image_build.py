"""The cache key of ``make image`` (image/build.py): a cached image is reused only for the same sources."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from image import build
from mcs_apiserver import version

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


def test_the_image_is_told_the_commit_it_is_built_from_and_its_version_reads_it() -> None:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    args = build.git_revision()
    assert args["GIT_COMMIT"] == head and args["GIT_TREE_STATE"] in ("clean", "dirty")
    argv = build.build_argv("debian", "localhost/base:x", "localhost/mcs-apiserver:y", args)
    assert argv[argv.index(f"GIT_COMMIT={head}") - 1] == "--build-arg"
    # the final stage (after the last FROM) turns the arguments into the environment version.py reads
    final = (ROOT / "Containerfile").read_text().rsplit("\nFROM ", 1)[1]
    assert re.search(r"^ARG GIT_COMMIT=", final, re.MULTILINE) and re.search(r"^ARG GIT_TREE_STATE=", final, re.MULTILINE)
    env = re.search(r"^ENV (.*)$", final.split("ARG GIT_TREE_STATE", 1)[1], re.MULTILINE)
    assert env is not None
    assert f"{version.COMMIT_ENV}=${{GIT_COMMIT}}" in env.group(1).split()
    assert f"{version.TREE_STATE_ENV}=${{GIT_TREE_STATE}}" in env.group(1).split()


def test_another_commit_is_another_image_even_of_the_same_files(tmp_path: Path) -> None:
    make_tree(tmp_path)
    one = build.context_digest("base:1", tmp_path, {"GIT_COMMIT": "a" * 40, "GIT_TREE_STATE": "clean"})
    assert build.context_digest("base:1", tmp_path, {"GIT_COMMIT": "b" * 40, "GIT_TREE_STATE": "clean"}) != one
    assert build.context_digest("base:1", tmp_path, {"GIT_COMMIT": "a" * 40, "GIT_TREE_STATE": "dirty"}) != one


def test_outside_a_git_checkout_the_commit_is_empty(tmp_path: Path) -> None:
    assert build.git_revision(tmp_path) == {"GIT_COMMIT": "", "GIT_TREE_STATE": ""}
