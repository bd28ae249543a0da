"""The local provider server's Bedrock Converse endpoints: botocore's event-stream decoder
proves the framing and its SigV4 signer the auth; cache points and validation.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import ChecksumMismatch
from testing_server_support import (
    BEDROCK_H,
    BEDROCK_MODEL,
    CONVERSE,
    LONG,
    bedrock_url,
    frames,
)

from srt.testing import (
    ProviderServer,
    count_tokens,
    encode_event_frame,
    ntokens,
)

# -- Bedrock Converse ------------------------------------------------------------------


def test_bedrock_converse(srv: ProviderServer, http: httpx.Client) -> None:
    body = {
        **CONVERSE,
        "system": [{"text": "be nice"}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0},
    }
    r = http.post(bedrock_url(srv), json=body, headers=BEDROCK_H)
    assert r.status_code == 200
    out = r.json()
    assert out["stopReason"] == "end_turn" and out["output"]["message"]["role"] == "assistant"
    text = out["output"]["message"]["content"][0]["text"]
    assert text.startswith("reply 1 to hi")
    total = count_tokens("bedrock.converse", body, model=BEDROCK_MODEL)
    assert srv.log[-1].model == BEDROCK_MODEL
    u = out["usage"]
    assert (
        u["inputTokens"],
        u["outputTokens"],
        u["cacheReadInputTokens"],
        u["cacheWriteInputTokens"],
    ) == (total, ntokens(text), 0, 0)
    assert u["totalTokens"] == total + ntokens(text) and out["metrics"]["latencyMs"] >= 1
    srv.script("bedrock", [{"tool_calls": [{"name": "calc", "arguments": {"x": 1}}]}])
    tools = {"tools": [{"toolSpec": {"name": "calc", "inputSchema": {"json": {"type": "object"}}}}]}
    r = http.post(bedrock_url(srv), json={**CONVERSE, "toolConfig": tools}, headers=BEDROCK_H)
    use = r.json()["output"]["message"]["content"][0]["toolUse"]
    assert r.json()["stopReason"] == "tool_use" and use["input"] == {"x": 1}
    follow = {
        "toolConfig": tools,
        "messages": [
            *CONVERSE["messages"],
            {"role": "assistant", "content": [{"toolUse": use}]},
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"y": 2}}]}}
                ],
            },
        ],
    }
    assert http.post(bedrock_url(srv), json=follow, headers=BEDROCK_H).status_code == 200


def test_bedrock_stream_decodes_with_botocore(srv: ProviderServer, http: httpx.Client) -> None:
    srv.script("converse_stream", ["ünïcode stream from bedrock, in pieces"])
    r = http.post(bedrock_url(srv, stream=True), json=CONVERSE, headers=BEDROCK_H)
    assert r.headers["content-type"] == "application/vnd.amazon.eventstream"
    got = frames(r.content)
    kinds = [h[":event-type"] for h, _ in got]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert all(
        h[":message-type"] == "event" and h[":content-type"] == "application/json" for h, _ in got
    )
    payloads = [json.loads(p) for _, p in got]
    text = "".join(
        p["delta"]["text"] for h, p in zip(kinds, payloads, strict=True) if h == "contentBlockDelta"
    )
    assert text == "ünïcode stream from bedrock, in pieces"
    assert payloads[-2]["stopReason"] == "end_turn"
    assert payloads[-1]["usage"]["outputTokens"] == ntokens(text)
    srv.script(
        "converse_stream",
        [{"tool_calls": [{"name": "calc", "arguments": {"x": 12345678901234567890}}]}],
    )
    r = http.post(bedrock_url(srv, stream=True), json=CONVERSE, headers=BEDROCK_H)
    got = frames(r.content)
    start = next(json.loads(p) for h, p in got if h[":event-type"] == "contentBlockStart")
    assert start["start"]["toolUse"]["name"] == "calc"
    args = "".join(
        json.loads(p)["delta"]["toolUse"]["input"]
        for h, p in got
        if h[":event-type"] == "contentBlockDelta"
    )
    assert json.loads(args) == {"x": 12345678901234567890}


def test_encode_event_frame_round_trip() -> None:
    headers = {":event-type": "contentBlockDelta", ":message-type": "event", "x-ünï": "välue"}
    payload = '{"delta":{"text":"日本語"}}'.encode()
    raw = encode_event_frame(headers, payload) + encode_event_frame({"a": ""}, b"")
    [(h1, p1), (h2, p2)] = frames(raw)
    assert (h1, p1, h2, p2) == (headers, payload, {"a": ""}, b"")
    broken = bytearray(raw)
    broken[20] ^= 1
    with pytest.raises(ChecksumMismatch):
        frames(bytes(broken))


def test_bedrock_auth(srv: ProviderServer, http: httpx.Client) -> None:
    url = bedrock_url(srv)
    r = http.post(url, json=CONVERSE)
    assert r.status_code == 403 and r.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    assert "message" in r.json()
    body = json.dumps(CONVERSE).encode()

    def signed(service: str, headers_to_drop: tuple[str, ...] = ()) -> httpx.Response:
        req = AWSRequest(
            method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), service, "us-east-1").add_auth(req)
        hdrs = dict(req.headers.items())
        for name in headers_to_drop:
            hdrs.pop(name)
        return http.post(url, content=body, headers=hdrs)

    assert signed("bedrock").status_code == 200
    assert srv.log[-1].headers["authorization"] == "AWS4-HMAC-SHA256 <redacted>"
    r = signed("s3")
    assert r.status_code == 403 and r.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert signed("bedrock", ("X-Amz-Date",)).status_code == 403
    bad = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/bedrock/"
        "aws4_request, SignedHeaders=content-type;x-amz-date, Signature=" + "0" * 64,
        "x-amz-date": "20250101T000000Z",
    }
    r = http.post(url, json=CONVERSE, headers=bad)
    assert r.status_code == 403 and "host" in r.json()["message"]


def test_bedrock_cache_points_and_validation(srv: ProviderServer, http: httpx.Client) -> None:
    cp = {"cachePoint": {"type": "default"}}
    body = {
        "system": [{"text": LONG}, cp],
        "messages": [{"role": "user", "content": [{"text": "q1"}, cp]}],
    }
    u1 = http.post(bedrock_url(srv), json=body, headers=BEDROCK_H).json()["usage"]
    b = srv.log[-1].boundaries
    assert srv.log[-1].breakpoints == [(0, "5m"), (1, "5m")]
    assert (u1["cacheWriteInputTokens"], u1["cacheReadInputTokens"], u1["inputTokens"]) == (
        b[1],
        0,
        0,
    )
    u2 = http.post(bedrock_url(srv, stream=True), json=body, headers=BEDROCK_H)
    meta = json.loads(frames(u2.content)[-1][1])["usage"]
    assert (meta["cacheReadInputTokens"], meta["cacheWriteInputTokens"]) == (b[1], 0)
    other = bedrock_url(srv, model="anthropic.claude-haiku-4-5-20251001-v1:0")
    u3 = http.post(other, json=body, headers=BEDROCK_H).json()["usage"]
    assert u3["cacheWriteInputTokens"] == 0 and u3["inputTokens"] == b[-1]  # haiku-4: 4,096 minimum

    def rejected(payload: dict[str, Any], needle: str) -> None:
        r = http.post(bedrock_url(srv), json=payload, headers=BEDROCK_H)
        assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "ValidationException"
        assert needle in r.json()["message"]

    five = {
        "messages": [
            {"role": "user", "content": [x for i in range(5) for x in ({"text": f"t{i}"}, cp)]}
        ]
    }
    rejected(five, "maximum of 4")
    rejected({**CONVERSE, "modelId": "x"}, "modelId")
    rejected(
        {
            "messages": [
                {"role": "user", "content": [{"text": "a"}]},
                {"role": "user", "content": [{"text": "b"}]},
            ]
        },
        "alternate",
    )
    rejected({"messages": [{"role": "user", "content": [{"text": " "}]}]}, "blank")
    late = {
        "system": [{"text": "s"}, cp],
        "messages": [
            {
                "role": "user",
                "content": [{"text": "a"}, {"cachePoint": {"type": "default", "ttl": "1h"}}],
            }
        ],
    }
    rejected(late, "TTL")
    rejected(
        {
            "messages": [
                {"role": "user", "content": [{"toolResult": {"toolUseId": "nope", "content": []}}]}
            ]
        },
        "nope",
    )
