"""Azure usage is priced by the model the reply names (brief usage19).

An Azure request names a deployment, whose name is the user's own ("prod-chat"); the
reply's body names the model the deployment runs. The ledger keeps that model
(``reply_model``, when it is not the one asked for) and the price lookup uses it: on
Azure before the deployment's name (a deployment named "gpt-4o" may run gpt-4o-mini),
elsewhere after the model asked for. An override or local pattern for the deployment's
name still wins. Before, a deployment named for no model was unpriced. Over loopback,
with srt.testing's Azure imitation serving the reply Azure sends.
"""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any

import pytest

import srt
from srt.pricing import Price, Pricing
from srt.providers import Azure
from srt.testing import ProviderServer
from srt.wire.azure import AzureEndpoint
from support import run_cli

JSON_HEADERS = {"Content-Type": "application/json"}
MINI = "gpt-4o-mini-2024-07-18"


def _reply(model: str) -> bytes:
    """Azure's Chat Completions reply: the model the deployment runs, 1,000 input tokens
    (400 of them cache reads) and 100 output tokens."""
    return json.dumps(
        {
            "id": "chatcmpl-az",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Hello."}}],
            "usage": {"prompt_tokens": 1_000, "completion_tokens": 100, "total_tokens": 1_100,
                      "prompt_tokens_details": {"cached_tokens": 400}},
        }
    ).encode()  # fmt: skip


def _send(rt: srt.Runtime, srv: ProviderServer, deployment: str, served: str) -> dict[str, Any]:
    ep = AzureEndpoint(srv.url, deployment=deployment, api_version="2024-10-21")
    srv.fault("azure.chat", "status", code=200, body=_reply(served), headers=JSON_HEADERS)
    s = rt.session(f"az-{deployment}")
    s.append({"role": "user", "content": "Hello?"})
    with closing(Azure(ep, api_key="azure-key-0123456789")) as p:
        s.send(p, model=deployment)
    (row,) = s.calls()
    return row


def test_a_deployment_is_priced_by_the_model_its_reply_names(store_url: str) -> None:
    mini = Pricing().rates("gpt-4o-mini", "azure")
    assert mini is not None
    want_input = (600 * mini.input + 400 * mini.cache_read) / 1e6
    with srt.Runtime(store_url) as rt, ProviderServer() as srv:
        row = _send(rt, srv, "prod-chat", MINI)
        assert (row["model"], row["reply_model"], row["provider"]) == ("prod-chat", MINI, "azure")
        report = rt.session("az-prod-chat").savings()
        assert report.priced_requests == 1 and report.unpriced_models == ()
        assert report.billed_input_usd == pytest.approx(want_input)
        assert report.output_usd == pytest.approx(100 * mini.output / 1e6)
        # A deployment named for another model is priced as the model it runs.
        named = _send(rt, srv, "gpt-4o", MINI)
        assert Pricing().request_cost(named) == Pricing().request_cost(row)
        # The user's price for the deployment's name wins over the data's.
        own = Pricing({"prod-*": Price(input=1.0, cached_input=0.5, output=2.0)})
        cost = own.request_cost(row)
        assert cost is not None and cost[0] == pytest.approx((600 + 200) / 1e6)
        # A reply naming the model asked for records none.
        same = _send(rt, srv, "gpt-4o-mini", "gpt-4o-mini")
        assert same["reply_model"] is None
    code, out, err = run_cli("--db", store_url, "stats", "az-prod-chat", "--json")
    assert code == 0, err
    cost = json.loads(out)["cost"]
    assert (cost["priced_requests"], cost["unpriced_models"]) == (1, [])
    assert cost["input_usd"] == pytest.approx(round(want_input, 6))


def test_elsewhere_the_model_asked_for_is_priced_first() -> None:
    """An OpenAI reply names a dated snapshot: the model asked for prices the row, and
    the reply's model only when the data does not know the one asked for."""
    row = {"id": 1, "provider": "openai", "model": "gpt-4o", "reply_model": MINI, "at": None,
           "input_tokens": 1_000_000, "output_tokens": 0}  # fmt: skip
    r = Pricing().row_rates(row)
    assert r is not None and r.model == "gpt-4o"
    r = Pricing().row_rates({**row, "model": "my-alias"})
    assert r is not None and r.model == "gpt-4o-mini"
    with pytest.raises(srt.ConfigError, match="ledger row 1: reply_model must be a string"):
        Pricing().row_rates({**row, "reply_model": 5})


def test_older_stores_gain_the_column(store_url: str) -> None:
    """A SQLite file of schema v7 (a PostgreSQL store of v6) gains ``reply_model``: its
    rows hold None there, and a new Azure row is priced by its reply's model."""
    with srt.Runtime(store_url) as rt, ProviderServer() as srv:
        _send(rt, srv, "prod-chat", MINI)
    if store_url.startswith("postgresql"):
        import psycopg

        from pg_support import server_url

        schema = store_url.rsplit("schema=", 1)[1]
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f'ALTER TABLE "{schema}".calls DROP COLUMN reply_model')
            conn.execute(f'UPDATE "{schema}".srt_schema SET version = 6')
    else:
        import apsw

        conn = apsw.Connection(store_url)
        conn.execute("ALTER TABLE calls DROP COLUMN reply_model")
        conn.execute("PRAGMA user_version=7")
        conn.close()
    with srt.Runtime(store_url) as rt, ProviderServer() as srv:
        (old,) = rt.calls()
        assert old["reply_model"] is None
        assert Pricing().request_cost(old) is None  # (what it was: a deployment's name)
        new = _send(rt, srv, "prod-chat-2", MINI)
        assert new["reply_model"] == MINI and Pricing().request_cost(new) is not None


def test_a_reply_model_echoing_the_key_keeps_no_key(db_path: str) -> None:
    key = "azure-key-0123456789"
    with srt.Runtime(db_path) as rt, ProviderServer() as srv:
        row = _send(rt, srv, "prod-chat", f"gpt-4o-mini {key}")
    assert row["reply_model"] is not None and key not in row["reply_model"]
    assert row["reply_model"].startswith("gpt-4o-mini ")


def _reply_naming_no_model() -> bytes:
    """An Azure Chat reply whose body names no model (a gateway in front of Azure that
    drops it): 1,000 input tokens, 400 read from the cache, 100 output."""
    data = json.loads(_reply(MINI))
    del data["model"]
    return json.dumps(data).encode()


def test_predict_prices_a_deployment_by_the_model_it_runs(db_path: str) -> None:
    """No reply to read the model from: ``Azure(deployments=...)`` says which model a
    deployment runs, and ``predict`` prices it as that model at Azure's prices. Without
    it, a deployment named for no model stays unpriced, as before; the user's price for
    the deployment's name still wins over both."""
    ep = AzureEndpoint("my-resource", deployment="prod-chat", api_version="2024-10-21")
    mapped = Azure(ep, api_key="azure-key-0123456789", deployments={"prod-chat": "gpt-4o-mini"})
    bare = Azure(ep, api_key="azure-key-0123456789")
    with srt.Runtime(db_path) as rt:
        s = rt.session("predict")
        s.append({"role": "user", "content": "What does a deployment cost? " * 200})
        ex, price = s.predict(model="prod-chat", provider=mapped)
        assert ex.total_tokens > 1_000
        assert price is not None
        assert price == Pricing().predict("gpt-4o-mini", ex.total_tokens, ex.cached_tokens, "azure")
        mini = Pricing().rates("gpt-4o-mini", "azure")
        assert mini is not None and price[1] == pytest.approx(ex.total_tokens * mini.input / 1e6)
        # No mapping, or no provider: the deployment's name alone, which no data prices.
        assert s.predict(model="prod-chat", provider=bare)[1] is None
        assert s.predict("azure.chat", model="prod-chat")[1] is None
        assert mapped.served_model("other-deployment") is None
        own = Pricing({"prod-*": Price(input=1.0, cached_input=0.5, output=2.0)})
        _, priced = s.predict(model="prod-chat", provider=mapped, pricing=own)
        assert priced is not None and priced[1] == pytest.approx(ex.total_tokens / 1e6)


def test_a_reply_naming_no_model_is_priced_by_the_deployment_map(store_url: str) -> None:
    """Over loopback, a reply naming no model: with the map, the row records the model the
    deployment runs (``reply_model``) and is priced by it; without it, the row is
    unpriced as before. A reply that names a model is believed over the map."""
    with srt.Runtime(store_url) as rt, ProviderServer() as srv:
        ep = AzureEndpoint(srv.url, deployment="prod-chat", api_version="2024-10-21")
        rows = []
        for name, deployments, body in (
            ("mapped", {"prod-chat": "gpt-4o-mini"}, _reply_naming_no_model()),
            ("bare", None, _reply_naming_no_model()),
            ("named", {"prod-chat": "gpt-4o"}, _reply(MINI)),
        ):
            srv.fault("azure.chat", "status", code=200, body=body, headers=JSON_HEADERS)
            s = rt.session(name)
            s.append({"role": "user", "content": "Hello?"})
            key = "azure-key-0123456789"
            with closing(Azure(ep, api_key=key, deployments=deployments)) as p:
                s.send(p, model="prod-chat")
            (row,) = s.calls()
            rows.append(row)
    mapped, bare, named = rows
    assert (mapped["reply_model"], bare["reply_model"], named["reply_model"]) == (
        "gpt-4o-mini", None, MINI,
    )  # fmt: skip
    assert Pricing().request_cost(bare) is None
    assert Pricing().request_cost(mapped) == Pricing().request_cost(named) is not None


@pytest.mark.parametrize("deployments", ["prod-chat", {"prod-chat": 5}, {"": "gpt-4o"}])
def test_a_deployment_map_is_names_to_names(deployments: Any) -> None:
    ep = AzureEndpoint("my-resource", deployment="prod-chat", api_version="2024-10-21")
    with pytest.raises(srt.ConfigError, match="deployments maps deployment names"):
        Azure(ep, api_key="azure-key-0123456789", deployments=deployments)


def _reasoning_reply(served: str) -> bytes:
    """Azure's Responses reply from a reasoning model: a reasoning item, then the text."""
    return json.dumps(
        {
            "id": "resp_az", "object": "response", "created_at": 1, "status": "completed",
            "model": served,
            "output": [
                {"type": "reasoning", "id": "rs_az", "summary": [],
                 "encrypted_content": "gAAAA-opaque"},
                {"type": "message", "id": "msg_az", "role": "assistant", "status": "completed",
                 "content": [{"type": "output_text", "text": "Hello.", "annotations": []}]},
            ],
            "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 3}},
        }
    ).encode()  # fmt: skip


@pytest.mark.parametrize("v1", [False, True])
def test_reasoning_is_replayed_to_the_deployment_that_reasoned(db_path: str, v1: bool) -> None:
    """Azure's reply names the model the deployment runs (``o4-mini-2025-04-16``), but srt
    sends the deployment's name (``prod-reasoning``): the reasoning item is kept for the
    model asked for (``exchange``), so the next send to the deployment replays it, while
    the ledger row records the model that reasoned."""
    served = "o4-mini-2025-04-16"
    with srt.Runtime(db_path) as rt, ProviderServer() as srv:
        version = None if v1 else "2025-04-01-preview"
        ep = AzureEndpoint(srv.url, api_version=version, use_v1=v1)
        srv.fault("azure.responses", "status", code=200, body=_reasoning_reply(served),
                  headers=JSON_HEADERS)  # fmt: skip
        s = rt.session("reasoning")
        s.append({"role": "user", "content": "Think, then greet."})
        with closing(Azure(ep, api_key="azure-key-0123456789", api="responses")) as p:
            s.send(p, model="prod-reasoning", store=False)
            s.append({"role": "user", "content": "Again?"})
            s.send(p, model="prod-reasoning", store=False)
        sent = srv.log[-1].body["input"]
        item = json.loads(_reasoning_reply(served))["output"][0]
        assert sent[1:] == [item, {"role": "assistant", "content": "Hello."},
                            {"role": "user", "content": "Again?"}]  # fmt: skip
        assert s.last_build is not None and s.last_build.notes == ()
        first = s.calls()[0]
        assert (first["model"], first["reply_model"]) == ("prod-reasoning", served)


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("stream", [False, True])
def test_the_ledger_keeps_the_model_srt_testing_says_the_deployment_runs(
    store_url: str, api: str, stream: bool
) -> None:
    """srt.testing's Azure names the model the deployment runs, streamed or not, on Chat
    and Responses: the row keeps it as ``reply_model`` (over the ``deployments=`` map,
    which only fills in for a reply naming none) and is priced as it, by the usage the
    server reported."""
    with srt.Runtime(store_url) as rt, ProviderServer(
        azure_deployments={"prod-chat": MINI}
    ) as srv:  # fmt: skip
        ep = AzureEndpoint(srv.url, deployment="prod-chat", api_version="2024-10-21")
        s = rt.session(f"{api}-{stream}")
        s.append({"role": "user", "content": "Hello?"})
        key = "azure-key-0123456789"
        with closing(Azure(ep, api_key=key, api=api, deployments={"prod-chat": "gpt-4o"})) as p:
            if stream:
                with closing(s.stream(p, model="prod-chat")) as st:
                    text = "".join(st)
            else:
                text = s.send(p, model="prod-chat").message["content"]
        rec = srv.log[-1]
        assert (rec.endpoint, rec.deployment, rec.model) == (f"azure.{api}", "prod-chat", MINI)
        assert text.startswith("reply 1 to Hello?")
        (row,) = s.calls()
        assert (row["model"], row["reply_model"], row["status"]) == ("prod-chat", MINI, "ok")
        assert row["input_tokens"] == rec.prompt_tokens > 0
        mini = Pricing().rates("gpt-4o-mini", "azure")
        assert mini is not None
        cost = Pricing().request_cost(row)
        assert cost is not None
        billed, uncached, output = cost  # (a short prompt: nothing read from the cache)
        assert billed == uncached == pytest.approx(row["input_tokens"] * mini.input / 1e6)
        assert output == pytest.approx(row["output_tokens"] * mini.output / 1e6)
