"""Label and field selectors, parsed like ``k8s.io/apimachinery/pkg/{labels,fields}`` and compiled once.

Label selectors::

    k=v  k==v  k!=v  k in (a,b)  k notin (a,b)  k  !k  k>1  k<1     (comma = AND, whitespace tolerated)

Keys and values are validated like apimachinery (qualified names, label values) and every error message
is the one kube-apiserver gives, e.g. ``unable to parse requirement: <nil>: Invalid value: "a/b/c": ...``
(the ``<nil>:`` is what kube-apiserver really prints: the parser has no field path).

Field selectors::

    f=v  f==v  f!=v     (comma = AND; ``\\``, ``,`` and ``=`` escaped with a backslash in values)

Supported fields are the caller's table (:data:`COMMON_FIELDS`, ``metadata.name`` and
``metadata.namespace``, plus its own); anything else is ``field label not supported: <f>``.

Errors raise :class:`SelectorError`, a :class:`~mcs_apiserver.kube.status.StatusError` carrying a 400
``BadRequest``. :func:`compile_selectors` returns one predicate over whole objects for the list/watch
path; parsing happens once per request, matching is a few dict lookups per object.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from mcs_apiserver.kube.names import DNS1123_SUBDOMAIN_FMT, DNS1123_SUBDOMAIN_MAX_LENGTH, DNS1123_SUBDOMAIN_RE
from mcs_apiserver.kube.status import StatusError, bad_request
from mcs_apiserver.kube.requestinfo import FieldSelectorSyntaxError
from mcs_apiserver.kube.requestinfo import field_terms as _field_terms

__all__ = [
    "SelectorError",
    "Requirement",
    "LabelSelector",
    "FieldSelector",
    "FieldRequirement",
    "parse_label_selector",
    "field_terms",
    "parse_field_selector",
    "compile_selectors",
    "validate_label_key",
    "validate_label_value",
    "COMMON_FIELDS",
    "FieldGetter",
    "Fields",
]

Labels = Mapping[str, str]
ObjectPredicate = Callable[[Mapping[str, Any]], bool]


class SelectorError(StatusError):
    """A label or field selector that kube-apiserver would reject with 400 ``BadRequest``."""

    def __init__(self, message: str) -> None:
        super().__init__(bad_request(message))
        self.message = message


# --- validation (k8s.io/apimachinery/pkg/util/validation) --------------------------------------

_QNAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_RE: Final = re.compile(f"^{_QNAME_FMT}$")
_QNAME_ERR: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT: Final = f"({_QNAME_FMT})?"
_LABEL_VALUE_RE: Final = re.compile(f"^{_LABEL_VALUE_FMT}$")
_LABEL_VALUE_ERR: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_ERR: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    """``validation.RegexError``, including its odd ``', or '`` spacing."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    text = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{fmt}')"


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def _is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(_max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def validate_label_key(key: str) -> list[str]:
    """``validation.IsQualifiedName``: ``[prefix/]name``; returns the error strings (empty when valid)."""
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in _is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + _regex_error(_QNAME_ERR, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len_error(63))
    if not _QNAME_RE.match(name):
        errs.append("name part " + _regex_error(_QNAME_ERR, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def validate_label_value(value: str) -> list[str]:
    """``validation.IsValidLabelValue``; returns the error strings (empty when valid)."""
    errs: list[str] = []
    if len(value) > 63:
        errs.append(_max_len_error(63))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(_regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _go_quote(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _field_invalid(path: str, value: str, errs: list[str]) -> str:
    """``field.Invalid(path, value, strings.Join(errs, "; ")).Error()``."""
    return f"{path}: Invalid value: {_go_quote(value)}: {'; '.join(errs)}"


# --- label selector lexer and parser (k8s.io/apimachinery/pkg/labels/selector.go) --------------

# Tokens.
_ERROR, _EOS, _CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT, _ID, _IN, _LT, _NEQ, _NOTIN, _OPEN = range(14)

_STRING_TO_TOKEN: Final = {
    ")": _CLOSE,
    ",": _COMMA,
    "!": _NOT,
    "==": _DEQ,
    "=": _EQ,
    ">": _GT,
    "in": _IN,
    "<": _LT,
    "!=": _NEQ,
    "notin": _NOTIN,
    "(": _OPEN,
}
_SPECIAL: Final = frozenset("=!(),><")
_WHITESPACE: Final = frozenset(" \t\r\n")

#: Operator names as apimachinery's ``selection.Operator`` spells them.
IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN, EXISTS, DOES_NOT_EXIST = (
    "in",
    "notin",
    "=",
    "==",
    "!=",
    "gt",
    "lt",
    "exists",
    "!",
)
_BINARY_OPERATORS: Final = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)


def _lex(selector: str) -> list[tuple[int, str]]:
    items: list[tuple[int, str]] = []
    pos = 0
    n = len(selector)
    while True:
        while pos < n and selector[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            items.append((_EOS, ""))
            return items
        ch = selector[pos]
        if ch in _SPECIAL:
            # Longest run of special symbols that still forms a known token.
            buffer = ""
            last: tuple[int, str] | None = None
            while pos < n and selector[pos] in _SPECIAL:
                buffer += selector[pos]
                pos += 1
                token = _STRING_TO_TOKEN.get(buffer)
                if token is not None:
                    last = (token, buffer)
                elif last is not None:
                    pos -= 1
                    break
            if last is None:
                items.append((_ERROR, f"error expected: keyword found '{buffer}'"))
            else:
                items.append(last)
        else:
            start = pos
            while pos < n and selector[pos] not in _SPECIAL and selector[pos] not in _WHITESPACE:
                pos += 1
            literal = selector[start:pos]
            items.append((_STRING_TO_TOKEN.get(literal, _ID), literal))


class _ParseError(Exception):
    pass


class _Parser:
    def __init__(self, selector: str) -> None:
        self.items = _lex(selector)
        self.position = 0

    def _token(self, index: int, values: bool) -> tuple[int, str]:
        tok, lit = self.items[index]
        if values and tok in (_IN, _NOTIN):
            tok = _ID
        return tok, lit

    def lookahead(self, values: bool) -> tuple[int, str]:
        return self._token(self.position, values)

    def consume(self, values: bool) -> tuple[int, str]:
        self.position += 1
        return self._token(self.position - 1, values)

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self.lookahead(True)
            if tok in (_ID, _NOT):
                try:
                    requirements.append(self.parse_requirement())
                except _ParseError as e:
                    raise _ParseError(f"unable to parse requirement: {e}") from None
                t, lit = self.consume(True)
                if t == _EOS:
                    return requirements
                if t == _COMMA:
                    t2, lit2 = self.lookahead(True)
                    if t2 not in (_ID, _NOT):
                        raise _ParseError(f"found '{lit2}', expected: identifier after ','")
                else:
                    raise _ParseError(f"found '{lit}', expected: ',' or 'end of string'")
            elif tok == _EOS:
                return requirements
            else:
                raise _ParseError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def parse_requirement(self) -> Requirement:
        key, operator = self.parse_key_and_infer_operator()
        if operator in (EXISTS, DOES_NOT_EXIST):
            return _new_requirement(key, operator, [])
        operator = self.parse_operator()
        if operator in (IN, NOT_IN):
            values = self.parse_values()
        else:
            values = self.parse_exact_value()
        return _new_requirement(key, operator, sorted(values))

    def parse_key_and_infer_operator(self) -> tuple[str, str]:
        operator = ""
        tok, literal = self.consume(True)
        if tok == _NOT:
            operator = DOES_NOT_EXIST
            tok, literal = self.consume(True)
        if tok != _ID:
            raise _ParseError(f"found '{literal}', expected: identifier")
        errs = validate_label_key(literal)
        if errs:
            raise _ParseError(_field_invalid("<nil>", literal, errs))
        t, _ = self.lookahead(True)
        if t in (_EOS, _COMMA) and operator != DOES_NOT_EXIST:
            operator = EXISTS
        return literal, operator

    def parse_operator(self) -> str:
        tok, lit = self.consume(False)
        operator = {
            _IN: IN,
            _EQ: EQUALS,
            _DEQ: DOUBLE_EQUALS,
            _GT: GREATER_THAN,
            _LT: LESS_THAN,
            _NOTIN: NOT_IN,
            _NEQ: NOT_EQUALS,
        }.get(tok)
        if operator is None:
            raise _ParseError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return operator

    def parse_values(self) -> set[str]:
        tok, lit = self.consume(True)
        if tok != _OPEN:
            raise _ParseError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(True)
        if tok in (_ID, _COMMA):
            values = self.parse_identifiers_list()
            if self.consume(True)[0] != _CLOSE:
                raise _ParseError(f"found '{lit}', expected: ')'")
            return values
        if tok == _CLOSE:
            self.consume(True)
            return {""}
        raise _ParseError(f"found '{lit}', expected: ',', ')' or identifier")

    def parse_identifiers_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume(True)
            if tok == _ID:
                values.add(lit)
                tok2, lit2 = self.lookahead(True)
                if tok2 == _COMMA:
                    continue
                if tok2 == _CLOSE:
                    return values
                raise _ParseError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _COMMA:
                if not values:
                    values.add("")  # "(,"
                tok2, _ = self.lookahead(True)
                if tok2 == _CLOSE:
                    values.add("")  # ",)"
                    return values
                if tok2 == _COMMA:
                    self.consume(True)
                    values.add("")  # ",,"
            else:
                raise _ParseError(f"found '{lit}', expected: ',', or identifier")

    def parse_exact_value(self) -> set[str]:
        tok, _ = self.lookahead(True)
        if tok in (_EOS, _COMMA):
            return {""}
        tok, lit = self.consume(True)
        if tok == _ID:
            return {lit}
        raise _ParseError(f"found '{lit}', expected: identifier")


def _parse_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(s, 10, 64)``: optional sign, decimal digits only, in int64 range."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    if not -(2**63) <= value < 2**63:
        return None
    return value


def _new_requirement(key: str, operator: str, values: list[str]) -> Requirement:
    """``labels.NewRequirement``: validates operator arity and every value."""
    errs: list[str] = []
    if operator in (IN, NOT_IN):
        if not values:
            errs.append("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")
    elif operator in (GREATER_THAN, LESS_THAN):
        for i, value in enumerate(values):
            if _parse_int(value) is None:
                errs.append(
                    f"values[{i}]: Invalid value: {_go_quote(value)}: "
                    "for 'Gt', 'Lt' operators, the value must be an integer"
                )
    for i, value in enumerate(values):
        value_errs = validate_label_value(value)
        if value_errs:
            errs.append(_field_invalid(f"values[{i}][{key}]", value, value_errs))
    if errs:
        raise _ParseError(errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
    return Requirement(key, operator, tuple(values))


# --- compiled label selectors ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a label selector. ``values`` are sorted, as apimachinery keeps them."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        joined = ",".join(self.values)
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({joined})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{joined}"

    def compile(self) -> Callable[[Labels], bool]:
        """A predicate over a label mapping (never ``None``: pass ``{}`` for an object without labels)."""
        key = self.key
        op = self.operator
        if op in (EQUALS, DOUBLE_EQUALS) or (op == IN and len(self.values) == 1):
            value = self.values[0]
            return lambda labels: labels.get(key) == value
        if op == IN:
            values = frozenset(self.values)
            return lambda labels: labels.get(key) in values
        if op in (NOT_EQUALS, NOT_IN):
            # A missing key matches: None is never among the values.
            values = frozenset(self.values)
            return lambda labels: labels.get(key) not in values
        if op == EXISTS:
            return lambda labels: key in labels
        if op == DOES_NOT_EXIST:
            return lambda labels: key not in labels
        bound = _parse_int(self.values[0])
        assert bound is not None
        greater = op == GREATER_THAN

        def compare(labels: Labels) -> bool:
            raw = labels.get(key)
            if raw is None:
                return False
            number = _parse_int(raw)
            if number is None:
                return False
            return number > bound if greater else number < bound

        return compare


def _all_of(predicates: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    if not predicates:
        return lambda _: True
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda x: first(x) and second(x)
    frozen = tuple(predicates)
    return lambda x: all(p(x) for p in frozen)


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed label selector: AND of :class:`Requirement`, sorted by key like apimachinery."""

    requirements: tuple[Requirement, ...] = ()
    _match: Callable[[Labels], bool] = field(default=lambda _: True, repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Labels | None) -> bool:
        return self._match(labels or {})

    __call__ = matches

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_EVERYTHING: Final = LabelSelector()


def parse_label_selector(selector: str | None) -> LabelSelector:
    """Parse ``labelSelector``; ``None``/empty selects everything. Raises :class:`SelectorError`."""
    if not selector or not selector.strip():
        return _EVERYTHING
    try:
        requirements = _Parser(selector).parse()
    except _ParseError as e:
        raise SelectorError(str(e)) from None
    requirements.sort(key=lambda r: r.key)
    return LabelSelector(tuple(requirements), _all_of([r.compile() for r in requirements]))


# --- field selectors (k8s.io/apimachinery/pkg/fields/selector.go) ------------------------------


def _get_name(obj: Mapping[str, Any]) -> str:
    name: str = obj.get("metadata", {}).get("name", "")
    return name


def _get_namespace(obj: Mapping[str, Any]) -> str:
    namespace: str = obj.get("metadata", {}).get("namespace", "")
    return namespace


#: How a field selector label is read from an object.
FieldGetter = Callable[[Mapping[str, Any]], str]
#: The labels one resource supports, and how to read each (callers add their own, e.g. ``spec.type``).
Fields = Mapping[str, FieldGetter]

#: What every resource supports, as in kube-apiserver (``metadata.namespace`` is "" when cluster-scoped).
COMMON_FIELDS: Final[dict[str, FieldGetter]] = {
    "metadata.name": _get_name,
    "metadata.namespace": _get_namespace,
}


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    operator: str  # "=" or "!=" ("==" is normalised to "=")
    value: str

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{self.operator}{escaped}"


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A parsed field selector for one resource: AND of :class:`FieldRequirement`."""

    requirements: tuple[FieldRequirement, ...] = ()
    _match: Callable[[Mapping[str, Any]], bool] = field(default=lambda _: True, repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return self._match(obj)

    __call__ = matches

    def exact(self, field_name: str) -> str | None:
        """The value ``field_name`` must equal, if the selector pins it (``metadata.name=x``): lets the
        list/watch handler look one key up instead of scanning everything."""
        for r in self.requirements:
            if r.field == field_name and r.operator == "=":
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _field_predicate(
    getter: Callable[[Mapping[str, Any]], str], operator: str, value: str
) -> Callable[[Mapping[str, Any]], bool]:
    if operator == "=":
        return lambda obj: getter(obj) == value
    return lambda obj: getter(obj) != value


def field_terms(selector: str | None) -> list[tuple[str, str, str]]:
    """:func:`mcs_apiserver.kube.requestinfo.field_terms` (the one tokenizer of field selectors), with
    its syntax errors as :class:`SelectorError` (400)."""
    try:
        return _field_terms(selector)
    except FieldSelectorSyntaxError as error:
        raise SelectorError(str(error)) from None


FieldTerms = Sequence[tuple[str, str, str]]


def parse_field_selector(selector: str | FieldTerms | None, getters: Fields) -> FieldSelector:
    """Parse ``fieldSelector`` (or its :func:`field_terms`, already tokenized) for a resource whose
    supported labels are ``getters``.

    Raises :class:`SelectorError` on syntax errors and on ``field label not supported: <f>``.
    """
    requirements: list[FieldRequirement] = []
    predicates: list[Callable[[Mapping[str, Any]], bool]] = []
    terms = field_terms(selector) if selector is None or isinstance(selector, str) else selector
    for name, operator, value in terms:
        getter = getters.get(name)
        if getter is None:
            raise SelectorError(f"field label not supported: {name}")
        requirements.append(FieldRequirement(name, operator, value))
        predicates.append(_field_predicate(getter, operator, value))
    if not requirements:
        return FieldSelector()
    return FieldSelector(tuple(requirements), _all_of(predicates))


def MATCH_ALL(_: Mapping[str, Any]) -> bool:  # noqa: N802 - one known function, compared by identity
    """The predicate of a request without selectors: who holds objects only as JSON (the API store)
    can tell from it that no object needs parsing."""
    return True


def compile_selectors(
    label_selector: str | None, field_selector: str | FieldTerms | None, fields: Fields
) -> tuple[ObjectPredicate, LabelSelector, FieldSelector]:
    """Parse both query parameters and return ``(predicate over objects, labels, fields)``.

    The predicate is the fastest form of "matches both" (``MATCH_ALL`` when both are empty); the
    parsed selectors are returned for :meth:`FieldSelector.exact` lookups and logging.
    """
    labels = parse_label_selector(label_selector)
    parsed = parse_field_selector(field_selector, fields)
    if labels.empty and parsed.empty:
        return MATCH_ALL, labels, parsed
    if labels.empty:
        return parsed._match, labels, parsed
    label_match = labels._match
    if parsed.empty:
        return (lambda obj: label_match(obj.get("metadata", {}).get("labels") or {})), labels, parsed
    field_match = parsed._match
    return (
        (lambda obj: field_match(obj) and label_match(obj.get("metadata", {}).get("labels") or {})),
        labels,
        parsed,
    )
