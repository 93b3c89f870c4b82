"""The two wires, pure: request bodies, paths and headers out; reply text in, under any chunking.

The OpenAI reply decoder reads what the reference server sends (``EventFraming``), so the
client and the server are checked against each other here without any I/O.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
from hypothesis import given, strategies as st

from aura_anyio import InvalidRequestError, ModelSpec, build_payload
from aura_anyio._wire import (
    WIRES,
    AuraWire,
    BrokenReply,
    EmptyReply,
    OpenAIWire,
    ReplyDecoder,
    ReplyError,
    ReportedError,
    Wire,
    openai_body,
    wire_named,
)
from aura_anyio.testing._events import EventFraming

from .strategies import chunkings

USER = {"role": "user", "content": "hi"}
EXCERPT = 200  # what an error message keeps of what the server sent
STOP = '{"choices": [{"delta": {}, "finish_reason": "stop"}]}'

# Text that JSON has to escape, and text it does not, emoji and U+2028 included.
_chars = st.one_of(st.sampled_from('"\\\n\r\t/\x00\x7f\u2028é😀'), st.characters(codec="utf-8"))
pieces = st.lists(st.text(_chars, max_size=6), max_size=8)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, str]]:
    """Valid messages, system ones anywhere, some with keys the body must drop."""
    message = st.fixed_dictionaries(
        {"role": st.sampled_from(("system", "user", "assistant")), "content": st.text()},
        optional={"name": st.text(max_size=3)},
    )
    body = draw(st.lists(message, max_size=6))
    anchor = {"role": draw(st.sampled_from(("user", "assistant"))), "content": draw(st.text())}
    body.insert(draw(st.integers(0, len(body))), anchor)
    return body


def read(decoder: ReplyDecoder, chunks: list[bytes]) -> str:
    """All the text of a reply fed in ``chunks``, its end included."""
    return "".join(decoder.feed(chunk) for chunk in chunks) + decoder.close()


def events(*datas: str) -> bytes:
    return b"".join(b"data: " + data.encode() + b"\n\n" for data in datas)


def framed(texts: list[str], **kwargs: object) -> bytes:
    framing = EventFraming(model="m", **kwargs)  # type: ignore[arg-type]
    return b"".join(framing.frame(tuple(text.encode() for text in texts)))


# -- request bodies ------------------------------------------------------------------------


@given(
    conversations(),
    st.one_of(
        st.text(min_size=1).filter(str.strip),
        st.builds(
            ModelSpec, st.text(min_size=1).filter(str.strip), st.text(), st.just(1), st.just(1)
        ),
    ),
    st.floats(0, 2),
    st.none() | st.integers(min_value=1),
)
def test_openai_body_keeps_every_message_in_order(
    messages: list[dict[str, str]],
    model: str | ModelSpec,
    temperature: float,
    max_tokens: int | None,
) -> None:
    """Messages pass through whole (``name`` included); max_tokens goes out only if given."""
    body = openai_body(messages, model=model, temperature=temperature, max_tokens=max_tokens)
    limit = {} if max_tokens is None else {"max_tokens": max_tokens}
    assert body == {
        "model": model.id if isinstance(model, ModelSpec) else model,
        "messages": messages,
        "temperature": temperature,
        **limit,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sent = OpenAIWire().body(
        messages,
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,
        extra_body=None,
        key="k",
    )
    assert json.loads(sent) == body  # the key never travels in this body


def test_openai_body_is_utf8_json() -> None:
    sent = OpenAIWire().body(
        [{"role": "user", "content": "é😀"}],
        model="m",
        temperature=1,
        max_tokens=1,
        extra_body=None,
        key="",
    )
    assert "é😀".encode() in sent
    assert json.loads(sent)["temperature"] == 1.0


@pytest.mark.parametrize(
    ("messages", "kwargs", "needle"),
    [
        ("hello", {}, "messages must be a sequence"),
        ([], {}, "at least one message that is not a 'system' or 'developer'"),
        ([{"role": "system", "content": "s"}], {}, "not a 'system' or 'developer'"),
        ([USER, "hi"], {}, "messages[1] must be a mapping"),
        ([USER, {"role": "bot", "content": "x"}], {}, "messages[1].role"),
        ([{"role": "user", "content": 3}], {}, "messages[0].content"),
        ([USER], {"model": ""}, "model must be a non-empty str"),
        ([USER], {"model": " \t"}, "model must be a non-empty str"),
        ([USER], {"model": None}, "model must be a non-empty str"),
        ([USER], {"model": 3}, "model must be a non-empty str"),
        ([USER], {"model": ModelSpec(" ", "n", 1, 1)}, "model must be a non-empty str"),
        ([USER], {"model": "m\udfff"}, "model is not valid Unicode"),
        ([USER], {"max_tokens": 0}, "max_tokens must be an int of at least 1,"),
        ([USER], {"max_tokens": -5}, "max_tokens"),
        ([USER], {"max_tokens": 768.5}, "max_tokens"),
        ([USER], {"max_tokens": 8.0}, "max_tokens"),
        ([USER], {"max_tokens": True}, "max_tokens"),
        ([USER], {"max_tokens": "5"}, "max_tokens"),
        ([USER], {"temperature": math.nan}, "temperature must be a finite number"),
        ([USER], {"temperature": math.inf}, "temperature"),
        ([USER], {"temperature": 2.5}, "temperature"),
        ([USER], {"temperature": -0.1}, "temperature"),
        ([USER], {"temperature": True}, "temperature"),
        ([USER], {"temperature": "0.5"}, "temperature"),
    ],
)
def test_invalid_openai_body_names_the_field(
    messages: object, kwargs: dict[str, object], needle: str
) -> None:
    arguments: dict[str, object] = {"model": "m", "temperature": 1.0, "max_tokens": 1, **kwargs}
    with pytest.raises(InvalidRequestError) as caught:
        openai_body(messages, **arguments)  # type: ignore[arg-type]
    assert needle in str(caught.value)


@pytest.mark.parametrize(("temperature", "max_tokens"), [(0, 1), (2, 10**9), (0.7, 768)])
def test_openai_body_takes_the_bounds(temperature: float, max_tokens: int) -> None:
    """Unlike /api/chat, any positive max_tokens will do: it only caps the reply."""
    body = openai_body([USER], model="m", temperature=temperature, max_tokens=max_tokens)
    assert (body["temperature"], body["max_tokens"]) == (float(temperature), max_tokens)
    assert type(body["temperature"]) is float


def test_aura_body_carries_the_key_and_no_header() -> None:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "é"}]
    sent = AuraWire().body(
        messages,
        model="openchat_3.6",
        temperature=0.5,
        max_tokens=1000,
        extra_body=None,
        key="sk-secret",
    )
    assert json.loads(sent) == build_payload(
        messages, model="openchat_3.6", temperature=0.5, max_tokens=1000, key="sk-secret"
    )
    assert json.loads(sent)["key"] == "sk-secret"
    assert "é".encode() in sent
    assert AuraWire().headers("sk-secret") == {}


# -- paths and headers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://h:1", "http://h:1/v1/chat/completions"),
        ("http://h:1/v1", "http://h:1/v1/chat/completions"),  # no /v1/v1
        ("http://h/prefix", "http://h/prefix/v1/chat/completions"),
        ("http://h/prefix/v1", "http://h/prefix/v1/chat/completions"),
        ("http://h/v10", "http://h/v10/v1/chat/completions"),
    ],
)
def test_openai_path(base: str, url: str) -> None:
    assert OpenAIWire().path(base) == url


@given(st.data(), st.text(max_size=20))
def test_an_aura_reply_without_text_is_empty_under_any_chunking(
    data: st.DataObject, text: str
) -> None:
    decoder = AuraWire().decoder(None)
    pieces = [decoder.feed(chunk) for chunk in data.draw(chunkings(text.encode()))]
    if text:
        assert "".join(pieces) + decoder.close() == text  # whitespace is text too
    else:
        with pytest.raises(EmptyReply, match="no text at all"):
            decoder.close()


def test_aura_path() -> None:
    assert AuraWire().path("http://h:1") == "http://h:1/api/chat"
    assert AuraWire().path("http://h/prefix") == "http://h/prefix/api/chat"


def test_openai_headers_without_a_key() -> None:
    assert OpenAIWire().headers("") == {"accept": "text/event-stream"}


@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1))
def test_openai_headers_carry_a_printable_key(key: str) -> None:
    assert OpenAIWire().headers(key) == {
        "accept": "text/event-stream",
        "authorization": f"Bearer {key}",
    }


@given(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)),
    st.characters(codec="utf-8").filter(lambda c: not (c.isascii() and c.isprintable())),
    st.text(),
)
def test_a_key_unfit_for_a_header_is_refused_unquoted(head: str, bad: str, tail: str) -> None:
    """A newline would split the header; the error never repeats the secret."""
    key = head + bad + tail
    with pytest.raises(InvalidRequestError) as caught:
        OpenAIWire().headers(key)
    assert key not in str(caught.value)
    assert key not in repr(caught.value)
    assert "key must be printable ASCII" in str(caught.value)


@pytest.mark.parametrize("key", ["sk-sécret-123", "sk-secret\r\nX-Evil: 1", "sk-secret\x7f"])
def test_refused_keys(key: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        OpenAIWire().headers(key)
    assert "secret" not in str(caught.value)


# -- wires by name -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [("aura", AuraWire), ("openai", OpenAIWire)])
def test_wire_named(name: str, kind: type[object]) -> None:
    wire: Wire = wire_named(name)
    assert isinstance(wire, kind)
    assert wire.name == name
    assert WIRES[name] is wire


@pytest.mark.parametrize("name", ["grpc", None, "", "AURA", 3, ["aura"]])
def test_unknown_wire_names_the_known_ones(name: object) -> None:
    with pytest.raises(InvalidRequestError, match="wire must be one of 'aura', 'openai'"):
        wire_named(name)


# -- the OpenAI reply ----------------------------------------------------------------------


@given(
    st.data(),
    pieces,
    st.sampled_from(("stop", "length")),
    st.integers(0, 100),
)
def test_framed_reply_comes_back_whole_under_any_chunking(
    data: st.DataObject, texts: list[str], reason: str, prompt_tokens: int
) -> None:
    raw = framed(texts, finish_reason=reason, prompt_tokens=prompt_tokens)
    decoder = OpenAIWire().decoder(None)
    assert read(decoder, data.draw(chunkings(raw))) == "".join(texts)
    assert decoder.finish_reason == reason
    assert decoder.usage == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(texts),
        "total_tokens": prompt_tokens + len(texts),
    }


@given(st.data(), pieces, st.binary())
def test_what_follows_done_is_ignored(data: st.DataObject, texts: list[str], junk: bytes) -> None:
    after = junk + events("not json", '{"error": "late"}') + b"event: error\ndata: x\n\ndata:"
    raw = framed(texts) + after
    decoder = OpenAIWire().decoder(None)
    assert read(decoder, data.draw(chunkings(raw))) == "".join(texts)
    assert decoder.finish_reason == "stop"
    assert decoder.usage is not None
    assert decoder.usage["completion_tokens"] == len(texts)


def test_what_follows_done_in_the_same_feed_is_ignored() -> None:
    decoder = OpenAIWire().decoder(None)
    content = '{"choices": [{"delta": {"content": "a"}}]}'
    assert decoder.feed(events(content, STOP, "[DONE]", content, STOP, "{")) == "a"
    assert decoder.feed(events(content)) == ""
    assert decoder.close() == ""
    assert decoder.finish_reason == "stop"
    assert decoder.done


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (events("[DONE]"), ""),
        (events('{"choices": [{"delta": {"content": "a"}}]}', "[DONE]"), "a"),
        (events('{"choices": [{"delta": {}, "finish_reason": null}]}', "[DONE]"), ""),
        (b"".join(EventFraming(model="m").interrupted([b"a", b"b"])), "ab"),
    ],
)
def test_done_without_a_finish_reason_is_a_cut(raw: bytes, text: str) -> None:
    """llama.cpp's server ends a request it interrupts so: it must not pass for a whole reply.

    The text that came in the same feed, before the cut, travels on the error.
    """
    decoder = OpenAIWire().decoder(None)
    with pytest.raises(BrokenReply, match=r"without a finish_reason: it was cut short") as caught:
        decoder.feed(raw)
    assert isinstance(caught.value, ReplyError)
    assert caught.value.text == text


def test_a_finish_reason_then_done_is_whole() -> None:
    decoder = OpenAIWire().decoder(None)
    raw = events('{"choices": [{"delta": {"content": "a"}}]}', STOP, "[DONE]")
    assert read(decoder, [raw]) == "a"
    assert (decoder.finish_reason, decoder.done) == ("stop", True)


def test_an_event_stream_is_utf8_whatever_the_header_says() -> None:
    decoder = OpenAIWire().decoder("text/event-stream; charset=latin-1")
    assert read(decoder, [framed(["é😀"])]) == "é😀"


def test_a_finish_reason_without_done_ends_the_reply() -> None:
    framing = EventFraming(model="m", finish_reason="length")
    body = b"".join(framing.frame((b"a", b"b")))
    done = body.rindex(b"data: [DONE]")
    decoder = OpenAIWire().decoder(None)
    assert read(decoder, [body[:done]]) == "ab"  # no [DONE]
    assert decoder.usage == {"prompt_tokens": 0, "completion_tokens": 2, "total_tokens": 2}
    decoder = OpenAIWire().decoder(None)
    assert read(decoder, [body[: body.rindex(b"data: ", 0, done)]]) == "ab"  # no usage either
    assert (decoder.finish_reason, decoder.usage) == ("length", None)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"data: [DONE]",  # never dispatched: no empty line after it
        b"".join(EventFraming(model="m").frame((b"a", b"b"), endless=True)),
        events('{"choices": [{"delta": {"content": "a"}, "finish_reason": null}]}'),
    ],
)
def test_a_reply_without_done_or_finish_reason_is_broken(raw: bytes) -> None:
    decoder = OpenAIWire().decoder(None)
    decoder.feed(raw)
    with pytest.raises(BrokenReply, match=r"ended before data: \[DONE\]") as caught:
        decoder.close()
    assert caught.value.text == ""  # an event the body's end cuts is never dispatched


@given(st.data(), pieces)
def test_a_cut_reply_keeps_the_whole_pieces_before_the_cut(
    data: st.DataObject, texts: list[str]
) -> None:
    encoded = [text.encode() for text in texts]
    size = data.draw(st.integers(0, sum(map(len, encoded))))
    raw = b"".join(EventFraming(model="m").cut(encoded, size))
    decoder = OpenAIWire().decoder(None)
    text = "".join(decoder.feed(chunk) for chunk in data.draw(chunkings(raw)))
    with pytest.raises(BrokenReply):
        decoder.close()
    ends = itertools.accumulate(map(len, encoded))
    assert text == "".join(t for t, end in zip(texts, ends, strict=True) if end <= size)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (events('{"error": {"message": "boom", "type": "x"}}'), "boom"),
        (events('{"error": "plain"}'), "plain"),
        (events('{"error": 42}'), "42"),
        (events('{"error": {"code": 5}}'), '{"code": 5}'),  # no message: the JSON itself
        (events('{"error": {"message": 7}}'), '{"message": 7}'),
        (events('{"choices": [], "error": ["a", 1]}'), '["a", 1]'),
        (b"event: error\ndata: upstream gone\n\n", "upstream gone"),
        (b'event: error\ndata: {"message": "m"}\n\n', '{"message": "m"}'),
    ],
)
def test_in_band_errors_are_reported(raw: bytes, message: str) -> None:
    decoder = OpenAIWire().decoder(None)
    assert decoder.feed(events('{"choices": [{"delta": {"content": "a"}}]}')) == "a"
    with pytest.raises(ReportedError) as caught:
        decoder.feed(raw)
    assert str(caught.value) == message
    assert caught.value.text == ""
    # In the same feed as text before it, the error carries that text.
    decoder = OpenAIWire().decoder(None)
    with pytest.raises(ReportedError) as caught:
        decoder.feed(events('{"choices": [{"delta": {"content": "a"}}]}') + raw)
    assert (str(caught.value), caught.value.text) == (message, "a")


@pytest.mark.parametrize(
    "raw",
    [
        events(json.dumps({"error": {"message": "é" * 1000}})),
        events(json.dumps({"error": "é" * 1000})),
        events(json.dumps({"error": ["é" * 1000]})),
        events(json.dumps({"error": {"detail": "é" * 1000}})),
        b"event: error\ndata: " + "é".encode() * 1000 + b"\n\n",
    ],
)
def test_long_error_messages_are_cut(raw: bytes) -> None:
    with pytest.raises(ReportedError) as caught:
        OpenAIWire().decoder(None).feed(raw)
    assert len(str(caught.value)) == EXCERPT


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("not json", "not JSON: 'not json'"),
        ('{"choices": [', "not JSON"),
        ("[1]", "not a JSON object: '[1]'"),
        ('"text"', "not a JSON object"),
        ("null", "not a JSON object"),
        ("3", "not a JSON object"),
    ],
)
def test_data_that_is_not_a_json_object_breaks_the_reply(data: str, needle: str) -> None:
    with pytest.raises(BrokenReply) as caught:
        OpenAIWire().decoder(None).feed(events(data))
    assert needle in str(caught.value)


@pytest.mark.parametrize("data", ["x" * 1000, "[" + "1," * 500 + "1]"])
def test_broken_data_is_quoted_short(data: str) -> None:
    with pytest.raises(BrokenReply) as caught:
        OpenAIWire().decoder(None).feed(events(data))
    assert len(str(caught.value)) < EXCERPT + 50


def test_deeply_nested_data_breaks_the_reply() -> None:
    with pytest.raises(BrokenReply):
        OpenAIWire().decoder(None).feed(events("[" * 100_000))


@pytest.mark.parametrize(
    "chunk",
    [
        {},
        {"choices": None},
        {"choices": "abc"},
        {"choices": []},
        {"choices": [1]},
        {"choices": [None, {"index": 1, "delta": {"content": "second choice"}}]},
        {"choices": [{}]},
        {"choices": [{"delta": "abc"}]},
        {"choices": [{"delta": None}]},
        {"choices": [{"delta": {}}]},
        {"choices": [{"delta": {"content": None}}]},
        {"choices": [{"delta": {"content": 5}}]},
        {"choices": [{"delta": {"content": ["a"]}}]},
        {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": ""}, "finish_reason": 5}]},
        {"usage": None, "choices": [{"message": {"content": "not a delta"}}]},
    ],
)
def test_odd_chunks_give_no_text_and_no_error(chunk: object) -> None:
    decoder = OpenAIWire().decoder(None)
    assert decoder.feed(events(json.dumps(chunk))) == ""
    assert (decoder.finish_reason, decoder.usage, decoder.tool_calls) == (None, None, None)
    assert decoder.feed(events(STOP, "[DONE]")) == ""
    assert decoder.close() == ""


def test_usage_keeps_the_whole_object_but_known_counts_that_are_not_ints() -> None:
    decoder = OpenAIWire().decoder(None)
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": "7",
        "total_tokens": 1.5,
        "a": "x",
        "f": {},
        "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": None, "own": "kept"},
        "completion_tokens_details": None,
    }
    decoder.feed(events(json.dumps({"choices": [], "usage": usage})))
    kept = {
        "prompt_tokens": 3,
        "a": "x",
        "f": {},
        "prompt_tokens_details": {"cached_tokens": 2, "own": "kept"},
    }
    assert decoder.usage == kept
    decoder.feed(events('{"usage": [1]}', '{"usage": null}'))  # not objects: ignored
    assert decoder.usage == kept
    decoder.feed(events('{"usage": {"total_tokens": 9}}'))
    assert decoder.usage == {"total_tokens": 9}


def test_finish_reason_is_the_last_one_given() -> None:
    decoder = OpenAIWire().decoder(None)
    decoder.feed(events('{"choices": [{"delta": {"content": "a"}, "finish_reason": "stop"}]}'))
    decoder.feed(events('{"choices": [{"delta": {}, "finish_reason": null}]}'))
    assert decoder.finish_reason == "stop"
    decoder.feed(events('{"choices": [{"delta": {}, "finish_reason": "length"}]}'))
    assert decoder.finish_reason == "length"
    assert decoder.close() == ""


# -- the /api/chat reply -------------------------------------------------------------------


@given(st.data(), st.text(min_size=1))  # no text at all is an empty reply (tested above)
def test_aura_text_is_the_same_under_any_chunking(data: st.DataObject, text: str) -> None:
    decoder = AuraWire().decoder(None)
    assert read(decoder, data.draw(chunkings(text.encode()))) == text
    assert (decoder.finish_reason, decoder.usage) == (None, None)


@given(st.data(), st.binary(min_size=1))
def test_aura_replaces_invalid_utf8_and_never_breaks(data: st.DataObject, raw: bytes) -> None:
    """The body's end is the reply's end, however it ends (a cut character included)."""
    decoder = AuraWire().decoder("text/plain; charset=utf-8")
    assert read(decoder, data.draw(chunkings(raw))) == raw.decode("utf-8", "replace")


def test_aura_honours_the_charset() -> None:
    decoder = AuraWire().decoder("text/plain; charset=latin-1")
    assert read(decoder, ["é".encode("latin-1"), b"\xff"]) == "éÿ"


def test_aura_reads_a_cut_character_as_a_replacement() -> None:
    decoder = AuraWire().decoder(None)
    assert decoder.feed(b"ok\xe2\x82") == "ok"
    assert decoder.close() == "\ufffd"


def test_an_error_field_that_is_null_is_no_error() -> None:
    """Some servers send ``"error": null`` in every chunk."""
    decoder = OpenAIWire().decoder(None)
    chunk = {"choices": [{"index": 0, "delta": {"content": "fine"}}], "error": None}
    assert decoder.feed(b"data: " + json.dumps(chunk).encode() + b"\n\n") == "fine"


# -- extra_body and max_tokens on /api/chat -------------------------------------------------


def aura_body(extra_body: dict[str, object] | None, max_tokens: int | None = None) -> bytes:
    return AuraWire().body(
        [USER],
        model="openchat_3.6",
        temperature=0.5,
        max_tokens=max_tokens,
        extra_body=extra_body,
        key="k",
    )


@pytest.mark.parametrize("extra_body", [{"seed": 1}, {"": None}, {"stream_options": {}}])
def test_aura_refuses_extra_body_naming_the_wire(extra_body: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        aura_body(extra_body)
    assert "extra_body is for the OpenAI wire" in str(caught.value)
    assert "(wire='aura')" in str(caught.value)


def test_aura_takes_no_extra_body_and_the_default_token_limit() -> None:
    sent = aura_body(None)
    assert aura_body({}) == sent
    assert json.loads(sent)["model"]["tokenLimit"] == 8192  # max_tokens=None: the default
    assert json.loads(aura_body(None, 1000))["model"]["tokenLimit"] == 1000


# -- the OpenAI wire's settings --------------------------------------------------------------


def test_include_usage_off_is_a_wire_of_its_own() -> None:
    wire = wire_named("openai", include_usage=False)
    assert isinstance(wire, OpenAIWire)
    assert wire is not WIRES["openai"]
    assert not wire.include_usage
    sent = wire.body([USER], model="m", temperature=1, max_tokens=None, extra_body=None, key="")
    assert "stream_options" not in json.loads(sent)
    # The shared wires are unchanged; include_usage is the OpenAI wire's setting only.
    assert wire_named("openai") is WIRES["openai"]
    assert isinstance(WIRES["openai"], OpenAIWire)
    assert WIRES["openai"].include_usage
    assert wire_named("aura", include_usage=False) is WIRES["aura"]
    sent = WIRES["openai"].body(
        [USER], model="m", temperature=1, max_tokens=None, extra_body=None, key=""
    )
    assert json.loads(sent)["stream_options"] == {"include_usage": True}


# -- tool calls and choices in the OpenAI reply -----------------------------------------------


def delta(fields: dict[str, object], *, index: int = 0, reason: str | None = None) -> str:
    return json.dumps({"choices": [{"index": index, "delta": fields, "finish_reason": reason}]})


def calls(*pieces: object) -> str:
    return delta({"tool_calls": list(pieces)})


def call(call_id: str, name: str, arguments: str, kind: str = "function") -> dict[str, object]:
    return {"id": call_id, "type": kind, "function": {"name": name, "arguments": arguments}}


HEAD = {
    "index": 0,
    "id": "call_a",
    "type": "function",
    "function": {"name": "get_", "arguments": ""},
}
TOOLS = delta({}, reason="tool_calls")


@pytest.mark.parametrize(
    ("datas", "expected"),
    [
        (  # name and arguments in pieces; id and type from the head piece
            [
                calls(HEAD),
                calls({"index": 0, "function": {"name": "weather", "arguments": '{"city"'}}),
                calls({"index": 0, "id": "", "function": {"arguments": ': "Oslo"}'}}),
            ],
            [call("call_a", "get_weather", '{"city": "Oslo"}')],
        ),
        (  # no type: "function"; a type of its own is kept
            [
                calls({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}),
                calls({"index": 1, "id": "b", "type": "custom", "function": {"name": "g"}}),
            ],
            [call("a", "f", "{}"), call("b", "g", "", "custom")],
        ),
        (  # interleaved, and in index order whatever order they came in
            [
                calls({"index": 1, "id": "b", "function": {"name": "g", "arguments": "["}}),
                calls({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}}),
                calls({"index": 1, "function": {"arguments": "]"}}),
                calls({"index": 0, "function": {"arguments": "}"}}),
            ],
            [call("a", "f", "{}"), call("b", "g", "[]")],
        ),
        (  # no index: each call whole, at its place in the list
            [calls(call("a", "f", "1"), "junk", call("c", "h", "3"))],
            [call("a", "f", "1"), call("c", "h", "3")],
        ),
        (  # odd pieces add nothing, and break nothing
            [
                calls({"index": 0, "id": None, "type": 5, "function": {"name": 1}}),
                calls({"index": 0, "function": "f"}),
                calls({"index": 0, "id": "a", "function": {"name": "f", "arguments": None}}),
            ],
            [call("a", "f", "")],
        ),
        (  # text comes alongside: the tool calls do not eat it
            [
                delta({"content": "Let me look. ", "tool_calls": [HEAD]}),
                delta({"content": "Done."}),
            ],
            [call("call_a", "get_", "")],
        ),
    ],
)
def test_tool_calls_are_assembled_by_index(datas: list[str], expected: list[object]) -> None:
    decoder = OpenAIWire().decoder(None)
    text = read(decoder, [events(*datas, TOOLS, "[DONE]")])
    assert decoder.tool_calls == expected
    assert decoder.finish_reason == "tool_calls"
    assert text == "".join(
        json.loads(data)["choices"][0]["delta"].get("content", "") for data in datas
    )


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (framed(["a", "b"]), "ab"),
        (events(delta({"content": "a", "tool_calls": "not a list"}), STOP, "[DONE]"), "a"),
        (events(delta({"content": "a", "tool_call": [HEAD]}), STOP, "[DONE]"), "a"),
        (events(delta({"content": "a"}, index=1), delta({"tool_calls": None}), STOP), ""),
    ],
)
def test_no_tool_calls_is_none(raw: bytes, text: str) -> None:
    decoder = OpenAIWire().decoder(None)
    assert read(decoder, [raw]) == text
    assert decoder.tool_calls is None


@st.composite
def splits(draw: st.DrawFn, text: str) -> list[str]:
    """``text`` cut at drawn places, empty pieces included."""
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@given(st.data(), st.text(_chars, max_size=8), st.text(_chars, max_size=30), pieces)
def test_any_split_of_a_tool_call_assembles_the_same(
    data: st.DataObject, name: str, arguments: str, texts: list[str]
) -> None:
    head = {
        "index": 0,
        "id": "call_0",
        "type": "function",
        "function": {"name": "", "arguments": ""},
    }
    datas = [delta({"content": text}) for text in texts]
    datas.append(calls(head))
    datas += [calls({"index": 0, "function": {"name": piece}}) for piece in data.draw(splits(name))]
    datas += [
        calls({"index": 0, "function": {"arguments": piece}})
        for piece in data.draw(splits(arguments))
    ]
    raw = events(*datas, TOOLS, "[DONE]")
    decoder = OpenAIWire().decoder(None)
    assert read(decoder, data.draw(chunkings(raw))) == "".join(texts)
    assert decoder.tool_calls == [call("call_0", name, arguments)]


@given(
    st.data(), pieces, st.lists(st.tuples(st.text(max_size=5), st.text(max_size=40)), max_size=3)
)
def test_the_reference_servers_tool_calls_come_back_whole(
    data: st.DataObject, texts: list[str], tools: list[tuple[str, str]]
) -> None:
    """The server's framing against the client's reading: ids call_i, pieces by split_words."""
    raw = framed(texts, tool_calls=tuple(tools), finish_reason="tool_calls")
    decoder = OpenAIWire().decoder(None)
    assert read(decoder, data.draw(chunkings(raw))) == "".join(texts)
    expected = [call(f"call_{i}", name, arguments) for i, (name, arguments) in enumerate(tools)]
    assert decoder.tool_calls == (expected or None)


def test_only_the_first_choice_is_read() -> None:
    """A request with n above 1 gets its other choices skipped, not mixed into the reply."""
    decoder = OpenAIWire().decoder(None)
    other: dict[str, object] = {"content": "other", "tool_calls": [HEAD]}
    assert decoder.feed(events(delta(other, index=1, reason="length"))) == ""
    assert (decoder.finish_reason, decoder.tool_calls) == (None, None)
    both = {
        "choices": [
            {"index": 1, "delta": other, "finish_reason": "length"},
            "junk",
            {"index": 0, "delta": {"content": "mine"}, "finish_reason": None},
        ]
    }
    assert decoder.feed(events(json.dumps(both))) == "mine"
    assert (decoder.finish_reason, decoder.tool_calls) == (None, None)
    # A choice without an index is the first one (a server that leaves the index out).
    assert decoder.feed(events('{"choices": [null, {"delta": {"content": "!"}}]}')) == "!"
    closing = events(delta({}, index=1, reason="length"), delta({}, reason="stop"), "[DONE]")
    assert decoder.feed(closing) == ""
    assert (decoder.finish_reason, decoder.tool_calls) == ("stop", None)
    assert decoder.close() == ""
    # [DONE] came, but only another choice finished: the first one was cut.
    decoder = OpenAIWire().decoder(None)
    with pytest.raises(BrokenReply, match="without a finish_reason"):
        decoder.feed(events(delta({"content": "a"}), delta({}, index=1, reason="stop"), "[DONE]"))


def test_replies_that_cannot_carry_tool_calls_have_none() -> None:
    assert OpenAIWire().decoder("application/json").tool_calls is None
    assert AuraWire().decoder(None).tool_calls is None
    assert AuraWire().decoder("text/plain").tool_calls is None


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ([b'{"error": {"message": "no such model"}}'], "no such model"),
        ([b'{"err', b'or": "plain"}'], "plain"),
        ([b'{"error": null}'], "null"),
        ([b'{"id": "x", "choices": []}'], "one JSON object, not a stream of events"),
        ([b"not json"], "one JSON object, not a stream of events"),
        ([b"[" * 100_000], "one JSON object, not a stream of events"),
        # Only the first 8 KiB are kept: an error past them is not read.
        ([b'{"pad": "' + b"x" * 9000 + b'", "error": "late"}'], "not a stream of events"),
    ],
)
def test_a_json_body_is_reported_never_read_as_text(chunks: list[bytes], message: str) -> None:
    decoder = OpenAIWire().decoder("application/json; charset=utf-8")
    assert all(decoder.feed(chunk) == "" for chunk in chunks)
    assert (decoder.finish_reason, decoder.usage, decoder.tool_calls, decoder.done) == (
        None,
        None,
        None,
        False,
    )
    with pytest.raises(ReportedError) as caught:
        decoder.close()
    assert message in str(caught.value)


def test_an_empty_tool_calls_list_is_no_tool_call() -> None:
    # vLLM sends "tool_calls": [] with every delta of a plain text reply.
    decoder = OpenAIWire().decoder(None)
    text = decoder.feed(
        b'data: {"choices":[{"index":0,"delta":{"content":"a","tool_calls":[]}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    assert (text, decoder.finish_reason, decoder.tool_calls) == ("a", "stop", None)


@pytest.mark.parametrize("index", ["false", "0.0", '"0"'])
def test_only_an_int_index_0_is_the_first_choice(index: str) -> None:
    decoder = OpenAIWire().decoder(None)
    event = f'data: {{"choices":[{{"index":{index},"delta":{{"content":"x"}}}}]}}\n\n'
    assert decoder.feed(event.encode()) == ""


@pytest.mark.parametrize(
    ("status", "reason", "aura", "openai"),
    [
        (429, "Too Many Requests", True, True),
        (500, "Rate limit reached for gpt-4 in organization org-x on tokens per min.", True, False),
        (500, "RATE LIMIT REACHED", True, False),
        (500, "Internal Server Error", False, False),
        (503, "Rate limit reached", False, False),  # only openchat-ui's 500 hides a 429
    ],
)
def test_which_statuses_are_a_rate_limit(
    status: int, reason: str, aura: bool, openai: bool
) -> None:
    assert AuraWire().rate_limited(status, reason) is aura
    assert OpenAIWire().rate_limited(status, reason) is openai
