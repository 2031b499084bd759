"""The base layer: what any Kubernetes API server or client needs, with nothing of this project.

The client and kubeconfig loading, Status errors, time formats, name validation, label and field
selectors, request info and the typed wire formats. It imports nothing else of ``mcs_apiserver``
(an import-linter contract in pyproject.toml checks it), so every layer above may use it.
"""
