"""What a request asks for, computed once per request, like kube-apiserver's RequestInfo filter.

The request info middleware (``api.app``) runs first and leaves a :class:`RequestInfo` in
``request[REQUEST_INFO]``; authorization (``auth.authorize``), the limits (``api.limits``), metrics
and the resource handlers all read it (:func:`info_of`) instead of each parsing the path and query
their own way. A module of its own below ``api`` and ``auth``, which both read it. It follows
``k8s.io/apiserver/pkg/endpoints/request.RequestInfoFactory.NewRequestInfo``:

* ``/apis/<g>/<v>/[namespaces/<ns>/]<resource>[/<name>[/<sub>]]`` (and ``/api/<v>/...``) are
  resource requests: POST create, GET/HEAD get (list or watch without a name), PUT update, PATCH
  patch, DELETE delete (deletecollection without a name); anything else is a non-resource request
  whose verb is the lower-cased method;
* the list options are decoded once (:class:`ListOptions`). As in kube-apiserver, options that do
  not decode leave the verb ``list`` (or ``watch`` if ``watch`` says so) and no pinned name, and the
  error is kept for the handler, which answers it with 400 *after* authentication: a stranger with a
  bad query gets 401, not a hint about our parser.

Booleans in the query follow apimachinery's query conversion: ``""``, ``0`` and ``false`` (any case)
are false, anything else is true, so ``?watch=t``, ``?watch=1`` and ``?watch=true`` are all watches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web


__all__ = [
    "REQUEST_INFO",
    "FieldSelectorSyntaxError",
    "ListOptions",
    "RequestInfo",
    "RequestInfoError",
    "field_terms",
    "info_of",
    "request_info",
]

_API_PREFIXES = frozenset({"api", "apis"})
_GROUPLESS_API_PREFIXES = frozenset({"api"})
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
#: Verbs that change nothing: they share ``--max-requests-inflight``; every other verb (the webhooks'
#: POSTs included) shares ``--max-mutating-requests-inflight``, as in kube-apiserver.
READ_ONLY_VERBS = frozenset({"get", "list", "watch"})
_INT64 = (-(2**63), 2**63 - 1)


class RequestInfoError(ValueError):
    """A resource path no verb or resource can be read from (kube-apiserver answers 500)."""


class FieldSelectorSyntaxError(ValueError):
    """A field selector that does not parse (``kube.selectors`` answers it with 400)."""


# --- field selectors (k8s.io/apimachinery/pkg/fields/selector.go) ---------------------------------


def field_terms(selector: str | None) -> list[tuple[str, str, str]]:
    """Tokenize a field selector like ``fields.ParseSelector``: the terms in sorted order, each as
    ``(field, operator, value)`` with the value unescaped and ``==`` normalised to ``=``.

    The one tokenizer of field selectors: the request info (which name a list pins, for
    authorization) and ``kube.selectors`` (which fields a resource supports) both use it. A term with
    neither field nor value (``fieldSelector==``) selects everything, as in kube-apiserver. Raises
    :class:`FieldSelectorSyntaxError`.
    """
    if not selector:
        return []
    terms: list[tuple[str, str, str]] = []
    for part in sorted(_split_terms(selector)):
        if part == "":
            continue
        split = _split_term(part)
        if split is None:
            raise FieldSelectorSyntaxError(f"invalid selector: '{selector}'; can't understand '{part}'")
        lhs, op, rhs = split
        value = _unescape(rhs)
        name = lhs.strip()
        if not name and not value:
            continue
        terms.append((name, "!=" if op == "!=" else "=", value))
    return terms


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not backslash-escaped (escapes are kept for :func:`_unescape`)."""
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, ch in enumerate(selector):
        if in_slash:
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """First occurrence of ``!=``, ``==`` or ``=`` (checked in that order at each position)."""
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _unescape(value: str) -> str:
    if "\\" not in value and "," not in value and "=" not in value:
        return value
    out: list[str] = []
    in_slash = False
    for ch in value:
        if in_slash:
            if ch in "\\,=":
                out.append(ch)
            else:
                raise FieldSelectorSyntaxError(f"invalid field selector: invalid escape sequence: \\{ch}")
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            raise FieldSelectorSyntaxError(f"invalid field selector: unescaped character in value: {ch}")
        else:
            out.append(ch)
    if in_slash:
        raise FieldSelectorSyntaxError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class ListOptions:
    """The query of a get, list or watch, decoded (``metav1.ListOptions``); strings stay raw."""

    watch: bool = False
    label_selector: str = ""
    field_selector: str = ""
    #: (field, operator, value) terms of ``field_selector``, sorted; see ``selectors.field_terms``.
    field_terms: tuple[tuple[str, str, str], ...] = ()
    resource_version: str | None = None
    resource_version_match: str = ""
    limit: int = 0  # 0 or negative: no limit
    continue_token: str = ""
    timeout_seconds: int | None = None
    allow_watch_bookmarks: bool = False
    #: None when absent (or empty): "absent" and "false" mean different things to a watch.
    send_initial_events: bool | None = None

    def exact(self, field_name: str) -> str | None:
        """The value the selector pins ``field_name`` to (``metadata.name=x``), if any."""
        for name, operator, value in self.field_terms:
            if name == field_name and operator == "=":
                return value
        return None


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a request does: kube's ``RequestInfo`` plus its decoded list options.

    Equality and hashing use the authorization attributes only (not the options), so that the
    authorizer can cache decisions by the info itself: the pages of one paginated list share one.
    """

    verb: str
    path: str
    resource_request: bool = False
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    options: ListOptions = field(default_factory=ListOptions, compare=False)
    #: Why the query does not decode (the handler answers 400 with it); "" when it does.
    options_error: str = field(default="", compare=False)
    #: ``name`` is pinned by ``fieldSelector=metadata.name=``, not named by the path: still a
    #: collection request (a list or watch of at most one object).
    name_from_selector: bool = field(default=False, compare=False)

    @property
    def read_only(self) -> bool:
        return self.verb in READ_ONLY_VERBS

    @property
    def long_running(self) -> bool:
        """A watch: counted apart from the in-flight limits, as kube-apiserver does."""
        return self.verb == "watch"


def parse_bool(value: str) -> bool:
    """apimachinery's query boolean: false for "", "0" and "false" (any case), true otherwise."""
    return not (value == "" or value == "0" or value.lower() == "false")


def _int64(query: Mapping[str, str], key: str) -> int | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw, 10)
    except ValueError:
        raise ValueError(f"invalid value for {key}: {raw[:64]!r}: must be an integer") from None
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"invalid value for {key}: {raw[:64]!r}: value out of range")
    return value


def list_options(query: Mapping[str, str]) -> ListOptions:
    """Decode the list options of a query; ``ValueError`` or ``SelectorError`` if they do not."""
    field_selector = query.get("fieldSelector", "")
    send_initial = query.get("sendInitialEvents")
    return ListOptions(
        watch=parse_bool(query.get("watch", "")),
        label_selector=query.get("labelSelector", ""),
        field_selector=field_selector,
        field_terms=tuple(field_terms(field_selector)),
        resource_version=query.get("resourceVersion"),
        resource_version_match=query.get("resourceVersionMatch", ""),
        limit=_int64(query, "limit") or 0,
        continue_token=query.get("continue", ""),
        timeout_seconds=_int64(query, "timeoutSeconds"),
        allow_watch_bookmarks=parse_bool(query.get("allowWatchBookmarks", "")),
        send_initial_events=None if not send_initial else parse_bool(send_initial),
    )


def request_info(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    """Classify a request like ``RequestInfoFactory.NewRequestInfo``; see the module docstring."""
    parts = path.strip("/").split("/") if path.strip("/") else []
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return RequestInfo(verb=method.lower(), path=path)
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix not in _GROUPLESS_API_PREFIXES:
        if len(parts) < 3:
            return RequestInfo(verb=method.lower(), path=path)
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]

    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            raise RequestInfoError(f"unable to determine kind and namespace from url, {path}")
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")

    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        # a namespaced resource, unless it is the namespace's own subresource (namespaces/x/status)
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 and verb != "proxy" else ""

    options, error, from_selector = ListOptions(), "", False
    if method in ("GET", "HEAD"):
        try:
            options = list_options(query)
        except ValueError as failure:  # FieldSelectorSyntaxError included
            error = str(failure)
        if error:
            # As kube-apiserver: the options are unusable, but a watch is still a watch.
            options = ListOptions(watch="watch" in query and query["watch"].lower() not in ("0", "false"))
    if not name and verb == "get":
        verb = "watch" if options.watch else "list"
        pinned = options.exact("metadata.name")
        if pinned and pinned not in (".", "..") and "/" not in pinned and "%" not in pinned:
            name, from_selector = pinned, True
    elif verb == "get" and options.watch:
        verb = "watch"  # a watch of one named object (kube-apiserver serves it as a watch too)
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(
        verb=verb, path=path, resource_request=True, api_group=group, api_version=version,
        namespace=namespace, resource=resource, subresource=subresource, name=name,
        options=options, options_error=error, name_from_selector=from_selector,
    )


#: Where the middleware leaves the request info for everything after it.
REQUEST_INFO: web.RequestKey[RequestInfo] = web.RequestKey("request_info", RequestInfo)


def info_of(request: web.Request) -> RequestInfo:
    """The request's info: the one the middleware computed (or computed now, for an application
    assembled without the middleware, e.g. in a test). Raises :class:`RequestInfoError`."""
    info = request.get(REQUEST_INFO)
    if info is None:
        info = request[REQUEST_INFO] = request_info(request.method, request.path, request.query)
    return info
