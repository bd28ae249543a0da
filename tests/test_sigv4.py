"""``srt.providers.sigv4``: the AWS test-suite vectors, botocore as the oracle, no leaks.

botocore's ``SigV4Auth.add_auth`` takes the time from ``get_current_datetime``
(imported into ``botocore.auth``), so the cross-check patches that name to the
same fixed instant that is passed to ``sign(now=...)``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any
from unittest import mock
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from srt.errors import ConfigError
from srt.providers.sigv4 import (
    AwsCredentials,
    _canonical_query,
    _canonical_request,
    _canonical_uri,
    _host,
    sign,
)

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="
SUITE_TIME = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.timezone.utc)
BEDROCK = "https://bedrock-runtime.us-east-1.amazonaws.com"
MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"


def botocore_sign(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    creds: AwsCredentials,
    region: str,
    service: str,
    when: dt.datetime,
) -> Any:
    """The headers botocore's SigV4Auth puts on the same request at the same instant."""
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    naive = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    botocreds = Credentials(creds.access_key_id, creds.secret_access_key, creds.session_token)
    with mock.patch("botocore.auth.get_current_datetime", return_value=naive):
        SigV4Auth(botocreds, service, region).add_auth(request)
    return request.headers


# -- the AWS SigV4 test suite ------------------------------------------------------

SUITE = [
    ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),  # get-vanilla
    ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),  # post-vanilla
]


@pytest.mark.parametrize(("method", "signature"), SUITE)
def test_aws_test_suite_vanilla(method: str, signature: str) -> None:
    creds = AwsCredentials(AKID, SECRET)
    url = "https://example.amazonaws.com/"
    out = sign(method, url, {}, b"", creds, "us-east-1", "service", SUITE_TIME)
    expected = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )
    assert out == {"x-amz-date": "20150830T123600Z", "Authorization": expected}
    # botocore computes the same published values.
    theirs = botocore_sign(method, url, {}, b"", creds, "us-east-1", "service", SUITE_TIME)
    assert theirs["Authorization"] == expected


def test_get_vanilla_canonical_request() -> None:
    request, signed = _canonical_request(
        "get",
        urlsplit("https://example.amazonaws.com/"),
        {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"},
        hashlib.sha256(b"").hexdigest(),
    )
    assert signed == "host;x-amz-date"
    assert request == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


# -- canonical pieces --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("", "/"),
        ("/", "/"),
        (f"/model/{quote(MODEL, safe='')}/converse", "/model/" + MODEL[:-2] + "%253A0/converse"),
        (f"/model/{MODEL}/converse", "/model/" + MODEL[:-2] + "%3A0/converse"),
        ("//a//b/", "/a/b/"),
        ("/a/./b/../c", "/a/c"),
        ("/../..", "/"),
        ("/a b/ü~", "/a%20b/%C3%BC~"),
        ("/a%20b", "/a%2520b"),
    ],
)
def test_canonical_uri_double_encodes(path: str, canonical: str) -> None:
    assert _canonical_uri(path) == canonical


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("", ""),
        ("b=2&a=1&a=0", "a=0&a=1&b=2"),
        ("k", "k="),
        ("a=b c&c=%7e", "a=b%20c&c=~"),
        ("x=%FF&&y=a%2Fb", "x=%FF&y=a%2Fb"),
        ("Z=1&a=1", "Z=1&a=1"),
    ],
)
def test_canonical_query(query: str, canonical: str) -> None:
    assert _canonical_query(query) == canonical


@pytest.mark.parametrize(
    ("url", "host"),
    [
        (
            "https://Bedrock-Runtime.US-EAST-1.amazonaws.com/x",
            "bedrock-runtime.us-east-1.amazonaws.com",
        ),
        ("https://h:443/", "h"),
        ("http://h:80/", "h"),
        ("https://h:80/", "h:80"),
        ("http://localhost:8080/x", "localhost:8080"),
        ("https://user:pw@h/", "h"),
        ("https://[::1]:8443/", "[::1]:8443"),
    ],
)
def test_host_comes_from_the_url(url: str, host: str) -> None:
    assert _host(urlsplit(url)) == host


def test_bedrock_request_signs_the_double_encoded_model_id() -> None:
    url = f"{BEDROCK}/model/{quote(MODEL, safe='')}/converse-stream"
    headers = {
        "content-type": "application/json",
        "accept": "application/vnd.amazon.eventstream",
        "user-agent": "srt",
    }
    creds = AwsCredentials(AKID, SECRET, TOKEN)
    out = sign("POST", url, headers, b"{}", creds, "us-east-1", now=SUITE_TIME)
    assert out["x-amz-security-token"] == TOKEN
    assert "x-amz-content-sha256" not in out
    assert "/us-east-1/bedrock/aws4_request, " in out["Authorization"]
    assert (
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in out["Authorization"]
    )
    theirs = botocore_sign(
        "POST", url, {"content-type": "application/json"}, b"{}", creds, "us-east-1", "bedrock",
        SUITE_TIME,
    )  # fmt: skip
    assert out["Authorization"] == theirs["Authorization"]


def test_options_and_defaults() -> None:
    creds = AwsCredentials(AKID, SECRET)
    out = sign("POST", f"{BEDROCK}/x", {}, b"abc", creds, "us-east-1", include_content_sha256=True)
    assert out["x-amz-content-sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert "x-amz-content-sha256" in out["Authorization"]
    assert re.fullmatch(r"\d{8}T\d{6}Z", out["x-amz-date"])
    assert f"Credential={AKID}/{out['x-amz-date'][:8]}/" in out["Authorization"]
    # Naive means UTC; an aware time in another zone is converted.
    naive = SUITE_TIME.replace(tzinfo=None)
    paris = SUITE_TIME.astimezone(dt.timezone(dt.timedelta(hours=2)))
    a, b, c = (sign("GET", BEDROCK, {}, b"", creds, "r", now=t) for t in (SUITE_TIME, naive, paris))
    assert a == b == c
    # A caller's Host and x-amz-date are not signed twice; the URL's host wins.
    d = sign("GET", BEDROCK, {"Host": "evil", "X-Amz-Date": "x"}, b"", creds, "r", now=naive)
    assert d == a


# -- cross-check with botocore -----------------------------------------------------

MODEL_IDS = [
    MODEL,
    "us.anthropic.claude-sonnet-4-20250514-v1:0",
    "amazon.nova-pro-v1:0",
    "meta.llama3-70b-instruct-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0",
]
HOSTS = [
    "bedrock-runtime.us-east-1.amazonaws.com",
    "Bedrock-Runtime.EU-West-3.amazonaws.com",
    "bedrock-runtime.us-west-2.amazonaws.com:443",
    "localhost:8080",
    "127.0.0.1:80",
    "[::1]:8443",
]
PATH_SAFE = ["", ":", ":@!$'()*+,;="]  # how much the URL leaves unencoded
HEADER_TEXT = st.text(st.sampled_from([chr(c) for c in range(32, 127)] + ["\t"]), max_size=30)
X_AMZ = st.one_of(
    st.sampled_from(
        [
            "x-amz-target",
            "X-Amz-Meta-Foo",
            "x-amz-user-agent",
            "X-Amz-Security-Token",
            "x-amz-date",
            "X-Amz-Content-SHA256",
        ]
    ),
    st.from_regex(r"x-amz-[a-z0-9-]{1,10}", fullmatch=True),
)
CASINGS = [str.lower, str.upper, str.title]


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["https", "http"]))
    host = draw(st.sampled_from(HOSTS))
    safe = draw(st.sampled_from(PATH_SAFE))
    if draw(st.booleans()):
        model = draw(st.sampled_from(MODEL_IDS))
        op = draw(st.sampled_from(["converse", "converse-stream"]))
        path = f"/model/{quote(model, safe=safe)}/{op}"
    else:
        segments = draw(st.lists(st.one_of(st.text(max_size=8), st.sampled_from([".", ".."]))))
        path = "/" + "/".join(quote(s, safe=safe) for s in segments)
    pairs = draw(st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=4))
    query = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}" if v or not k else quote(k, safe="")
        for k, v in pairs
    )
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


@st.composite
def signed_headers(draw: st.DrawFn) -> dict[str, str]:
    """content-type and x-amz-* headers, in any case; two casings of one name may both appear."""
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        value = draw(st.sampled_from(["application/json", " text/plain;  charset=utf-8 "]))
        headers[draw(st.sampled_from(CASINGS))("content-type")] = value
    for name in draw(st.lists(X_AMZ, max_size=4)):
        headers[draw(st.sampled_from(CASINGS))(name)] = draw(HEADER_TEXT)
    return headers


creds_st = st.builds(
    AwsCredentials,
    st.from_regex(r"(AKIA|ASIA)[A-Z0-9]{16}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9/+]{40}", fullmatch=True),
    st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9/+=]{20,80}", fullmatch=True)),
)
unsigned_headers = st.dictionaries(
    st.sampled_from(["accept", "User-Agent", "x-amzn-trace-id", "Authorization", "Host"]),
    HEADER_TEXT,
)


@settings(max_examples=600)
@given(
    method=st.sampled_from(["POST", "GET", "post"]),
    url=urls(),
    headers=signed_headers(),
    extra=unsigned_headers,
    body=st.one_of(st.binary(max_size=200), st.just(b'{"messages":[]}')),
    creds=creds_st,
    region=st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2"]),
    service=st.sampled_from(["bedrock", "service", "execute-api"]),
    when=st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31)),
    aware=st.booleans(),
    include_sha=st.booleans(),
)
def test_authorization_matches_botocore(
    method: str,
    url: str,
    headers: dict[str, str],
    extra: dict[str, str],
    body: bytes,
    creds: AwsCredentials,
    region: str,
    service: str,
    when: dt.datetime,
    aware: bool,
    include_sha: bool,
) -> None:
    now = when.replace(tzinfo=dt.timezone.utc) if aware else when
    ours = sign(
        method,
        url,
        {**extra, **headers},
        body,
        creds,
        region,
        service,
        now,
        include_content_sha256=include_sha,
    )
    theirs_in = dict(headers)
    if include_sha:
        theirs_in = {k: v for k, v in headers.items() if k.lower() != "x-amz-content-sha256"}
        theirs_in["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    theirs = botocore_sign(method, url, theirs_in, body, creds, region, service, now)
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours["x-amz-date"] == theirs["X-Amz-Date"]
    assert ours.get("x-amz-security-token") == (
        creds.session_token and theirs["X-Amz-Security-Token"]
    )
    if include_sha:
        assert ours["x-amz-content-sha256"] == theirs["X-Amz-Content-SHA256"]
    assert set(ours) <= {
        "Authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    }


# -- credentials and secrecy -------------------------------------------------------


def test_repr_and_str_never_show_secrets() -> None:
    creds = AwsCredentials(AKID, SECRET, TOKEN)
    for text in (repr(creds), str(creds), f"{creds}", f"{creds!r}", repr([creds])):
        assert SECRET not in text and TOKEN not in text
        assert AKID in text
    assert repr(creds) == f"AwsCredentials(access_key_id='{AKID}')"


def test_from_env() -> None:
    env = {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET}
    assert AwsCredentials.from_env(env) == AwsCredentials(AKID, SECRET)
    with_token = AwsCredentials.from_env({**env, "AWS_SESSION_TOKEN": TOKEN})
    assert with_token == AwsCredentials(AKID, SECRET, TOKEN)
    assert AwsCredentials.from_env({**env, "AWS_SESSION_TOKEN": ""}) == AwsCredentials(AKID, SECRET)
    assert AwsCredentials.from_env(
        {"AWS_ACCESS_KEY_ID": f" {AKID}\n", "AWS_SECRET_ACCESS_KEY": SECRET}
    ) == (AwsCredentials(AKID, SECRET))
    assert AwsCredentials.from_env({}) is None
    assert AwsCredentials.from_env({"AWS_ACCESS_KEY_ID": AKID}) is None
    assert AwsCredentials.from_env({"AWS_SECRET_ACCESS_KEY": SECRET}) is None
    assert AwsCredentials.from_env({**env, "AWS_ACCESS_KEY_ID": ""}) is None


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    assert AwsCredentials.from_env() == AwsCredentials(AKID, SECRET, TOKEN)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert AwsCredentials.from_env() is None


def _chain(exc: BaseException | None) -> str:
    out = ""
    while exc is not None:
        out += f"{exc!r} {exc} {exc.args!r}\n"
        exc = exc.__cause__ or exc.__context__
    return out


@pytest.mark.parametrize(
    ("method", "url", "region", "service"),
    [
        ("GET", "ftp://h/", "us-east-1", "bedrock"),
        ("GET", "/relative/path", "us-east-1", "bedrock"),
        ("GET", "https:///no-host", "us-east-1", "bedrock"),
        ("GET", "https://h:99999/", "us-east-1", "bedrock"),
        ("GET", "https://h:port/", "us-east-1", "bedrock"),
        ("GET", "https://[::1/", "us-east-1", "bedrock"),
        ("GET", BEDROCK, "", "bedrock"),
        ("GET", BEDROCK, "us/east", "bedrock"),
        ("GET", BEDROCK, "us-east-1", ""),
        ("", BEDROCK, "us-east-1", "bedrock"),
    ],
)
def test_sign_errors_are_config_errors_without_secrets(
    method: str, url: str, region: str, service: str
) -> None:
    creds = AwsCredentials(AKID, SECRET, TOKEN)
    with pytest.raises(ConfigError) as info:
        sign(method, url, {"x-amz-target": SECRET}, b"", creds, region, service, SUITE_TIME)
    text = _chain(info.value)
    assert SECRET not in text and TOKEN not in text


@pytest.mark.parametrize(("key_id", "secret"), [("", SECRET), (AKID, "")])
def test_empty_credentials_are_rejected_without_secrets(key_id: str, secret: str) -> None:
    with pytest.raises(ConfigError) as info:
        AwsCredentials(key_id, secret, TOKEN)
    text = _chain(info.value)
    assert SECRET not in text and TOKEN not in text


def test_the_signature_does_not_contain_the_secret() -> None:
    creds = AwsCredentials(AKID, SECRET, TOKEN)
    out = sign("POST", BEDROCK + "/model/x/converse", {}, b"{}", creds, "us-east-1")
    assert SECRET not in str(out)
    assert TOKEN not in out["Authorization"]
