"""Label and field selectors (mcs_apiserver.kube.selectors); cases from apimachinery's own tests."""

from __future__ import annotations

import pytest

from mcs_apiserver.api.resources import SUPPORTED_FIELDS
from mcs_apiserver.kube.selectors import (
    LabelSelector,
    SelectorError,
    compile_selectors,
    parse_field_selector,
    parse_label_selector,
    validate_label_key,
    validate_label_value,
)

QNAME_REGEX_ERROR = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def requirements(selector: LabelSelector) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(r.key, r.operator, r.values) for r in selector.requirements]


# --- label selectors: what parses, and into what ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("\rx", [("x", "exists", ())]),
        ("this-is-a-dns.domain.com/key-with-dash", [("this-is-a-dns.domain.com/key-with-dash", "exists", ())]),
        (
            "this-is-another-dns.domain.com/key-with-dash in (so,what)",
            [("this-is-another-dns.domain.com/key-with-dash", "in", ("so", "what"))],
        ),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tock.clock)",
            [("0.1.2.domain/99", "notin", ("10.10.100.1", "tick.tock.clock"))],
        ),
        ("foo  in\t (abc)", [("foo", "in", ("abc",))]),
        ("x notin\n (abc)", [("x", "notin", ("abc",))]),
        ("x  notin\t\t(abc,def)", [("x", "notin", ("abc", "def"))]),
        ("x in (abc,)", [("x", "in", ("", "abc"))]),
        ("x in ()", [("x", "in", ("",))]),
        (
            "x notin (abc,,def),bar,z in (),w",
            [("bar", "exists", ()), ("w", "exists", ()), ("x", "notin", ("", "abc", "def")), ("z", "in", ("",))],
        ),
        ("x,y in (a)", [("x", "exists", ()), ("y", "in", ("a",))]),
        ("x=a", [("x", "=", ("a",))]),
        ("x==a", [("x", "==", ("a",))]),
        ("x>1", [("x", "gt", ("1",))]),
        ("x<7", [("x", "lt", ("7",))]),
        ("x=a,y!=b", [("x", "=", ("a",)), ("y", "!=", ("b",))]),
        ("x=", [("x", "=", ("",))]),
        ("x= ,z= ", [("x", "=", ("",)), ("z", "=", ("",))]),
        ("!x", [("x", "!", ())]),
        ("x notin ( )", [("x", "notin", ("",))]),
        ("x notin (, a)", [("x", "notin", ("", "a"))]),
        ("a ", [("a", "exists", ())]),
        ("a in (x,y,notin, z,in)", [("a", "in", ("in", "notin", "x", "y", "z"))]),
        ("notin=in", [("notin", "=", ("in",))]),
    ],
)
def test_valid_label_selectors_parse_into_sorted_requirements(text: str, expected: list) -> None:
    assert requirements(parse_label_selector(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "x=a||y=b",
        "x==a==b",
        "!x=a",
        "x<a",
        "x,,y",
        ",x,y",
        "x nott in (y)",
        "a in (xyz),",
        "a in (xyz)b notin ()",
        "a in (xyz abc)",
        "a notin(",
        "a (",
        "(",
        "x=a,",
        "x/y/z=1",
        "=a",
    ],
)
def test_malformed_label_selectors_are_rejected_as_bad_request(text: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)
    assert caught.value.code == 400
    assert caught.value.status["reason"] == "BadRequest"


def test_a_missing_operator_names_every_binary_operator_like_apimachinery() -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("a b")
    assert caught.value.message == "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"


def test_an_invalid_key_gets_kube_apiservers_exact_message_including_its_nil_path() -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("x/y/z")
    assert caught.value.message == (
        'unable to parse requirement: <nil>: Invalid value: "x/y/z": a qualified name '
        + QNAME_REGEX_ERROR
        + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    )


def test_an_invalid_value_names_the_value_path_and_key() -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("app=-bad")
    message = caught.value.message
    assert message.startswith('unable to parse requirement: values[0][app]: Invalid value: "-bad": a valid label')


def test_a_trailing_comma_is_reported_as_a_missing_identifier() -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("x=a,")
    assert caught.value.message == "found '', expected: identifier after ','"


def test_a_non_integer_bound_for_gt_is_rejected() -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("x>one")
    assert "for 'Gt', 'Lt' operators, the value must be an integer" in caught.value.message


def test_label_keys_are_validated_like_qualified_names() -> None:
    assert validate_label_key("example.com/my-key") == []
    assert validate_label_key("a" * 63) == []
    assert validate_label_key("a" * 64) == ["name part must be no more than 63 characters"]
    assert validate_label_key("/x") == ["prefix part must be non-empty"]
    assert validate_label_key("Example.com/x")[0].startswith("prefix part a lowercase RFC 1123 subdomain")
    assert validate_label_key("x/")[0] == "name part must be non-empty"


def test_label_values_may_be_empty_but_not_longer_than_63_characters() -> None:
    assert validate_label_value("") == []
    assert validate_label_value("My_value.1") == []
    assert validate_label_value("a" * 64) == ["must be no more than 63 characters"]
    assert len(validate_label_value("-x")) == 1


# --- label selectors: matching ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("", {"x": "y"}),
        ("x=y", {"x": "y"}),
        ("x==y", {"x": "y"}),
        ("x=y,z=w", {"x": "y", "z": "w"}),
        ("x!=y,z!=w", {"x": "z", "z": "a"}),
        ("x!=y", {}),
        ("notin=in", {"notin": "in"}),
        ("x", {"x": "z"}),
        ("!x", {"y": "z"}),
        ("x>1", {"x": "2"}),
        ("x<1", {"x": "0"}),
        ("x in (a,b)", {"x": "b"}),
        ("x notin (a,b)", {"x": "c"}),
        ("x notin (a,b)", {}),
        ("x=", {"x": ""}),
    ],
)
def test_selector_matches(text: str, labels: dict[str, str]) -> None:
    assert parse_label_selector(text).matches(labels)


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("x=z", {}),
        ("x=", {}),
        ("x=y", {"x": "z"}),
        ("x=y,z=w", {"x": "w", "z": "w"}),
        ("x!=y,z!=w", {"x": "z", "z": "w"}),
        ("x", {"y": "z"}),
        ("!x", {"x": "z"}),
        ("x>1", {}),
        ("x<1", {}),
        ("x>1", {"x": "one"}),
        ("x in (a,b)", {}),
        ("x notin (a,b)", {"x": "a"}),
    ],
)
def test_selector_does_not_match(text: str, labels: dict[str, str]) -> None:
    assert not parse_label_selector(text).matches(labels)


def test_an_object_without_labels_is_matched_as_having_none() -> None:
    assert parse_label_selector("!app").matches(None)
    assert not parse_label_selector("app").matches(None)


def test_a_selector_prints_in_canonical_form() -> None:
    assert str(parse_label_selector(" z in (b,a) , x , !y,w!=1")) == "w!=1,x,!y,z in (a,b)"


# --- field selectors ---------------------------------------------------------------------------


def service_import(name: str, namespace: str = "ns", type_: str = "ClusterSetIP") -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"type": type_}}


@pytest.mark.parametrize(
    "text",
    [
        "metadata.name=a,metadata.namespace=b,spec.type=c",
        "",
        "metadata.name!=a,spec.type=b",
        r"metadata.name=a\=b",
        r"metadata.name=a\,b",
        r"metadata.name=a\\b",
        "metadata.name==a",
        "metadata.name=",
    ],
)
def test_valid_field_selectors_parse(text: str) -> None:
    parse_field_selector(text, SUPPORTED_FIELDS["serviceimports"])


@pytest.mark.parametrize(
    "text",
    [
        "metadata.name=a||y=b",
        "metadata.name==a==b",
        "metadata.name=a,b",
        "metadata.name in (a)",
        "metadata.name",
        r"metadata.name=a\b",
        "metadata.name=a\\",
    ],
)
def test_malformed_field_selectors_are_rejected_as_bad_request(text: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(text, SUPPORTED_FIELDS["serviceimports"])
    assert caught.value.code == 400


def test_a_term_without_operator_gets_kube_apiservers_message() -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector("metadata.name=a,b", SUPPORTED_FIELDS["serviceimports"])
    assert caught.value.message == "invalid selector: 'metadata.name=a,b'; can't understand 'b'"


def test_an_unsupported_field_is_field_label_not_supported() -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector("spec.ports=80", SUPPORTED_FIELDS["serviceimports"])
    assert caught.value.message == "field label not supported: spec.ports"


def test_spec_type_is_a_field_of_serviceimports_only() -> None:
    parse_field_selector("spec.type=Headless", SUPPORTED_FIELDS["serviceimports"])
    with pytest.raises(SelectorError, match="field label not supported: spec.type"):
        parse_field_selector("spec.type=Headless", SUPPORTED_FIELDS["clustersets"])


def test_field_selectors_match_name_namespace_and_type() -> None:
    selector = parse_field_selector("metadata.namespace=ns,spec.type!=Headless", SUPPORTED_FIELDS["serviceimports"])
    assert selector.matches(service_import("a"))
    assert not selector.matches(service_import("a", namespace="other"))
    assert not selector.matches(service_import("a", type_="Headless"))


def test_escaped_characters_in_field_values_are_matched_literally() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b\=c", SUPPORTED_FIELDS["serviceimports"])
    assert selector.matches(service_import("a,b=c"))


def test_a_cluster_scoped_object_has_an_empty_namespace_field() -> None:
    cluster_set = {"metadata": {"name": "set"}}
    assert parse_field_selector("metadata.namespace=", SUPPORTED_FIELDS["clustersets"]).matches(cluster_set)
    assert not parse_field_selector("metadata.namespace=x", SUPPORTED_FIELDS["clustersets"]).matches(cluster_set)


def test_an_exact_name_can_be_read_back_for_single_key_lookups() -> None:
    selector = parse_field_selector("metadata.name==web,metadata.namespace!=x", SUPPORTED_FIELDS["serviceimports"])
    assert selector.exact("metadata.name") == "web"
    assert selector.exact("metadata.namespace") is None


def test_compiled_selectors_require_both_label_and_field_matches() -> None:
    match, _, _ = compile_selectors("app=web", "metadata.name=a", SUPPORTED_FIELDS["serviceimports"])
    obj = service_import("a")
    assert not match(obj)
    obj["metadata"]["labels"] = {"app": "web"}
    assert match(obj)
    assert not match(service_import("b") | {"metadata": {"name": "b", "labels": {"app": "web"}}})


def test_empty_selectors_compile_to_a_predicate_that_takes_everything() -> None:
    match, labels, fields = compile_selectors(None, "", SUPPORTED_FIELDS["clustersets"])
    assert labels.empty and fields.empty
    assert match({})


def test_a_compiled_selector_picks_exactly_the_matching_objects_of_ten_thousand() -> None:
    # How fast this is belongs to the benchmarks (benchmarks/reads.py), not to a test on a noisy machine.
    objects = [
        {
            "metadata": {
                "name": f"svc-{i}",
                "namespace": f"ns-{i % 10}",
                "labels": {"app": f"a{i % 7}", "tier": "web"},
            }
        }
        for i in range(10_000)
    ]
    match, _, _ = compile_selectors("app in (a1,a2),tier,!canary", "metadata.namespace!=ns-3", SUPPORTED_FIELDS["serviceimports"])
    selected = [o["metadata"]["name"] for o in objects if match(o)]
    assert selected == [f"svc-{i}" for i in range(10_000) if i % 7 in (1, 2) and i % 10 != 3]
