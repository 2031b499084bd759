"""Build the upstream binaries (kube-apiserver, kube-controller-manager, kubectl, etcd) from Go modules.

Nothing upstream is committed. The versions are pinned in ``upstream-versions.json``; the binaries are
built once through the Go module proxy into a cache outside the repository, keyed by version, and
reused. ``go install k8s.io/kubernetes/cmd/...@vX`` refuses to work because k8s.io/kubernetes'
go.mod replaces its ~30 staging modules with local paths, so we generate a throwaway module that
requires k8s.io/kubernetes and replaces every staging module with its published ``v0.Y.Z`` twin.
etcd's server module has its main at the module root and its replace directives are ignored as a
dependency, so requiring it at the release (plus its sibling modules at the same version) is enough.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kubectl")
STAMP = ".complete"


class BinariesError(RuntimeError):
    """The binaries are missing and cannot be built here; the message says what to do."""


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str

    @classmethod
    def pinned(cls) -> "Versions":
        data = json.loads(resources.files("mcs_apiserver").joinpath("upstream-versions.json").read_text())
        return cls(kubernetes=data["kubernetes"], etcd=data["etcd"])


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    etcd: Path


def cache_root() -> Path:
    """``$MCS_APISERVER_CACHE``, else ``$XDG_CACHE_HOME/mcs-apiserver``, else ``~/.cache/mcs-apiserver``."""
    if explicit := os.environ.get("MCS_APISERVER_CACHE"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcs-apiserver"


def _kubernetes_dir(versions: Versions) -> Path:
    return cache_root() / "bin" / f"kubernetes-{versions.kubernetes}"


def _etcd_dir(versions: Versions) -> Path:
    return cache_root() / "bin" / f"etcd-{versions.etcd}"


def _binaries(versions: Versions) -> Binaries:
    kube = _kubernetes_dir(versions)
    return Binaries(
        kube_apiserver=kube / "kube-apiserver",
        kube_controller_manager=kube / "kube-controller-manager",
        kubectl=kube / "kubectl",
        etcd=_etcd_dir(versions) / "etcd",
    )


def _complete(directory: Path) -> bool:
    return (directory / STAMP).is_file()


def find_binaries(versions: Versions | None = None) -> Binaries | None:
    """The cached binaries of the pinned versions, or None if a build is still needed."""
    versions = versions or Versions.pinned()
    if _complete(_kubernetes_dir(versions)) and _complete(_etcd_dir(versions)):
        return _binaries(versions)
    return None


def ensure_binaries(
    versions: Versions | None = None, *, out: TextIO = sys.stderr, rebuild: bool = False
) -> Binaries:
    """Return the binaries, building whatever is missing first (minutes on a cold cache)."""
    versions = versions or Versions.pinned()
    kube_dir, etcd_dir = _kubernetes_dir(versions), _etcd_dir(versions)
    if rebuild or not _complete(kube_dir):
        _build_kubernetes(versions.kubernetes, kube_dir, out)
    if rebuild or not _complete(etcd_dir):
        _build_etcd(versions.etcd, etcd_dir, out)
    return _binaries(versions)


# --- building ----------------------------------------------------------------------------------


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BinariesError(
            "Go is not installed, and the upstream binaries (kube-apiserver, kube-controller-manager, "
            "kubectl, etcd) are built from source with it. Install Go 1.26 or newer "
            "(https://go.dev/doc/install; Debian: apt-get install golang-go if recent enough), "
            "make sure `go` is on PATH, and run `mcs-apiserver binaries build` again."
        )
    return go


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CGO_ENABLED="0",
        # Never fetch another Go toolchain behind the user's back; fail clearly instead.
        GOTOOLCHAIN="local",
        GOFLAGS="-mod=mod",
        GOWORK="off",
    )
    return env


def _run(args: list[str], cwd: Path, out: TextIO) -> str:
    proc = subprocess.run(args, cwd=cwd, env=_go_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BinariesError(f"`{' '.join(args)}` failed in {cwd}:\n{proc.stderr.strip()[-4000:]}")
    return proc.stdout


def _download(module: str, version: str, workdir: Path, out: TextIO) -> dict[str, str]:
    print(f"  fetching {module}@{version} from the Go module proxy", file=out, flush=True)
    stdout = _run([_go(), "mod", "download", "-json", f"{module}@{version}"], workdir, out)
    info = json.loads(stdout)
    if info.get("Error"):
        raise BinariesError(f"cannot download {module}@{version}: {info['Error']}")
    return info


def staging_replacements(kubernetes_go_mod: str, version: str) -> list[tuple[str, str]]:
    """Every ``k8s.io/<staging> => ./staging/...`` replace of k8s.io/kubernetes' go.mod, as
    (module, published version) pairs: staging module ``v0.Y.Z`` ships with kubernetes ``v1.Y.Z``."""
    staging_version = "v0." + version.removeprefix("v").split(".", 1)[1]
    pattern = re.compile(r"^\s*(k8s\.io/[\w.\-/]+)\s+=>\s+\./staging/", re.MULTILINE)
    modules = sorted(set(pattern.findall(kubernetes_go_mod)))
    if not modules:
        raise BinariesError("found no staging replace directives in k8s.io/kubernetes' go.mod")
    return [(module, staging_version) for module in modules]


def _go_mod(module: str, requires: list[tuple[str, str]], replaces: list[tuple[str, str]]) -> str:
    go_version = _local_go_version()
    lines = [f"module {module}", "", f"go {go_version}"]
    if requires:
        lines += ["", "require ("]
        lines += [f"\t{path} {ver}" for path, ver in requires]
        lines.append(")")
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{path} => {path} {ver}" for path, ver in replaces]
        lines.append(")")
    return "\n".join(lines) + "\n"


def _local_go_version() -> str:
    raw = subprocess.run([_go(), "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
    match = re.match(r"go(\d+\.\d+(?:\.\d+)?)", raw)
    if not match:
        raise BinariesError(f"cannot tell the Go version from {raw!r}")
    return match.group(1)


def kubernetes_version_ldflags(version: str) -> list[str]:
    """What Kubernetes' own build (hack/lib/version.sh) stamps into its binaries, so that
    ``/version`` and ``kubectl version`` report the real release instead of ``v0.0.0-master``."""
    major, minor = version.removeprefix("v").split(".")[:2]
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return [
        f"-X {package}.{name}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in values.items()
    ]


def _build(
    workdir: Path, packages: list[str], output: Path, out: TextIO, label: str,
    ldflags: list[str] = (),
) -> None:
    """``go build`` the packages into ``output``, printing progress from ``go build -v``."""
    go = _go()
    print(f"  resolving the dependency graph of {label}", file=out, flush=True)
    listed = _run([go, "list", "-deps", *packages], workdir, out).split()
    total = max(len(listed), 1)
    output.mkdir(parents=True, exist_ok=True)
    flags = " ".join(["-s", "-w", *ldflags])
    args = [go, "build", "-v", "-trimpath", f"-ldflags={flags}", "-o", str(output) + "/", *packages]
    started = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=workdir, env=_go_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    built, last_report, tail = 0, 0.0, []
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-40:]
        if line and not line.startswith(("go: ", "#")) and " " not in line:
            built += 1
        now = time.monotonic()
        if now - last_report >= 15:
            last_report = now
            percent = min(99, 100 * built // total)
            print(
                f"  building {label}: ~{percent}% ({built}/{total} packages, {now - started:.0f}s)",
                file=out, flush=True,
            )
    if proc.wait() != 0:
        raise BinariesError(f"building {label} failed:\n" + "\n".join(tail))
    print(f"  built {label} in {time.monotonic() - started:.0f}s", file=out, flush=True)


def _finish(tmp_out: Path, final: Path, names: tuple[str, ...], versions_text: str) -> None:
    for name in names:
        if not (tmp_out / name).is_file():
            raise BinariesError(f"the build finished but {name} is missing in {tmp_out}")
    (tmp_out / STAMP).write_text(versions_text + "\n")
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_out, final)


def _workdir(name: str) -> Path:
    workdir = cache_root() / "build" / name
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def _build_kubernetes(version: str, final: Path, out: TextIO) -> None:
    print(f"Building Kubernetes {version} ({', '.join(KUBERNETES_COMMANDS)}); "
          "the first build takes several minutes", file=out, flush=True)
    workdir = _workdir(f"kubernetes-{version}")
    for stale in ("go.mod", "go.sum"):
        (workdir / stale).unlink(missing_ok=True)
    (workdir / "go.mod").write_text(_go_mod("mcs-apiserver.local/build", [], []))
    info = _download("k8s.io/kubernetes", version, workdir, out)
    replaces = staging_replacements(Path(info["GoMod"]).read_text(), version)
    (workdir / "go.mod").write_text(
        _go_mod("mcs-apiserver.local/build", [("k8s.io/kubernetes", version)], replaces)
    )
    tmp_out = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp_out, ignore_errors=True)
    _build(workdir, [f"k8s.io/kubernetes/cmd/{c}" for c in KUBERNETES_COMMANDS], tmp_out, out,
           f"Kubernetes {version}", kubernetes_version_ldflags(version))
    _finish(tmp_out, final, KUBERNETES_COMMANDS, f"kubernetes {version}")


def _build_etcd(version: str, final: Path, out: TextIO) -> None:
    print(f"Building etcd {version}", file=out, flush=True)
    workdir = _workdir(f"etcd-{version}")
    for stale in ("go.mod", "go.sum"):
        (workdir / stale).unlink(missing_ok=True)
    # The server module's own replace directives point at sibling directories and are ignored for
    # a dependency, so pin the sibling modules to the same release explicitly.
    siblings = ["go.etcd.io/etcd/api/v3", "go.etcd.io/etcd/client/pkg/v3", "go.etcd.io/etcd/client/v3",
                "go.etcd.io/etcd/pkg/v3"]
    requires = [("go.etcd.io/etcd/server/v3", version)] + [(m, version) for m in siblings]
    (workdir / "go.mod").write_text(_go_mod("mcs-apiserver.local/build-etcd", requires, []))
    tmp_out = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp_out, ignore_errors=True)
    _build(workdir, ["go.etcd.io/etcd/server/v3"], tmp_out, out, f"etcd {version}")
    # go names the binary "server" (the module path minus its major version): give it its name.
    (tmp_out / "server").rename(tmp_out / "etcd")
    _finish(tmp_out, final, ("etcd",), f"etcd {version}")


def describe(binaries: Binaries) -> str:
    return "\n".join(
        f"{name}: {path}" for name, path in (
            ("kube-apiserver", binaries.kube_apiserver),
            ("kube-controller-manager", binaries.kube_controller_manager),
            ("kubectl", binaries.kubectl),
            ("etcd", binaries.etcd),
        )
    )

