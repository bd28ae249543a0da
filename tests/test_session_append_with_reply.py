import pytest

import srt
from srt.errors import ConflictError, ProviderError
from srt.providers.base import OpenAI
from srt.testing import ProviderServer


def test_staged(tmp_path):
    with ProviderServer() as srv:
        p = OpenAI("k", base_url=srv.url + "/v1")
        rt = srt.Runtime(str(tmp_path / "a.db"))
        s = rt.session("a")
        s.append({"role": "system", "content": "sys"})
        r = s.send(p, model="gpt-4o-mini", append=[{"role": "user", "content": "hi"}])
        assert len(s) == 3 and rt.session("a").messages()[1]["content"] == "hi"
        srv.fault("chat", "status", code=400)
        with pytest.raises(ProviderError):
            s.send(p, model="gpt-4o-mini", append=[{"role": "user", "content": "x"}])
        assert len(s) == 3 and len(rt.session("a")) == 3
        other = rt.session("a")
        other.append({"role": "user", "content": "other"})
        with pytest.raises(ConflictError):
            s.send(p, model="gpt-4o-mini", append=[{"role": "user", "content": "y"}])
        assert len(rt.session("a")) == 4 and len(s) == 3
        s.refresh()
        st = s.stream(p, model="gpt-4o-mini", append=[{"role": "user", "content": "z"}])
        assert st.text()
        assert [m["role"] for m in rt.session("a").messages()] == [
            "system",
            "user",
            "assistant",
            "user",
            "user",
            "assistant",
        ]
        n = len(rt.calls())
        s.send(p, model="gpt-4o-mini", append=[{"role": "user", "content": "w"}], keep=False)
        assert len(rt.session("a")) == 6 and len(s) == 6 and len(rt.calls()) == n + 1
        print(srv.log[-1].body["messages"][-1])
