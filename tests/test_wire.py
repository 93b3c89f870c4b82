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
    OpenAIWire,
    ReplyDecoder,
    ReportedError,
    Wire,
    openai_body,
    wire_named,
)
from aura_anyio.testing._events import EventFraming

from .strategies import chunkings

USER = {"role": "user", "content": "hi"}
EXCERPT = 200  # what an error message keeps of what the server sent

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
    st.integers(min_value=1),
)
def test_openai_body_keeps_every_message_in_order(
    messages: list[dict[str, str]], model: str | ModelSpec, temperature: float, max_tokens: int
) -> None:
    body = openai_body(messages, model=model, temperature=temperature, max_tokens=max_tokens)
    assert body == {
        "model": model.id if isinstance(model, ModelSpec) else model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "temperature": temperature,
        "max_tokens": max_tokens,
        "stream": True,
    }
    sent = OpenAIWire().body(
        messages, model=model, temperature=temperature, max_tokens=max_tokens, key="k"
    )
    assert json.loads(sent) == body  # the key never travels in this body


def test_openai_body_is_utf8_json() -> None:
    sent = OpenAIWire().body(
        [{"role": "user", "content": "é😀"}], model="m", temperature=1, max_tokens=1, key=""
    )
    assert "é😀".encode() in sent
    assert json.loads(sent)["temperature"] == 1.0


@pytest.mark.parametrize(
    ("messages", "kwargs", "needle"),
    [
        ("hello", {}, "messages must be a sequence"),
        ([], {}, "at least one 'user' or 'assistant'"),
        ([{"role": "system", "content": "s"}], {}, "at least one 'user' or 'assistant'"),
        ([USER, "hi"], {}, "messages[1] must be a mapping"),
        ([USER, {"role": "bot", "content": "x"}], {}, "messages[1].role"),
        ([{"role": "user", "content": 3}], {}, "messages[0].content"),
        ([{"role": "user", "content": "\ud800"}], {}, "messages[0].content is not valid"),
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
        messages, model="openchat_3.6", temperature=0.5, max_tokens=1000, key="sk-secret"
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
    assert decoder.feed(events(content, "[DONE]", content, "{")) == "a"
    assert decoder.feed(events(content)) == ""
    assert decoder.close() == ""
    assert decoder.finish_reason is None  # [DONE] alone ends a reply


def test_an_event_stream_is_utf8_whatever_the_header_says() -> None:
    decoder = OpenAIWire().decoder("text/event-stream; charset=latin-1")
    assert read(decoder, [framed(["é😀"])]) == "é😀"


def test_a_finish_reason_without_done_ends_the_reply() -> None:
    framing = EventFraming(model="m", finish_reason="length")
    whole = framing.frame((b"a", b"b"))
    decoder = OpenAIWire().decoder(None)
    assert read(decoder, list(whole[:-1])) == "ab"  # no [DONE]
    assert decoder.usage == {"prompt_tokens": 0, "completion_tokens": 2, "total_tokens": 2}
    decoder = OpenAIWire().decoder(None)
    assert read(decoder, list(whole[:-2])) == "ab"  # no usage either
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
    with pytest.raises(BrokenReply, match=r"ended before data: \[DONE\]"):
        decoder.close()


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
        {"choices": [None, {"delta": {"content": "second choice"}}]},
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
    assert decoder.feed(events(json.dumps(chunk), "[DONE]")) == ""
    assert decoder.close() == ""
    assert (decoder.finish_reason, decoder.usage) == (None, None)


def test_usage_keeps_the_int_counts_and_the_last_object() -> None:
    decoder = OpenAIWire().decoder(None)
    usage = {"prompt_tokens": 3, "a": "x", "b": True, "c": 1.5, "d": None, "e": -1, "f": {}}
    decoder.feed(events(json.dumps({"choices": [], "usage": usage})))
    assert decoder.usage == {"prompt_tokens": 3, "e": -1}
    decoder.feed(events('{"usage": [1]}', '{"usage": null}'))  # not objects: ignored
    assert decoder.usage == {"prompt_tokens": 3, "e": -1}
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


@given(st.data(), st.text())
def test_aura_text_is_the_same_under_any_chunking(data: st.DataObject, text: str) -> None:
    decoder = AuraWire().decoder(None)
    assert read(decoder, data.draw(chunkings(text.encode()))) == text
    assert (decoder.finish_reason, decoder.usage) == (None, None)


@given(st.data(), st.binary())
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
