"""Name checks shared by the views and the webhooks."""

from __future__ import annotations

import pytest

from mcs_apiserver.kube.names import (
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
)

# value, DNS-1123 label, DNS-1123 subdomain, DNS-1035 label (= Service name)
CASES = [
    ("a", True, True, True),
    ("member-1", True, True, True),
    ("1member", True, True, False),
    ("721ab723-13bc-11e5-aec2-42010af0021e", True, True, False),
    ("a" * 63, True, True, True),
    ("a" * 64, False, True, False),
    ("east.prod", False, True, False),
    ("Member", False, False, False),
    ("-member", False, False, False),
    ("member-", False, False, False),
    ("mem_ber", False, False, False),
    ("", False, False, False),
    ("a.", False, False, False),
    (".a", False, False, False),
    ("a..b", False, False, False),
    ("member\n", False, False, False),
    (".".join(["a" * 63] * 3) + ".b", False, True, False),  # 193 characters, 63-character labels
    ("a" * 253, False, True, False),  # like Kubernetes: no per-label limit inside a subdomain
]


@pytest.mark.parametrize(("value", "label", "subdomain", "dns1035"), CASES)
def test_each_check_accepts_exactly_the_names_kubernetes_accepts(
    value: str, label: bool, subdomain: bool, dns1035: bool
) -> None:
    assert is_dns1123_label(value) is label
    assert is_dns1123_subdomain(value) is subdomain
    assert is_dns1035_label(value) is dns1035


def test_a_subdomain_of_254_characters_is_too_long_even_when_every_label_is_valid() -> None:
    value = ".".join(["a" * 50] * 5)  # 254 characters
    assert len(value) == 254
    assert not is_dns1123_subdomain(value)
