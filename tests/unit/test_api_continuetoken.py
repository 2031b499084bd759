"""Opaque continue tokens (mcs_apiserver.api.continuetoken)."""

from __future__ import annotations

import base64

import orjson
import pytest

from mcs_apiserver.api.continuetoken import (
    MAX_TOKEN_LENGTH,
    ContinueToken,
    ContinueTokenError,
    decode_continue,
    encode_continue,
)


def raw_token(doc: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()


def test_a_token_decodes_to_the_resource_version_and_last_key_it_was_made_from() -> None:
    token = encode_continue("1234", "ns-a/web")
    assert decode_continue(token) == ContinueToken("1234", "ns-a/web")


def test_a_token_is_url_safe_and_unpadded() -> None:
    token = encode_continue("9" * 20, "n\u00e9/\u2603?&=+")
    assert "=" not in token and "+" not in token and "/" not in token
    assert decode_continue(token).last_key == "n\u00e9/\u2603?&=+"


def test_a_padded_token_is_accepted_too() -> None:
    token = encode_continue("1", "a")
    assert decode_continue(token + "=" * (-len(token) % 4)) == ContinueToken("1", "a")


def test_an_empty_start_key_is_valid() -> None:
    assert decode_continue(encode_continue("7", "")).last_key == ""


def test_encoding_without_a_resource_version_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        encode_continue("", "a")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!not-base64!!!",
        "a",
        "\u00e9t\u00e9",
        base64.urlsafe_b64encode(b"not json").decode(),
        raw_token([1, 2]),
        raw_token({"v": "meta.k8s.io/v1", "rv": 1, "start": "a\x00"}),
        raw_token({"v": "views.multicluster.x-k8s.io/v1alpha1", "rv": "", "start": "a"}),
        raw_token({"v": "views.multicluster.x-k8s.io/v1alpha1", "rv": 5, "start": "a"}),
        raw_token({"v": "views.multicluster.x-k8s.io/v1alpha1", "rv": "5"}),
        raw_token({"v": "views.multicluster.x-k8s.io/v1alpha1", "rv": "5", "start": "a", "x": 1}),
        "A" * (MAX_TOKEN_LENGTH + 1),
    ],
)
def test_garbage_is_a_bad_request(token: str) -> None:
    with pytest.raises(ContinueTokenError) as caught:
        decode_continue(token)
    assert caught.value.code == 400
    assert caught.value.status["reason"] == "BadRequest"
    assert caught.value.status["message"].startswith("invalid continue token: ")


def test_a_truncated_token_is_rejected() -> None:
    token = encode_continue("42", "some-namespace/some-name")
    with pytest.raises(ContinueTokenError):
        decode_continue(token[:-5])
