"""Token counting (``srt.tokens``): exact ids against tiktoken and offline loading; and
what the other token tests share (the calibration corpus, the reference tokenizers,
canonical bodies). The estimators and chat-request counts are in
``test_tokens_estimates``, the cache and cumulative budgets in ``test_tokens_cache``.

The reference tokenizers are built here independently of srt's loader: a
``tiktoken.Encoding`` made from ``tiktoken_ext.openai_public``'s own constructors,
fed from a cache directory this module lays out. The calibration corpus is
``corpus()`` below: deterministic, so the ratios in ``srt.tokens`` can be re-measured.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import importlib.metadata
import json
import os
import random
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt.tokens as tokens
from rel_support.waits import WAIT_S, joined
from srt.errors import ConfigError
from srt.message import canonicalize
from srt.tokens import (
    CL100K_ESTIMATE,
    CLAUDE_ESTIMATE,
    INSTALL_HINT,
    O200K_ESTIMATE,
    Encoder,
    EstimateTokenizer,
    TiktokenTokenizer,
    Tokenizer,
)
from srt.wire import tokenizer_for

ENCODINGS = ("o200k_base", "cl100k_base")


# -- the calibration corpus ------------------------------------------------------------

_WORDS = (
    "the of and to in is was that for on with as by at from it his an were are which this be "
    "or has had not but first one their its new after who they have her she two been other when "
    "there all during into school time may years more most only over city some world would where "
    "later up such used many can state about national out known university united then made team "
    "system government company including however several because between while through people "
    "language history example number called although before without under against research "
    "development information different important especially following general particular "
    "community available experience international environment relationship understanding "
    "notwithstanding archaeological photosynthesis thermodynamics Mediterranean Wittgenstein "
    "Kilimanjaro bureaucracy serendipity quarantine paraphrase ubiquitous idiosyncratic "
    "reconnaissance Tchaikovsky Saskatchewan mitochondria hyperparameter cryptocurrency "
    '1987 2,450 3.14 (see above) "quoted" e.g. i.e. well-known state-of-the-art Dr. Smith\'s'
).split()
_HAN = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可"
    "她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三"
    "已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女"
    "问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由"
)
_KANA = (
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
)
_EMOJI = (
    "😀 😂 🥲 😍 🤔 🙃 😎 🥳 😭 😡 👍 👍🏽 👎🏿 🙏 👏🏻 💪 🔥 ✨ 🎉 ❤️ 💔 ⭐ 🌍 🚀 🍕 ☕ 🐍 🦀 "
    "👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵 🇺🇸 🧑🏾‍💻 👩‍🔬 🤷‍♀️ 🫠 🪐 🧬"
).split()
_IDENT = "user items value result count index total name data config buffer node key path".split()


def _prose(r: random.Random, n: int) -> str:
    out: list[str] = []
    while sum(map(len, out)) < n:
        words = [r.choice(_WORDS) for _ in range(r.randint(6, 20))]
        out.append(" ".join(words).capitalize() + r.choice([".", ".", ",", "?", "!"]))
    return " ".join(out)


def _code(r: random.Random, n: int) -> str:
    out: list[str] = []
    while sum(map(len, out)) < n:
        a, b, c = r.sample(_IDENT, 3)
        out.append(
            f"def {a}_{b}({c}: list[int], limit: int = {r.randint(1, 999)}) -> int:\n"
            f'    """Return the {b} of {c}."""\n'
            f"    {a} = 0\n    for i, x in enumerate({c}):\n"
            f"        if x > limit:\n            {a} += x * {r.randint(2, 9)}\n"
            f"    return {a}\n\n"
        )
    return "".join(out)


def _json(r: random.Random, n: int) -> str:
    rows: list[dict[str, Any]] = []
    while len(json.dumps(rows)) < n:
        rows.append(
            {
                "id": r.randint(1, 10**6),
                "name": " ".join(r.choice(_WORDS) for _ in range(2)),
                "score": round(r.random() * 100, 3),
                "tags": [r.choice(_IDENT) for _ in range(r.randint(0, 3))],
                "active": r.random() < 0.5,
            }
        )
    indent = r.choice([None, 2])
    return json.dumps(rows, indent=indent, separators=None if indent else (",", ":"))


def _cjk(r: random.Random, n: int) -> str:
    out: list[str] = []
    while len(out) < n // 3:
        src = _KANA if r.random() < 0.25 else _HAN
        out.extend(r.choice(src) for _ in range(r.randint(4, 16)))
        out.append(r.choice("，。、！？"))
    return "".join(out)


def _emoji(r: random.Random, n: int) -> str:
    out: list[str] = []
    while sum(len(x.encode()) for x in out) < n:
        out.append(r.choice(_EMOJI) if r.random() < 0.7 else r.choice(_WORDS))
    return " ".join(out)


def _mixed(r: random.Random, n: int) -> str:
    parts = [_prose, _code, _json, _cjk, _emoji]
    return "\n".join(r.choice(parts)(r, n // 4) for _ in range(4))


CATEGORIES = {
    "prose": _prose,
    "code": _code,
    "json": _json,
    "cjk": _cjk,
    "emoji": _emoji,
    "mixed": _mixed,
}


def corpus(seed: int = 20261125, per_category: int = 8, size: int = 3000) -> list[tuple[str, str]]:
    """``(category, text)`` pairs: the calibration corpus (about 150 kB)."""
    r = random.Random(seed)
    return [(cat, fn(r, size)) for cat, fn in CATEGORIES.items() for _ in range(per_category)]


# Hard cases for exactness, beyond the corpus.
EDGE_TEXTS = [
    "",
    " ",
    "hello world",
    "Hello, World! It's 2026; we'd've thought they'll   see.",
    "日本語のテキストと中文文本，한국어 텍스트도 있습니다。",
    "👨‍👩‍👧‍👦👍🏽🏳️‍🌈🇯🇵 emoji 🎉🎉🎉",
    "e\u0301 a\u0300\u0316 Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334 n\u0303",
    "مرحبا بالعالم — שלום עולם \u200f(rtl)\u200e mixed",
    "def f(x):\n\treturn {'a': [1, 2, 3]}  # comment\n\n\nclass A: pass\r\n",
    '{"role":"user","content":"hi","n":12345678901234567890,"f":-1.5e-300}',
    "a" * 10_000,
    "é" * 3_000,
    "😀" * 2_000,
    " " * 10_000,
    "\n" * 5_000,
    "\t \t\r\n" * 2_000 + "x",
    " " * 4_000 + "word" + " " * 4_000,
    "1234567890" * 500,
    "<|endoftext|> and <|endofprompt|> are ordinary text here",
    "\x00\x01\x7f\u2028\u2029\ufeff\ufffd",
    "\U0010ffff\U000e0001\uf8ff",
]


# -- the reference tokenizers, built without srt's loader -------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """tiktoken Encodings from ``tiktoken_ext.openai_public`` over a cache we lay out."""
    import tiktoken

    openai_public = importlib.import_module("tiktoken_ext.openai_public")

    cache = tmp_path_factory.mktemp("tiktoken-cache")
    files = {f.name: f for f in importlib.metadata.files("bpe-openai") or []}
    for name in ENCODINGS:
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        data = gzip.decompress(files[f"{name}.tiktoken.gz"].read_binary())
        (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        params = {name: getattr(openai_public, name)() for name in ENCODINGS}
    finally:
        if old is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old
    return {
        name: tiktoken.Encoding(**{**p, "name": f"reference-{name}"}) for name, p in params.items()
    }


@pytest.fixture(scope="module", params=ENCODINGS)
def pair(request: pytest.FixtureRequest, reference: dict[str, Any]) -> tuple[Any, Any]:
    return TiktokenTokenizer(request.param), reference[request.param]


def bodies(messages: list[Any]) -> list[bytes]:
    return [canonicalize(m)[0] for m in messages]


# -- exactness ------------------------------------------------------------------------


def test_constants_match_tiktokens_own_source() -> None:
    op = importlib.import_module("tiktoken_ext.openai_public")

    source = Path(str(op.__file__)).read_text(encoding="utf-8")
    for name in ENCODINGS:
        m = re.search(rf'"({re.escape(tokens._url(name))})",\s*expected_hash="(\w+)"', source)
        assert m, name
        assert tokens._SHA256[name] == m.group(2)


def test_protocols_and_names() -> None:
    tok = TiktokenTokenizer("o200k_base")
    assert isinstance(tok, Encoder) and isinstance(tok, Tokenizer)
    assert (tok.name, tok.exact, tok.encoding) == ("tiktoken:o200k_base", True, "o200k_base")
    assert TiktokenTokenizer("cl100k_base").name == "tiktoken:cl100k_base"
    assert isinstance(CLAUDE_ESTIMATE, Tokenizer) and not isinstance(CLAUDE_ESTIMATE, Encoder)
    assert not CLAUDE_ESTIMATE.exact
    with pytest.raises(ConfigError, match="unknown encoding"):
        TiktokenTokenizer("p50k_base")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", EDGE_TEXTS, ids=range(len(EDGE_TEXTS)))
def test_edge_texts_are_exact(pair: tuple[Any, Any], text: str) -> None:
    tok, ref = pair
    ids = ref.encode_ordinary(text)
    assert tok.encode(text) == ids
    assert tok.count(text) == len(ids)


def test_corpus_is_exact(pair: tuple[Any, Any]) -> None:
    tok, ref = pair
    for _, text in corpus():
        assert tok.encode(text) == ref.encode_ordinary(text)


def test_the_long_runs_merge(pair: tuple[Any, Any]) -> None:
    """10k of one character is far fewer than 10k tokens: merges, not bytes."""
    tok, _ = pair
    assert tok.count("a" * 10_000) < 2_000
    assert tok.count(" " * 10_000) < 1_000


_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.text(alphabet=" \t\n\r\u3000aZ9'é日😀\u0301-_.", max_size=300),
    st.lists(st.sampled_from(EDGE_TEXTS[:10] + _WORDS[:40]), max_size=30).map("".join),
)


@settings(max_examples=600)
@given(text=_TEXT)
def test_hypothesis_text_is_exact_o200k(reference: dict[str, Any], text: str) -> None:
    ref = reference["o200k_base"]
    assert TiktokenTokenizer("o200k_base").encode(text) == ref.encode_ordinary(text)


@settings(max_examples=600)
@given(text=_TEXT)
def test_hypothesis_text_is_exact_cl100k(reference: dict[str, Any], text: str) -> None:
    ref = reference["cl100k_base"]
    assert TiktokenTokenizer("cl100k_base").encode(text) == ref.encode_ordinary(text)


# -- loading offline -------------------------------------------------------------------

_OFFLINE_SCRIPT = r"""
import json, os, socket, sys
def refuse(*a, **k):
    raise OSError("network disabled by the test")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from srt.tokens import TiktokenTokenizer
out = {e: TiktokenTokenizer(e).encode(sys.argv[1]) for e in ("o200k_base", "cl100k_base")}
out["env_left"] = "TIKTOKEN_CACHE_DIR" in os.environ
print(json.dumps(out))
"""

_STOCK_SCRIPT = r"""
import tiktoken
try:
    tiktoken.get_encoding("o200k_base")
except Exception as exc:
    print(type(exc).__name__)
else:
    print("loaded")
"""


def _offline_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "NO_PROXY")}
    env.pop("DATA_GYM_CACHE_DIR", None)
    env.pop("no_proxy", None)
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        env[var] = "http://127.0.0.1:9"
    env["TMPDIR"] = str(tmp)
    return env


def test_loading_works_offline_in_a_fresh_process(
    tmp_path: Path, reference: dict[str, Any]
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    text = "offline 👋 日本語 " * 3
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, text],
        env=_offline_env(tmp),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for name in ENCODINGS:
        assert out[name] == reference[name].encode_ordinary(text)
    assert out["env_left"] is False
    assert list(tmp.iterdir()) == []  # the private cache directory is gone, nothing else made


def test_that_environment_really_breaks_stock_tiktoken(tmp_path: Path) -> None:
    """The control: an empty cache under the same environment cannot load."""
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    env = _offline_env(tmp_path)
    env["TIKTOKEN_CACHE_DIR"] = str(empty)
    proc = subprocess.run(
        [sys.executable, "-c", _STOCK_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in ("ConnectionError", "ProxyError")


def test_the_private_cache_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    with tokens._bpe_cache_dir("cl100k_base") as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
        (entry,) = os.listdir(path)
        url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
        assert entry == hashlib.sha1(url.encode()).hexdigest()
        file = os.path.join(path, entry)
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
        data = Path(file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == tokens._SHA256["cl100k_base"]
    assert not os.path.exists(path)


def test_loading_is_once_and_thread_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken

    calls: list[str] = []
    real = tiktoken.get_encoding

    def spy(name: str) -> Any:
        calls.append(name)
        return real(name)

    monkeypatch.setattr(tokens, "_LOADED", {})
    monkeypatch.setattr(tiktoken, "get_encoding", spy)
    barrier = threading.Barrier(8, timeout=WAIT_S)
    seen: list[Any] = []

    def work() -> None:
        barrier.wait()
        seen.append(tokens._load("o200k_base"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    joined(*threads)
    assert calls == ["o200k_base"]
    assert len(seen) == 8 and all(s is seen[0] for s in seen)


def test_missing_tiktoken_raises_config_error_with_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens, "_LOADED", {})  # as in a process that has loaded nothing
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # makes `import tiktoken` fail
    with pytest.raises(ConfigError) as info:
        TiktokenTokenizer("o200k_base")
    assert "tiktoken is not installed" in str(info.value)
    assert "pip install 'stateful-runtime[tokens]'" in str(info.value)
    assert INSTALL_HINT == "pip install 'stateful-runtime[tokens]'"
    with pytest.raises(ConfigError, match=re.escape(INSTALL_HINT)):
        tokens._load("o200k_base")
    assert not tokens.exact_backend_available()
    assert tokenizer_for("openai", "gpt-4o") is O200K_ESTIMATE
    assert tokenizer_for("azure", "gpt-4") is CL100K_ESTIMATE


def test_missing_bpe_openai_raises_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.files

    def files(name: str) -> Any:
        if name == "bpe-openai":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(tokens, "_LOADED", {})
    monkeypatch.setattr(importlib.metadata, "files", files)
    with pytest.raises(ConfigError, match=r"bpe-openai is not installed.*stateful-runtime\[tokens"):
        TiktokenTokenizer("cl100k_base")
    with pytest.raises(ConfigError, match="bpe-openai is not installed"):
        tokens._bundled_bpe("cl100k_base")
    assert isinstance(tokenizer_for("openai", "gpt-5"), EstimateTokenizer)
