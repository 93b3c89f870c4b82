"""The server's own words in an error body (pure), and the class of each error status, over
MockTransport on both wires."""

from __future__ import annotations

import json
import typing

import pytest
from hypothesis import given, strategies as st

from aura_anyio import (
    APIStatusError,
    AuraClient,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
)
from aura_anyio._error_body import ServerWords, server_words
from aura_anyio._exceptions import SERVER_MESSAGE_CHARS, make_status_error
from aura_anyio.testing import ERROR_SHAPES, Fault, ReferenceServer

from .helpers import Script, make_client, reply

if typing.TYPE_CHECKING:
    from aura_anyio._wire import WireName

HELLO = [{"role": "user", "content": "hello"}]

SHAPES: list[tuple[object, ServerWords]] = [
    (  # OpenAI, LiteLLM, llama.cpp, Ollama's OpenAI route
        {
            "error": {
                "message": "Incorrect API key provided: sk-****.\nSee your keys.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
                "param": None,
            }
        },
        ServerWords(
            "Incorrect API key provided: sk-****.\nSee your keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
    ),
    (  # vLLM
        {
            "object": "error",
            "message": "max_tokens is too large",
            "type": "BadRequestError",
            "param": "max_tokens",
            "code": 400,
        },
        ServerWords("max_tokens is too large", "BadRequestError", 400, "max_tokens"),
    ),
    ({"error": "model 'x' not found"}, ServerWords("model 'x' not found")),  # Ollama's own
    ({"detail": "Not authenticated"}, ServerWords("Not authenticated")),  # FastAPI
    (  # FastAPI's validation errors
        {
            "detail": [
                {"loc": ["body", "messages"], "msg": "Field required", "type": "missing"},
                {"loc": ["body", "temperature"], "msg": "too hot", "type": "less_than"},
                "not a problem",
            ]
        },
        ServerWords("body.messages: Field required; body.temperature: too hot", "missing"),
    ),
    ({"message": "plain"}, ServerWords("plain")),
    ({"detail": [{"msg": "bare", "loc": []}]}, ServerWords("bare")),  # no place, no type
    ({"message": "odd fields", "code": True, "type": 3}, ServerWords("odd fields")),
]


@pytest.mark.parametrize(("body", "words"), SHAPES)
def test_each_shape_gives_the_servers_words(body: object, words: ServerWords) -> None:
    assert server_words(json.dumps(body)) == words


@pytest.mark.parametrize(
    "body",
    [
        "",
        "Error",
        "<html><body>502 Bad Gateway</body></html>",
        "[1, 2]",
        '{"error": {"message": ""}}',
        '{"detail": [1, {"loc": []}]}',
        '{"error": {"message": "cut at the read lim',
        '{"status": "bad"}',
        '"just a string"',
    ],
)
def test_other_bodies_have_no_words(body: str) -> None:
    assert server_words(body) is None


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"status": 400, "error_shape": "xml"}, r"Fault\.error_shape must be one of openai"),
        ({"status": 400, "error_shape": "openai", "error_body_bytes": 9}, "at most one of"),
        ({"error_shape": "openai"}, r"Fault\.error_shape needs a status"),
    ],
)
def test_an_error_shape_is_checked(fault: dict[str, typing.Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault(**fault)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
    )
)
def test_any_json_gives_words_with_a_message_or_none(value: object) -> None:
    words = server_words(json.dumps(value))
    assert words is None or words.message.strip()


def status_error(status: int, body: str) -> APIStatusError:
    return make_status_error(
        status_code=status, reason="Reason", body=body, headers={}, request=None
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, ServerError),
        (418, APIStatusError),
    ],
)
def test_each_status_has_openai_pythons_class(status: int, kind: type[APIStatusError]) -> None:
    error = status_error(status, "")
    assert type(error) is kind
    assert error.status_code == status


def test_the_message_leads_with_the_servers_words_unescaped_and_bounded() -> None:
    body = json.dumps(
        {"error": {"message": "Bad key.\nTry again. " + "x" * 5000, "code": "invalid_api_key"}}
    )
    error = status_error(401, body)
    assert str(error).startswith("Bad key. Try again. xxx")  # one line, no \\n escapes
    assert "(HTTP 401 Reason; the server refused the request)" in str(error)
    assert len(str(error)) < SERVER_MESSAGE_CHARS + 100
    assert (error.code, error.type, error.param) == ("invalid_api_key", None, None)
    assert error.body == body  # as it came


def test_a_body_without_words_keeps_its_excerpt() -> None:
    error = status_error(502, "<html>Bad Gateway</html>")
    assert str(error) == (
        "HTTP 502 Reason; body: '<html>Bad Gateway</html>' "
        "(the server failed; retrying later may help)"
    )
    assert (error.code, error.type, error.param) == (None, None, None)


@pytest.mark.parametrize("wire", ["aura", "openai"])
@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
    ],
)
async def test_a_refusal_raises_its_class_at_once_on_both_wires(
    wire: WireName, status: int, kind: type[APIStatusError]
) -> None:
    body = json.dumps({"error": {"message": "no", "type": "t", "code": "c", "param": "p"}})
    script = Script(reply(body.encode(), status=status))
    async with make_client(script, wire=wire) as client:
        with pytest.raises(kind) as caught:
            await client.complete(HELLO)
    assert (caught.value.code, caught.value.type, caught.value.param) == ("c", "t", "p")
    assert str(caught.value).startswith("no (HTTP ")
    assert script.call_count == 1  # not retried


@pytest.mark.parametrize("wire", ["aura", "openai"])
async def test_a_conflict_is_retried_as_openai_python_retries_it(wire: WireName) -> None:
    conflict = reply(b'{"error": {"message": "busy"}}', status=409)
    script = Script(conflict, reply(b"ok") if wire == "aura" else conflict, conflict)
    async with make_client(script, wire=wire) as client:
        if wire == "aura":
            assert await client.complete(HELLO) == "ok"
            return
        with pytest.raises(ConflictError) as caught:
            await client.complete(HELLO)
    assert [type(error) for error in caught.value.previous_errors] == [ConflictError] * 2


@pytest.mark.network
@pytest.mark.parametrize("wire", ["aura", "openai"])
@pytest.mark.parametrize("shape", ERROR_SHAPES)
async def test_every_error_shape_of_the_reference_server_is_read(
    wire: WireName, shape: str
) -> None:
    fault = Fault(status=404, reason="No such model", error_shape=shape)
    async with (
        ReferenceServer(fault=fault) as server,
        AuraClient(server.base_url, wire=wire) as client,
    ):
        with pytest.raises(NotFoundError) as caught:
            await client.complete(HELLO)
    error = caught.value
    said = "body.messages: No such model" if shape == "fastapi_validation" else "No such model"
    assert str(error).startswith(f"{said} (HTTP 404 No such model from POST ")
    assert json.loads(error.body)  # the body as it came
    if shape in ("openai", "vllm"):
        assert error.type == "invalid_request_error"
        assert error.code == ("error_404" if shape == "openai" else 404)
