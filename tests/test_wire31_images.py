"""Images: what each target takes, decided per target, and degenerate image input refused.

* ``openai.chat`` sent any image as stored, whatever its media type or URL scheme. OpenAI
  and Azure OpenAI take PNG, JPEG, GIF and WebP, from an http(s) URL or a base64 data URL:
  another is refused as the request is built (``UnsupportedFeatureError`` naming the
  format, so its provider, the type or scheme and the part), before anything is sent or
  recorded. An OpenAI-compatible server (``OpenAICompatible``, the local provider) may
  take more (a BMP, vLLM's ``file://`` URLs): its requests send the image as it is, in
  Chat and in Responses.
* An empty base64 data URL (``data:image/png;base64,``) passed ``canonicalize``; so did a
  data URL that is not base64 and a URL with no scheme (``example.com/a.png``, ``""``).
  No provider takes them: each is an ``InvalidMessageError`` naming the message and the
  part, in every shape ``append`` reads, and nothing is written.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.errors import InvalidMessageError, UnsupportedFeatureError
from srt.message import canonicalize, dumps
from srt.providers import OpenAI, OpenAICompatible
from srt.testing import ProviderServer
from srt.wire import NAMES, Target, build_body, get_format
from test_wire30_input import PNG, _shapes

KEY = "sk-test-wire31"
BMP = {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}
FILE = {"type": "image_url", "image_url": {"url": "file:///srv/images/a.png"}}


def _see(part: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": "See:"}, part]}


@pytest.mark.parametrize("fmt", ["openai.chat", "azure.chat"])
def test_chat_refuses_an_image_type_openai_does_not_take_naming_it(
    rt: srt.Runtime, fmt: str
) -> None:
    s = rt.session("bmp")
    s.append(_see(BMP))
    with pytest.raises(UnsupportedFeatureError) as err:
        s.request(fmt, model="m")
    assert str(err.value) == f"{fmt} cannot express image/bmp images (a user message's content[1])"


@pytest.mark.parametrize("fmt", ["openai.chat", "azure.chat", "openai.responses"])
def test_openai_formats_refuse_an_image_url_scheme_openai_does_not_take(
    rt: srt.Runtime, fmt: str
) -> None:
    s = rt.session("file")
    s.append(_see(FILE))
    with pytest.raises(UnsupportedFeatureError) as err:
        s.request(fmt, model="m")
    assert str(err.value) == (
        f"{fmt} cannot express file image URLs (a user message's content[1]): its provider "
        "takes http(s) URLs and base64 data URLs"
    )


@pytest.mark.parametrize("fmt", ["openai.chat", "azure.chat", "openai.responses"])
def test_openai_formats_take_the_images_openai_takes(rt: srt.Runtime, fmt: str) -> None:
    s = rt.session("ok")
    for media in ("image/png", "image/jpeg", "image/gif", "image/webp"):
        s.append(_see({"type": "image_url", "image_url": {"url": f"data:{media};base64,{PNG}"}}))
    s.append(_see({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}))
    s.append(_see({"type": "image_url", "image_url": {"url": "HTTP://example.com/a.png"}}))
    assert s.request(fmt, model="m").startswith(b'{"model":"m"')


def test_an_openai_send_with_a_bmp_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with ProviderServer(api_key=KEY) as srv, srt.Runtime(str(tmp_path / "s.db")) as rt:
        s = rt.session("bmp")
        s.append(_see(BMP))
        provider = OpenAI(api="chat", api_key=KEY, base_url=srv.url + "/v1")
        with closing(provider), pytest.raises(UnsupportedFeatureError, match="image/bmp"):
            s.send(provider, model="gpt-4o-mini")
        assert srv.log == []  # nothing reached the server
        assert s.calls() == []  # no ledger row
        assert len(s) == 1  # nothing appended


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_compatible_server_gets_its_images_as_they_are(tmp_path: Path, api: str) -> None:
    # (the fake plays vLLM: as OpenAI, it would refuse them; ``test_fakes31_refusals``)
    server = ProviderServer(api_key=KEY, imitate="vllm")
    with server as srv, srt.Runtime(str(tmp_path / "s.db")) as rt:
        s = rt.session("bmp")
        s.append(_see(BMP))
        s.append(_see(FILE))
        provider = OpenAICompatible(srv.url + "/v1", api_key=KEY, api=api)
        with closing(provider):
            s.send(provider, model="gpt-4o-mini")
        (rec,) = srv.log
        sent = str(rec.body)
        assert "data:image/bmp;base64,Qk0=" in sent and "file:///srv/images/a.png" in sent
        assert len(s) == 3
        # The ledger row's body is rebuilt as sent (``srt verify``).
        report = rt.verify_ledger()
        assert (report.checked, report.faults) == (1, ()), report


def test_any_image_is_the_same_format_made_once() -> None:
    from srt.wire.images import any_image

    for name in NAMES:
        fmt = get_format(name)
        loose = any_image(fmt)
        assert loose.name == fmt.name and loose is any_image(fmt)
        assert loose.image_types is None and loose.image_schemes is None
    chat = get_format("openai.chat")
    assert any_image(chat) is not chat  # (it checks, so a copy)
    assert chat.keyed() is chat  # (keys were already sent)


# -- degenerate image input ---------------------------------------------------------------


@pytest.mark.parametrize("where", range(4))
def test_an_empty_base64_image_is_refused_in_every_shape(store_rt: srt.Runtime, where: int) -> None:
    s = store_rt.session("empty")
    msg = _shapes("")[where]
    with pytest.raises(InvalidMessageError) as err:
        s.append(msg)
    assert str(err.value) == (
        "the user message's content[1] (an image part): its data URL holds no data (an empty image)"
    )
    assert len(store_rt.session("empty")) == 0


def test_image_bytes_that_are_empty_are_refused(store_rt: srt.Runtime) -> None:
    s = store_rt.session("empty")
    with pytest.raises(InvalidMessageError, match=r"content\[0\] .* holds no data"):
        s.append({"role": "user", "content": [{"type": "image", "data": b""}]})
    assert len(s) == 0


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("data:image/png,iVBORw0KGgo=", "its data URL is not base64"),
        ("data:image/png;base64,", "its data URL holds no data"),
        ("DATA:image/png;base64,", "its data URL holds no data"),
        ("example.com/a.png", "its URL 'example.com/a.png' has no scheme"),
        ("//example.com/a.png", "its URL '//example.com/a.png' has no scheme"),
        ("", "its URL '' has no scheme"),
        (" https://example.com/a.png", "its URL ' https://example.com/a.png' has no scheme"),
    ],
)
def test_a_degenerate_image_url_is_refused_before_it_is_stored(
    store_rt: srt.Runtime, url: str, says: str
) -> None:
    s = store_rt.session("bad")
    shapes = [
        _see({"type": "image_url", "image_url": {"url": url}}),
        _see({"type": "image_url", "image_url": url}),
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "See:"},
                {"type": "input_image", "image_url": url},
            ],
        },
    ]
    for msg in shapes:
        with pytest.raises(InvalidMessageError) as err:
            s.append(msg)
        assert str(err.value).startswith(
            f"the user message's content[1] (an image part): {says}"
        ), msg
    assert len(store_rt.session("bad")) == 0


def test_an_anthropic_url_image_with_no_scheme_is_refused(store_rt: srt.Runtime) -> None:
    s = store_rt.session("bad")
    msg = {
        "role": "user",
        "content": [
            {"type": "text", "text": "See:"},
            {"type": "image", "source": {"type": "url", "url": "example.com/a.png"}},
        ],
    }
    with pytest.raises(InvalidMessageError, match=r"content\[1\] .* has no scheme"):
        s.append(msg)
    assert len(s) == 0


@pytest.mark.parametrize("fmt", ["anthropic.messages", "bedrock.converse"])
def test_a_stored_data_url_that_is_not_base64_is_still_refused_by_block_formats(
    fmt: str,
) -> None:
    # (stored before canonicalize refused it: the body as such a message was stored)
    body = dumps(_see({"type": "image_url", "image_url": {"url": "data:image/png,raw"}}))
    with pytest.raises(UnsupportedFeatureError) as err:
        get_format(fmt).render(body, Target(fmt.split(".")[0], "m"))
    assert err.value.feature == "image data URLs that are not base64 (a user message's content[1])"


@pytest.mark.parametrize("fmt", ["openai.chat", "azure.chat", "openai.responses"])
def test_openai_formats_refuse_an_image_detail_openai_does_not_take(
    rt: srt.Runtime, fmt: str
) -> None:
    s = rt.session("detail")
    for detail in ("auto", "low", "high", "original"):  # (the SDKs' ImageDetail)
        url = f"data:image/png;base64,{PNG}"
        s.append(_see({"type": "image_url", "image_url": {"url": url, "detail": detail}}))
    s.request(fmt, model="m")
    odd = _see({"type": "image_url", "image_url": {"url": "https://e.com/a.png", "detail": "max"}})
    s.append(odd)
    with pytest.raises(UnsupportedFeatureError) as err:
        s.request(fmt, model="m")
    assert str(err.value) == (
        f"{fmt} cannot express the image detail 'max' (a user message's content[1]): its "
        "provider takes auto, high, low, original"
    )
    # An OpenAI-compatible server's copy sends it as it is.
    from srt.wire.images import any_image

    body = build_body(any_image(get_format(fmt)), [canonicalize(odd)[0]], model="m")
    assert b'"detail":"max"' in body


@pytest.mark.parametrize("fmt", ["openai.chat", "azure.chat"])
@pytest.mark.parametrize("role", ["system", "developer", "assistant"])
def test_chat_refuses_an_image_in_a_message_that_takes_none(
    rt: srt.Runtime, fmt: str, role: str
) -> None:
    # (the SDK: a system or developer message's content parts are text parts, an
    # assistant's text or refusal parts; only a user message's take images)
    url = f"data:image/png;base64,{PNG}"
    msg = {"role": role, "content": [{"type": "text", "text": "x"}, _see_part(url)]}
    s = rt.session("roles")
    s.append([{"role": "user", "content": "q"}, msg] if role == "assistant" else [msg])
    with pytest.raises(UnsupportedFeatureError) as err:
        s.request(fmt, model="m")
    assert (
        str(err.value) == f"{fmt} cannot express image_url parts in a {role} message's content[1]"
    )
    from srt.wire.images import any_image

    # An OpenAI-compatible server's copy sends it as it is.
    assert url.encode() in build_body(any_image(get_format(fmt)), [canonicalize(msg)[0]], model="m")


def _see_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}
