"""``make image``: build the mcs-apiserver image (the Containerfile) with buildah, cached.

Two bases, both Debian bookworm with Python 3.11:

- ``--base debian`` (the default of ``make image``): a base made here from Debian packages by mmdebstrap
  and imported into buildah, for machines (like CI's) that reach Debian's archive and PyPI but no
  container registry;
- ``--base IMAGE``: any other base, e.g. the Containerfile's own default
  ``docker.io/library/python:3.11-slim-bookworm``.

Both are cached in a buildah store of their own under ``~/.cache/mcs-apiserver/containers`` (vfs, so
that it works wherever buildah runs, inside containers too), tagged by a hash of what they are made
from: the Debian base by its recipe below, the image by its base, the Containerfile and every file of
the build context. A second build of the same sources is a look-up; a new build removes the older
tags it replaces. buildah and mmdebstrap are installed with apt-get when missing (as root).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTAINERFILE = ROOT / "Containerfile"
IGNOREFILE = ROOT / ".containerignore"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mcs-apiserver" / "containers"

IMAGE_REPOSITORY = "localhost/mcs-apiserver"
BASE_REPOSITORY = "localhost/mcs-apiserver-base"

# The Debian base: bookworm's Python 3.11 is the Python of the Containerfile's default base, so the
# same cp311 wheels install on both. No Recommends, no documentation, man pages or translations.
DEBIAN_RELEASE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEBIAN_SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    # The archive may be served from a dated snapshot whose Release files are past their Valid-Until.
    "--aptopt=Acquire::Check-Valid-Until \"false\"",
    "--aptopt=APT::Install-Recommends \"false\"",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    # usrmerge (installed to merge /usr) pulls the whole of perl (45 MiB); nothing needs them afterwards.
    "--customize-hook=chroot \"$1\" apt-get purge --yes --quiet --autoremove"
    " usrmerge perl libperl5.36 perl-modules-5.36",
)



class ImageBuildError(Exception):
    """A step of the build failed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Built:
    """An image in the store: its name (repository:tag), size in bytes, and whether it was built now."""

    name: str
    size: int
    built: bool


def buildah_argv(*args: str) -> list[str]:
    """A buildah command on the project's own store."""
    return ["buildah", "--root", str(CACHE / "storage"), "--runroot", str(CACHE / "run"),
            "--storage-driver", "vfs", *args]


def _run(argv: list[str], what: str, **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, text=True, **kwargs)
    if proc.returncode != 0:
        detail = (proc.stderr or "").strip()[-2000:] if isinstance(proc.stderr, str) else ""
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}): {' '.join(argv[:6])} ...\n{detail}")
    return proc


def _progress(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)


def ensure_tools(*commands: str) -> None:
    """Install the Debian packages of the missing commands (buildah, mmdebstrap) with apt-get."""
    missing = [c for c in commands if shutil.which(c) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ImageBuildError(f"{', '.join(missing)} not found: install the Debian package(s) "
                              f"{' '.join(missing)} (apt-get install {' '.join(missing)})")
    _progress(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], "apt-get update", env=env, capture_output=True)
    _run(["apt-get", "install", "-y", "-q", *missing],
         f"apt-get install {' '.join(missing)}", env=env, capture_output=True)


def image_size(name: str) -> int:
    """The size of the image's layers, uncompressed, in bytes."""
    proc = _run(buildah_argv("inspect", "--type", "image", name), f"buildah inspect {name}", capture_output=True)
    manifest = json.loads(json.loads(proc.stdout)["Manifest"])
    return sum(int(layer["size"]) for layer in manifest["layers"])


def _exists(name: str) -> bool:
    return subprocess.run(buildah_argv("inspect", "--type", "image", name), capture_output=True).returncode == 0


def _remove_other_tags(repository: str, keep: str) -> None:
    """Drop the older builds of ``repository``: the cache keeps one image per repository."""
    proc = _run(buildah_argv("images", "--json"), "buildah images", capture_output=True)
    for image in json.loads(proc.stdout or "[]"):
        names = [n for n in image.get("names") or [] if n.startswith(repository + ":")]
        if names and keep not in names:
            subprocess.run(buildah_argv("rmi", "--force", image["id"]), capture_output=True)


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:16]


def debian_base() -> Built:
    """The Debian base (mmdebstrap, then imported with ``buildah from scratch`` + ``add``), cached."""
    recipe = json.dumps([DEBIAN_RELEASE, DEBIAN_PACKAGES, DEBIAN_SOURCES, MMDEBSTRAP_OPTIONS]).encode()
    name = f"{BASE_REPOSITORY}:{DEBIAN_RELEASE}-{_digest(recipe)}"
    ensure_tools("buildah")
    if _exists(name):
        return Built(name, image_size(name), built=False)
    ensure_tools("mmdebstrap")
    started = time.monotonic()
    _progress(f"making the Debian {DEBIAN_RELEASE} base with mmdebstrap ({', '.join(DEBIAN_PACKAGES)})")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        _run(["mmdebstrap", "--quiet", *MMDEBSTRAP_OPTIONS, f"--include={','.join(DEBIAN_PACKAGES)}",
              DEBIAN_RELEASE, str(tarball), *DEBIAN_SOURCES], "mmdebstrap", capture_output=True)
        container = _run(buildah_argv("from", "scratch"), "buildah from scratch",
                         capture_output=True).stdout.strip()
        try:
            _run(buildah_argv("add", container, str(tarball), "/"), "buildah add", capture_output=True)
            _run(buildah_argv("config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                              "--env", "LANG=C.UTF-8", "--cmd", "/usr/bin/python3", container),
                 "buildah config", capture_output=True)
            _run(buildah_argv("commit", "--quiet", "--rm", container, name), "buildah commit", capture_output=True)
        except BaseException:
            subprocess.run(buildah_argv("rm", container), capture_output=True)
            raise
    _remove_other_tags(BASE_REPOSITORY, name)
    _progress(f"base {name} made in {time.monotonic() - started:.0f}s")
    return Built(name, image_size(name), built=True)


def context_entries(ignorefile: str) -> list[str]:
    """The files and folders the build context keeps: the ``!`` lines of an allow-list .containerignore."""
    return [line[1:].strip() for line in ignorefile.splitlines() if line.startswith("!")]


def context_digest(base: str, root: Path = ROOT, args: Mapping[str, str] | None = None) -> str:
    """What the image is made from: the base, the build arguments, the Containerfile, the ignore file
    and the context files (bytecode left out, as .containerignore leaves it out)."""
    containerfile, ignorefile = root / CONTAINERFILE.name, root / IGNOREFILE.name
    parts = [base.encode(), json.dumps(dict(sorted((args or {}).items()))).encode(), containerfile.read_bytes(),
             ignorefile.read_bytes()]
    for entry in context_entries(ignorefile.read_text()):
        path = root / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            parts += [str(file.relative_to(root)).encode(), file.read_bytes()]
    return _digest(*parts)


def git_revision(root: Path = ROOT) -> dict[str, str]:
    """The build arguments that tell the image its source: ``GIT_COMMIT`` (``git rev-parse HEAD``) and
    ``GIT_TREE_STATE`` ("dirty" when tracked files differ from it), both empty outside a git checkout.
    The Containerfile turns them into the environment ``mcs_apiserver.version`` reads (``/version``,
    ``--version``, ``mcs_apiserver_build_info``)."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except OSError:
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"GIT_COMMIT": "", "GIT_TREE_STATE": ""}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"GIT_COMMIT": commit, "GIT_TREE_STATE": "dirty" if dirty else "clean"}


def build_argv(base: str, base_name: str, name: str, args: Mapping[str, str]) -> list[str]:
    """``buildah build`` of the Containerfile from ``base_name`` into ``name``, with ``args``."""
    argv = buildah_argv("build", "--isolation", "chroot", "--network", "host", "--layers=false", "--force-rm",
                        "--pull-never" if base == "debian" else "--pull", "--quiet",
                        "--build-arg", f"BASE={base_name}", "--file", str(CONTAINERFILE), "--tag", name)
    for key, value in sorted(args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    return argv


def _ca_bundle() -> Path | None:
    """The CA bundle this host's pip trusts, handed to the build as a secret (TLS-intercepting proxies)."""
    for variable in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(variable)
        if value and Path(value).is_file():
            return Path(value)
    default = Path("/etc/ssl/certs/ca-certificates.crt")
    return default if default.is_file() else None


def build(base: str = "debian") -> Built:
    """The image for ``base`` ("debian" or an image name), built unless the same sources are cached."""
    ensure_tools("buildah")
    base_name = debian_base().name if base == "debian" else base
    # The commit is part of what the image is: another commit is another image, even of the same files.
    args = git_revision()
    name = f"{IMAGE_REPOSITORY}:{context_digest(base_name, args=args)}"
    if _exists(name):
        return Built(name, image_size(name), built=False)
    started = time.monotonic()
    _progress(f"building {name} from {base_name} at commit {args['GIT_COMMIT'][:12] or '(unknown)'}")
    argv = build_argv(base, base_name, name, args)
    bundle = _ca_bundle()
    if bundle:
        argv += ["--secret", f"id=ca-bundle,src={bundle}"]
    what = "buildah build" if base == "debian" else \
        f"buildah build from {base} (if no registry is reachable, --base debian makes a base from Debian packages)"
    _run([*argv, str(ROOT)], what, capture_output=True)
    _remove_other_tags(IMAGE_REPOSITORY, name)
    _progress(f"built {name} in {time.monotonic() - started:.0f}s")
    return Built(name, image_size(name), built=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image/build.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="debian",
                        help='"debian" (made here from Debian packages, the default) or a base image name, '
                             "e.g. docker.io/library/python:3.11-slim-bookworm")
    args = parser.parse_args(argv)
    try:
        image = build(args.base)
    except ImageBuildError as error:
        print(f"image: error: {error}", file=sys.stderr)
        return 1
    print(image.name)
    _progress(f"{image.name}: {image.size / 2**20:.0f} MiB{'' if image.built else ' (cached)'}; "
              f"push it with: {' '.join(buildah_argv('push', image.name, 'docker://REGISTRY/mcs-apiserver:TAG'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
