"""Build the upstream binaries (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd,
kwok, coredns) from Go modules.

Nothing upstream is committed. The versions are pinned in ``upstream-versions.json``; the binaries are
built once through the Go module proxy into a cache outside the repository, keyed by version, and
reused. ``go install k8s.io/kubernetes/cmd/...@vX`` refuses to work because k8s.io/kubernetes'
go.mod replaces its ~30 staging modules with local paths, so we generate a throwaway module that
requires k8s.io/kubernetes and replaces every staging module with its published ``v0.Y.Z`` twin.
etcd's server module has its main at the module root and its replace directives are ignored as a
dependency, so requiring it at the release (plus its sibling modules at the same version) is enough.
kwok and coredns have no such replaces: ``go install module/cmd@version`` builds them as released.

Each build directory has a completion stamp that records which binaries it holds, so a cache made
before a binary joined the list (e.g. a Kubernetes build without kube-scheduler) gets just the
missing one added (the Go build cache makes that quick) instead of failing later on a missing file.
kwok exits with "no stages found" unless it is given Stage objects: its own module ships the usual
"fast" node and pod stages, so the kwok build copies them from the downloaded module into the cache
(``stages.yaml`` beside the binary) rather than this repository keeping a copy.
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
from typing import Sequence, TextIO

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
KWOK_MODULE = "sigs.k8s.io/kwok"
KWOK_STAGE_DIRS = ("kustomize/stage/node/fast", "kustomize/stage/pod/fast")
KWOK_STAGES = "stages.yaml"
COREDNS_MODULE = "github.com/coredns/coredns"
STAMP = ".complete"


class BinariesError(RuntimeError):
    """The binaries are missing and cannot be built here; the message says what to do."""


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str
    kwok: str
    coredns: str

    @classmethod
    def pinned(cls) -> "Versions":
        data = json.loads(resources.files("mcs_apiserver").joinpath("upstream-versions.json").read_text())
        return cls(kubernetes=data["kubernetes"], etcd=data["etcd"], kwok=data["kwok"], coredns=data["coredns"])


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    #: kwok's own "fast" node and pod Stage objects, copied from its module at build time.
    kwok_stages: Path
    coredns: Path


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


def _kwok_dir(versions: Versions) -> Path:
    return cache_root() / "bin" / f"kwok-{versions.kwok}"


def _coredns_dir(versions: Versions) -> Path:
    return cache_root() / "bin" / f"coredns-{versions.coredns}"


def _binaries(versions: Versions) -> Binaries:
    kube = _kubernetes_dir(versions)
    return Binaries(
        kube_apiserver=kube / "kube-apiserver",
        kube_controller_manager=kube / "kube-controller-manager",
        kube_scheduler=kube / "kube-scheduler",
        kubectl=kube / "kubectl",
        etcd=_etcd_dir(versions) / "etcd",
        kwok=_kwok_dir(versions) / "kwok",
        kwok_stages=_kwok_dir(versions) / KWOK_STAGES,
        coredns=_coredns_dir(versions) / "coredns",
    )


def _builds(versions: Versions) -> list[tuple[Path, tuple[str, ...]]]:
    """Every cache directory with the files a finished build leaves in it."""
    return [
        (_kubernetes_dir(versions), KUBERNETES_COMMANDS),
        (_etcd_dir(versions), ("etcd",)),
        (_kwok_dir(versions), ("kwok", KWOK_STAGES)),
        (_coredns_dir(versions), ("coredns",)),
    ]


def missing(directory: Path, names: tuple[str, ...]) -> tuple[str, ...]:
    """What ``directory`` still lacks of ``names``: everything without a completion stamp (a build
    that never finished is not trusted), else the names the stamp does not list or whose file is gone.
    Stamps written before they listed their files (plain text) count as listing what is present."""
    stamp = directory / STAMP
    if not stamp.is_file():
        return names
    try:
        recorded = set(json.loads(stamp.read_text())["files"])
    except (ValueError, KeyError, TypeError):
        recorded = set(names)
    return tuple(n for n in names if n not in recorded or not (directory / n).is_file())


def find_binaries(versions: Versions | None = None) -> Binaries | None:
    """The cached binaries of the pinned versions, or None if a build is still needed."""
    versions = versions or Versions.pinned()
    if any(missing(directory, names) for directory, names in _builds(versions)):
        return None
    return _binaries(versions)


def ensure_binaries(
    versions: Versions | None = None, *, out: TextIO = sys.stderr, rebuild: bool = False
) -> Binaries:
    """Return the binaries, building whatever is missing first (minutes on a cold cache)."""
    versions = versions or Versions.pinned()
    kube_dir = _kubernetes_dir(versions)
    kube_missing = KUBERNETES_COMMANDS if rebuild else missing(kube_dir, KUBERNETES_COMMANDS)
    if kube_missing:
        _build_kubernetes(versions.kubernetes, kube_dir, kube_missing, out)
    if rebuild or missing(_etcd_dir(versions), ("etcd",)):
        _build_etcd(versions.etcd, _etcd_dir(versions), out)
    if rebuild or missing(_kwok_dir(versions), ("kwok", KWOK_STAGES)):
        _build_kwok(versions.kwok, _kwok_dir(versions), out)
    if rebuild or missing(_coredns_dir(versions), ("coredns",)):
        _build_coredns(versions.coredns, _coredns_dir(versions), out)
    return _binaries(versions)


# --- building ----------------------------------------------------------------------------------


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BinariesError(
            "Go is not installed, and the upstream binaries (kube-apiserver, kube-controller-manager, "
            "kube-scheduler, kubectl, etcd, kwok, coredns) are built from source with it. Install Go 1.26 or newer "
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
    ldflags: Sequence[str] = (),
) -> None:
    """``go build`` the packages of the module in ``workdir`` into ``output``."""
    go = _go()
    print(f"  resolving the dependency graph of {label}", file=out, flush=True)
    total = len(_run([go, "list", "-deps", *packages], workdir, out).split())
    output.mkdir(parents=True, exist_ok=True)
    flags = " ".join(["-s", "-w", *ldflags])
    _go_with_progress([go, "build", "-v", "-trimpath", f"-ldflags={flags}", "-o", str(output) + "/", *packages],
                      workdir, _go_env(), out, label, total)


def _install(module_package: str, version: str, output: Path, out: TextIO, label: str) -> None:
    """``go install package@version`` into ``output``: the module's own go.mod decides every
    dependency, exactly as its release was built. Used for modules without replace directives."""
    output.mkdir(parents=True, exist_ok=True)
    env = _go_env()
    env.update(GOBIN=str(output), GOFLAGS="")  # -mod=mod is refused with package@version
    _go_with_progress([_go(), "install", "-v", "-trimpath", "-ldflags=-s -w", f"{module_package}@{version}"],
                      cache_root(), env, out, label, None)


def _go_with_progress(args: list[str], cwd: Path, env: dict[str, str], out: TextIO, label: str,
                      total: int | None) -> None:
    """Run a ``go build -v``/``go install -v`` and print a progress line every 15 s from the
    package names it reports (as a percentage when the size of the graph is known)."""
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    built, last_report, tail = 0, 0.0, list[str]()
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-40:]
        if line and not line.startswith(("go: ", "#")) and " " not in line:
            built += 1
        now = time.monotonic()
        if now - last_report >= 15:
            last_report = now
            done = f"~{min(99, 100 * built // total)}% ({built}/{total} packages)" if total else f"{built} packages"
            print(f"  building {label}: {done}, {now - started:.0f}s", file=out, flush=True)
    if proc.wait() != 0:
        raise BinariesError(f"building {label} failed:\n" + "\n".join(tail))
    print(f"  built {label} in {time.monotonic() - started:.0f}s", file=out, flush=True)


def _finish(tmp_out: Path, final: Path, names: tuple[str, ...], version: str) -> None:
    """Move a finished build into place and stamp it with the files it holds. When ``final`` is
    already a stamped build (the missing binaries were built alone), the new files join it."""
    for name in names:
        if not (tmp_out / name).is_file():
            raise BinariesError(f"the build finished but {name} is missing in {tmp_out}")
    final.parent.mkdir(parents=True, exist_ok=True)
    if (final / STAMP).is_file():
        for name in names:
            os.replace(tmp_out / name, final / name)
        shutil.rmtree(tmp_out, ignore_errors=True)
    else:
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp_out, final)
    files = sorted(p.name for p in final.iterdir() if p.is_file() and p.name != STAMP)
    (final / STAMP).write_text(json.dumps({"version": version, "files": files}) + "\n")


def _workdir(name: str) -> Path:
    workdir = cache_root() / "build" / name
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def _partial(final: Path) -> Path:
    tmp_out = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp_out, ignore_errors=True)
    return tmp_out


def _build_kubernetes(version: str, final: Path, commands: tuple[str, ...], out: TextIO) -> None:
    adding = (final / STAMP).is_file() and commands != KUBERNETES_COMMANDS
    what = ("adding " if adding else "") + ", ".join(commands)
    print(f"Building Kubernetes {version} ({what}); "
          + ("the Go build cache makes this quick" if adding else "the first build takes several minutes"),
          file=out, flush=True)
    workdir = _workdir(f"kubernetes-{version}")
    for stale in ("go.mod", "go.sum"):
        (workdir / stale).unlink(missing_ok=True)
    (workdir / "go.mod").write_text(_go_mod("mcs-apiserver.local/build", [], []))
    info = _download("k8s.io/kubernetes", version, workdir, out)
    replaces = staging_replacements(Path(info["GoMod"]).read_text(), version)
    (workdir / "go.mod").write_text(
        _go_mod("mcs-apiserver.local/build", [("k8s.io/kubernetes", version)], replaces)
    )
    tmp_out = _partial(final)
    _build(workdir, [f"k8s.io/kubernetes/cmd/{c}" for c in commands], tmp_out, out,
           f"Kubernetes {version}", kubernetes_version_ldflags(version))
    _finish(tmp_out, final, commands, f"kubernetes {version}")


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
    tmp_out = _partial(final)
    _build(workdir, ["go.etcd.io/etcd/server/v3"], tmp_out, out, f"etcd {version}")
    # go names the binary "server" (the module path minus its major version): give it its name.
    (tmp_out / "server").rename(tmp_out / "etcd")
    _finish(tmp_out, final, ("etcd",), f"etcd {version}")


def kwok_stages(module_dir: Path) -> str:
    """kwok's "fast" node and pod Stage objects from its downloaded module, as one YAML stream."""
    documents = []
    for stage_dir in KWOK_STAGE_DIRS:
        files = sorted((module_dir / stage_dir).glob("*.yaml"))
        stages = [f for f in files if f.name != "kustomization.yaml"]
        if not stages:
            raise BinariesError(f"found no Stage objects in {module_dir / stage_dir}")
        documents += [f.read_text().strip() for f in stages]
    return "\n---\n".join(documents) + "\n"


def _build_kwok(version: str, final: Path, out: TextIO) -> None:
    print(f"Building kwok {version}", file=out, flush=True)
    workdir = _workdir(f"kwok-{version}")
    (workdir / "go.mod").write_text(_go_mod("mcs-apiserver.local/build-kwok", [], []))
    info = _download(KWOK_MODULE, version, workdir, out)
    tmp_out = _partial(final)
    _install(f"{KWOK_MODULE}/cmd/kwok", version, tmp_out, out, f"kwok {version}")
    (tmp_out / KWOK_STAGES).write_text(kwok_stages(Path(info["Dir"])))
    _finish(tmp_out, final, ("kwok", KWOK_STAGES), f"kwok {version}")


def _build_coredns(version: str, final: Path, out: TextIO) -> None:
    print(f"Building CoreDNS {version}", file=out, flush=True)
    tmp_out = _partial(final)
    _install(COREDNS_MODULE, version, tmp_out, out, f"CoreDNS {version}")
    _finish(tmp_out, final, ("coredns",), f"coredns {version}")


def describe(binaries: Binaries) -> str:
    return "\n".join(
        f"{name}: {path}" for name, path in (
            ("kube-apiserver", binaries.kube_apiserver),
            ("kube-controller-manager", binaries.kube_controller_manager),
            ("kube-scheduler", binaries.kube_scheduler),
            ("kubectl", binaries.kubectl),
            ("etcd", binaries.etcd),
            ("kwok", binaries.kwok),
            ("kwok-stages", binaries.kwok_stages),
            ("coredns", binaries.coredns),
        )
    )
