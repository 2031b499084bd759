"""Write kubeconfig files with embedded certificates, so they keep working when copied elsewhere."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class KubeContext:
    name: str
    server: str


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write(path: Path, contexts: list[KubeContext], *, ca_file: Path, user: str, cert_file: Path,
          key_file: Path, current: str | None = None) -> None:
    """One cluster and one context per entry, all sharing one user; written 0600 (it holds a key)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {"name": c.name, "cluster": {"server": c.server, "certificate-authority-data": _b64(ca_file)}}
            for c in contexts
        ],
        "users": [
            {"name": user, "user": {"client-certificate-data": _b64(cert_file),
                                    "client-key-data": _b64(key_file)}}
        ],
        "contexts": [{"name": c.name, "context": {"cluster": c.name, "user": user}} for c in contexts],
        "current-context": current or (contexts[0].name if contexts else ""),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    os.replace(tmp, path)
