"""A careless user's mistakes with the providers' constructors, a deleted session, a
boolean option and the redaction hook: each is a typed ``srt`` error that names what was
wrong and says what to pass, with no secret in its text or repr, and nothing written.

Before these fixes: ``OpenAI(api_key=b"k")`` was an ``AttributeError``; ``Timeouts(-1)``,
``OpenAI("k", timeouts=5)`` or ``retry=3`` were taken and failed at the first send;
``OpenAI("k", timeout=5)`` (the SDK's spelling) a ``TypeError``; an append to a session
deleted elsewhere said only "the session was deleted"; ``rt.gc(dry_run="no")``
collected; a redaction hook's own exception escaped from ``append`` and ``send``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from srt import (
    Anthropic,
    AwsCredentials,
    Azure,
    AzureEndpoint,
    Bedrock,
    Local,
    OpenAI,
    OpenAICompatible,
    RetryPolicy,
    Timeouts,
)
from srt.testing import ProviderServer

#: A key shaped like a real one: no message or repr may show it.
SECRET = "sk-careless-SECRET-0123456789abcdef"
U = {"role": "user", "content": "hi"}
AZ = "https://res.openai.azure.com"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_BEARER_TOKEN_BEDROCK",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key="k") as server:
        yield server


def _endpoint() -> AzureEndpoint:
    return AzureEndpoint(AZ, deployment="prod-chat")


# -- 1. the providers' constructors -------------------------------------------------------

#: (what the user typed, a call, what the message must say).
MISTAKES: list[tuple[str, Callable[[], Any], str]] = [
    (
        "api_key bytes",
        lambda: OpenAI(api_key=SECRET.encode()),
        r"API key must be a str, got bytes.*decode",
    ),
    (
        "anthropic key bytes",
        lambda: Anthropic(SECRET.encode()),
        "Anthropic's API key must be a str",
    ),
    (
        "azure key bytes",
        lambda: Azure(_endpoint(), api_key=SECRET.encode()),
        "API key must be a str",
    ),
    ("azure token int", lambda: Azure(_endpoint(), token=5), "API key must be a str, got int"),
    (
        "bedrock key bytes",
        lambda: Bedrock(region="us-east-1", api_key=SECRET.encode()),
        "API key must be a str",
    ),
    (
        "compatible key bytes",
        lambda: OpenAICompatible("http://127.0.0.1:1/v1", api_key=SECRET.encode()),
        "API key must be a str",
    ),
    (
        "timeouts int",
        lambda: OpenAI(SECRET, timeouts=5),
        r"timeouts must be an srt\.Timeouts.*got int",
    ),
    (
        "timeouts dict",
        lambda: Anthropic(SECRET, timeouts={"connect": 5}),
        r"timeouts must be an srt\.Timeouts",
    ),
    (
        "retry int",
        lambda: OpenAI(SECRET, retry=3),
        r"retry must be an srt\.RetryPolicy, e\.g\. .*\(max_retries=3\), got int",
    ),
    (
        "retry on bedrock",
        lambda: Bedrock(region="us-east-1", api_key=SECRET, retry=True),
        "retry must be an srt.RetryPolicy",
    ),
    (
        "timeout= (the SDK's)",
        lambda: OpenAI(SECRET, timeout=5),
        r"takes no timeout=.*timeouts=srt\.Timeouts",
    ),
    (
        "max_retries= (the SDK's)",
        lambda: Anthropic(SECRET, max_retries=3),
        r"takes no max_retries=.*retry=srt\.RetryPolicy",
    ),
    ("a misspelt option", lambda: OpenAI(SECRET, organisation="org"), "did you mean organization="),
    (
        "a misspelt region",
        lambda: Bedrock(regoin="us-east-1", api_key=SECRET),
        "did you mean region=",
    ),
    ("proxy int", lambda: OpenAI(SECRET, proxy=3128), "proxy= must be a URL string, got int"),
    (
        "proxy ftp",
        lambda: OpenAI(SECRET, proxy=f"ftp://u:{SECRET}@proxy:21"),
        "proxy=: a proxy URL starts with http://",
    ),
    (
        "trust_env str",
        lambda: OpenAI(SECRET, trust_env="no"),
        "trust_env must be True or False, got str",
    ),
    (
        "verify int",
        lambda: OpenAI(SECRET, verify=1),
        "verify must be True, False, a CA bundle's path",
    ),
    ("http2 str", lambda: OpenAI(SECRET, http2="yes"), "http2 must be True, False or None"),
    (
        "transport str",
        lambda: OpenAI(SECRET, transport="httpx"),
        "transport must be an srt Transport",
    ),
    (
        "organization int",
        lambda: OpenAI(SECRET, organization=42),
        "organization must be a str, got int",
    ),
    (
        "project with a line break",
        lambda: OpenAI(SECRET, project="p\nx"),
        "project holds a character",
    ),
    ("api list", lambda: OpenAI(SECRET, api=["chat"]), "api must be 'chat' or 'responses'"),
    (
        "azure endpoint str",
        lambda: Azure(AZ, api_key=SECRET),
        r"endpoint must be an srt\.AzureEndpoint.*got str",
    ),
    (
        "azure prompt_cache_key str",
        lambda: Azure(_endpoint(), api_key=SECRET, prompt_cache_key="yes"),
        "prompt_cache_key must be True or False",
    ),
    (
        "azure api int",
        lambda: Azure(_endpoint(), api_key=SECRET, api=1),
        "api must be 'chat' or 'responses'",
    ),
    (
        "bedrock region int",
        lambda: Bedrock(region=1, api_key=SECRET),
        r"region must be an AWS region name.*got int",
    ),
    (
        "bedrock region a path",
        lambda: Bedrock(region="us-east-1/x", api_key=SECRET),
        "region must be an AWS region name",
    ),
    (
        "bedrock credentials tuple",
        lambda: Bedrock(region="us-east-1", credentials=("AKIDEXAMPLE", SECRET)),
        r"credentials must be an srt\.AwsCredentials",
    ),
    (
        "aws secret bytes",
        lambda: AwsCredentials("AKIDEXAMPLE", SECRET.encode()),
        "secret_access_key must be a str, got bytes",
    ),
    (
        "aws session token with a line break",
        lambda: AwsCredentials("AKIDEXAMPLE", "secret", SECRET + "\n"),
        "session_token holds a line break",
    ),
    (
        "aws secret with a line break",
        lambda: AwsCredentials("AKIDEXAMPLE", SECRET + "\n"),
        "secret_access_key holds a line break",
    ),
    (
        "compatible server_state str",
        lambda: OpenAICompatible("http://127.0.0.1:1/v1", server_state="no"),
        "server_state must be True or False",
    ),
    (
        "compatible extra_params list",
        lambda: OpenAICompatible("http://127.0.0.1:1/v1", extra_params=["cache_prompt"]),
        "extra_params must be a dict",
    ),
    (
        "local ctx_size str",
        lambda: Local(ctx_size="4096"),
        "ctx_size must be a whole number >= 64, got str",
    ),
    ("local slots 0", lambda: Local(slots=0), "slots must be a whole number >= 1, got 0"),
    ("local threads float", lambda: Local(threads=2.5), "threads must be a whole number >= 1"),
    ("local save_slots str", lambda: Local(save_slots="no"), "save_slots must be True or False"),
    ("local model int", lambda: Local(model=7), "model must be a GGUF file's path"),
    (
        "local startup_timeout str",
        lambda: Local(startup_timeout="60"),
        "startup_timeout must be a number",
    ),
    ("local options list", lambda: Local(options=[("sampling.seed", 1)]), "options must be a dict"),
    (
        "Timeouts negative",
        lambda: Timeouts(connect=-1),
        r"Timeouts connect= must be a number of seconds > 0, got -1",
    ),
    (
        "Timeouts str",
        lambda: Timeouts("5"),
        "Timeouts connect= must be a number of seconds > 0, got str",
    ),
    ("Timeouts zero total", lambda: Timeouts(total=0), "Timeouts total= must be"),
    ("Timeouts nan idle", lambda: Timeouts(idle=float("nan")), "Timeouts idle= must be"),
    (
        "RetryPolicy negative",
        lambda: RetryPolicy(max_retries=-1),
        r"max_retries= must be a whole number >= 0",
    ),
    (
        "RetryPolicy float",
        lambda: RetryPolicy(max_retries=2.5),
        "max_retries= must be a whole number",
    ),
    (
        "RetryPolicy str delay",
        lambda: RetryPolicy(initial_delay="1"),
        "initial_delay= must be a number of seconds >= 0, got str",
    ),
    (
        "RetryPolicy jitter",
        lambda: RetryPolicy(jitter=2),
        "jitter= must be a number from 0 to 1, got 2",
    ),
]


@pytest.mark.parametrize(("call", "match"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_a_provider_set_up_wrong_is_a_config_error_naming_the_argument(
    call: Callable[[], Any], match: str
) -> None:
    with pytest.raises(srt.ConfigError, match=match) as info:
        call()
    for text in (str(info.value), repr(info.value)):
        assert SECRET not in text and SECRET[:12] not in text


def test_what_worked_before_still_works(srv: ProviderServer, tmp_path: Path) -> None:
    """Whole seconds, no retry, every flag given as a bool, a CA path, an empty
    organization: taken as before, and the request goes out and is answered."""
    fine = [
        Timeouts(connect=1, idle=2, total=3),
        Timeouts(0.5, 1.5, 2.5),
        RetryPolicy(max_retries=0, initial_delay=0, max_delay=0, max_retry_after=0, jitter=0),
        RetryPolicy(jitter=1.0),
        AwsCredentials("AKIDEXAMPLE", "secret", None),
    ]
    assert len(fine) == 5
    p = OpenAI(
        "k",
        base_url=srv.url + "/v1",
        timeouts=Timeouts(connect=5, idle=30, total=60),
        retry=RetryPolicy(max_retries=1),
        verify=False,
        http2=False,
        trust_env=False,
        organization="",
        project=None,
    )
    with p, srt.Runtime(str(tmp_path / "srt.db")) as rt:
        s = rt.session("s")
        s.append(U)
        assert s.send(p, model="m").message["role"] == "assistant"
    assert srv.log and "openai-organization" not in srv.log[-1].headers
    compatible = OpenAICompatible("http://127.0.0.1:1/v1", server_state=True, extra_params={})
    assert compatible.server_state is True and compatible.extra_params == {}
    compatible.close()
    azure = Azure(_endpoint(), api_key="k", prompt_cache_key=False)
    assert azure.cache_key_param is None
    bedrock = Bedrock(region="eu-west-3", api_key="k", timeouts=Timeouts(connect=2))
    assert bedrock.url("m", False).startswith("https://bedrock-runtime.eu-west-3.")


# -- 3. a session deleted elsewhere ---------------------------------------------------------


def test_writing_to_a_session_deleted_elsewhere_names_it_and_says_what_to_do(
    store_url: str,
) -> None:
    with srt.Runtime(store_url) as rt, srt.Runtime(store_url) as other:
        s = rt.session("notes")
        s.append(U, {"role": "assistant", "content": "hello"})
        other.delete("notes")  # another process
        said = r"session 'notes' was deleted \(by another handle or process\); nothing was written"
        what = r"open or create it again with rt\.session\('notes'\)"
        calls: list[Callable[[], Any]] = [
            lambda: s.append({"role": "user", "content": "more"}),
            lambda: s.append({"role": "user", "content": "more"}, rebase=True),
            lambda: s.rewind(1),
            lambda: s.edit(0, {"role": "user", "content": "edited"}),
        ]
        for call in calls:
            with pytest.raises(srt.SessionNotFoundError, match=f"{said}: {what}") as info:
                call()
            assert isinstance(info.value.__cause__, srt.SessionNotFoundError)
        assert other.sessions() == []
        again = rt.session("notes")  # as the message says
        assert again.messages() == []
        again.append(U)
        assert [m["content"] for m in other.session("notes").messages()] == ["hi"]


# -- 4. boolean options -------------------------------------------------------------------


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[srt.Runtime]:
    with srt.Runtime(str(tmp_path / "srt.db")) as runtime:
        yield runtime


@pytest.mark.parametrize("value", ["no", "False", None, 0, 1, [], 0.0])
def test_a_boolean_option_that_is_not_a_bool_is_a_config_error(
    rt: srt.Runtime, srv: ProviderServer, value: Any
) -> None:
    s = rt.session("s")
    s.append(U, {"role": "assistant", "content": "hello"})
    rt.session("doomed").append({"role": "user", "content": "only here"})
    rt.delete("doomed")
    before = rt.gc(dry_run=True)
    assert before.messages == 1
    p = OpenAI("k", base_url=srv.url + "/v1")
    calls: dict[str, Callable[[], Any]] = {
        "dry_run": lambda: rt.gc(dry_run=value),
        "secure_delete": lambda: rt.gc(secure_delete=value),
        "create": lambda: rt.session("new", create=value),
        "rebase": lambda: s.append({"role": "user", "content": "x"}, rebase=value),
        "metadata": lambda: s.messages(metadata=value),
        "keep": lambda: s.send(p, model="m", keep=value),
        "include_partial": lambda: s.send(p, model="m", include_partial=value),
        "save_slots": lambda: Local(save_slots=value),
    }
    for name, call in calls.items():
        with pytest.raises(srt.ConfigError, match=f"^{name} must be True or False, got "):
            call()
    # nothing collected, created, appended or sent
    assert rt.gc(dry_run=True).messages == 1
    assert [i.name for i in rt.sessions()] == ["s"]
    assert len(s.messages()) == 2 and s.calls() == [] and srv.log == []
    p.close()


def test_the_boolean_options_still_take_bools(rt: srt.Runtime, srv: ProviderServer) -> None:
    s = rt.session("s", create=True)
    s.append(U, rebase=False)
    s.append({"role": "assistant", "content": "a"}, rebase=True)
    assert s.messages(metadata=True) == s.messages(metadata=False)
    with OpenAI("k", base_url=srv.url + "/v1") as p:
        s.send(p, model="m", append={"role": "user", "content": "b"}, keep=False)
    assert len(s.messages()) == 2 and len(s.calls()) == 1
    rt.delete("s")
    assert rt.gc(dry_run=True, secure_delete=False).messages > 0
    assert rt.gc(dry_run=False, secure_delete=True).messages > 0
    with pytest.raises(srt.SessionNotFoundError):
        rt.session("s", create=False)


# -- 5. the redaction hook ----------------------------------------------------------------


def _boom(text: str) -> str:
    if "sk-" in text:
        raise ValueError(f"refusing {text}")  # (its text quotes the message: never shown)
    return text


@pytest.mark.parametrize(
    ("hook", "match"),
    [
        (_boom, r"redaction hook \(Runtime\(redact=\.\.\.\)\) failed with ValueError; nothing"),
        (lambda t: None, r"must return the text to store, a str, got NoneType; nothing"),
        (lambda t: t.encode(), r"must return the text to store, a str, got bytes"),
        (lambda t: t[10**9], r"failed with IndexError"),
    ],
    ids=["raises", "returns None", "returns bytes", "IndexError"],
)
def test_a_failing_redaction_hook_is_an_invalid_message_error_and_nothing_is_written(
    tmp_path: Path, srv: ProviderServer, hook: Callable[[str], Any], match: str
) -> None:
    pasted = f"my key is {SECRET}"
    with (
        srt.Runtime(str(tmp_path / "srt.db"), redact=hook) as rt,
        OpenAI("k", base_url=srv.url + "/v1") as p,
    ):
        s = rt.session("s")
        calls: list[Callable[[], Any]] = [
            lambda: s.append({"role": "user", "content": pasted}),
            lambda: s.send(p, model="m", append={"role": "user", "content": pasted}),
            lambda: s.stream(p, model="m", append={"role": "user", "content": pasted}).text(),
        ]
        for call in calls:
            with pytest.raises(srt.InvalidMessageError, match=match) as info:
                call()
            assert SECRET not in str(info.value) and SECRET not in repr(info.value)
            if hook is _boom:  # the hook's own exception, chained
                assert isinstance(info.value.__cause__, ValueError)
                assert SECRET in str(info.value.__cause__)
        assert s.messages() == [] and s.calls() == [] and srv.log == []
    with open(tmp_path / "srt.db", "rb") as f:
        assert SECRET.encode() not in f.read()
    assert os.path.exists(tmp_path / "srt.db")


def test_an_srt_error_the_hook_raises_to_refuse_a_message_goes_through(tmp_path: Path) -> None:
    def refuse(text: str) -> str:
        if "sk-" in text:
            raise srt.InvalidMessageError("this message holds an API key: not stored")
        return text

    with srt.Runtime(str(tmp_path / "srt.db"), redact=refuse) as rt:
        s = rt.session("s")
        with pytest.raises(srt.InvalidMessageError, match=r"^this message holds an API key"):
            s.append({"role": "user", "content": SECRET})
        s.append(U)
        assert s.messages() == [U]
