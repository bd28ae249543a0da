"""Objects filed under a session: the kinds whose scope starts with a session's id.

A layer above the store that files objects under a session declares the kind where it
defines it, ``KIND = session_kind("srt.head")`` (``store.heads``: earlier heads;
``srt._task_session``: started tool calls). ``import srt`` imports both, so every process
that opens a store knows them. For every declared kind the store keeps one rule:

* an object whose scope is ``<id>`` or starts with ``<id>:``, ``<id>`` a session id
  written as ``str(id)`` writes it (decimal, no sign, no leading zero), belongs to that
  session; an object of the kind under any other scope belongs to none, and the rule
  leaves it alone;
* ``put_object`` writes one only while its session exists, checked in the write's own
  transaction (a row lock on PostgreSQL), and returns False otherwise;
* ``delete_session`` removes them with the session row, in one transaction;
* ``gc`` removes those of ids no session has (a session id is never given again, so
  they are only garbage, left by srt versions that did not delete them with their
  session), in its transaction, before it marks the live nodes;
* ``copy_store`` files them under the copy's session id, and leaves out those of none.

Together the first three make a session's records and its row go at once: a writer that
saw the session before its deletion either wrote before it (and its record is deleted
with the session) or is refused after it. Of runs starting one tool call
(``put_object(if_absent=True)``), one that read the session before it was deleted can
therefore never win a start record that the deletion removed.
"""

from __future__ import annotations

__all__ = ["MAX_DIGITS", "session_kind", "session_kinds", "session_of"]

_KINDS: set[str] = set()

#: The most digits of a session id the rule reads (18: below 2**63 on every engine).
MAX_DIGITS = 18


def session_kind(kind: str) -> str:
    """Declare ``kind`` as filed under a session's id (see the module); returns it."""
    _KINDS.add(kind)
    return kind


def session_kinds() -> tuple[str, ...]:
    """Every declared kind, sorted."""
    return tuple(sorted(_KINDS))


def session_of(kind: str, scope: str) -> int | None:
    """The id of the session an object of (``kind``, ``scope``) belongs to; ``None``
    if the kind is not declared or the scope does not start with a session id."""
    if kind not in _KINDS:
        return None
    head = scope.partition(":")[0]
    if not (0 < len(head) <= MAX_DIGITS and head.isascii() and head.isdigit()):
        return None
    if head[0] == "0" and head != "0":
        return None
    return int(head)
