"""What the error of a gRPC connection says when its two ends disagree about TLS.

etcd serves gRPC on its client port in cleartext (``http://``, HTTP/2 with prior
knowledge) or in TLS (``https://``), never both. Spoken to with the other one, etcd
hangs up (or a proxy in front answers in its own words): the connection ends before
etcd's HTTP/2 SETTINGS, and the error names the likely cause, as the gateway transport
does (:data:`etcdwamp.transport.NO_TLS_HINT`). Pure: the socket code hands in the bytes
and exceptions it saw.
"""

from __future__ import annotations

from ..transport import NO_TLS_HINT

__all__ = ["NO_TLS_HINT", "TLS_THERE_HINT", "answer_hint", "handshake_met_no_tls"]

#: what a ConnectFailed adds when an ``http://`` endpoint hung up on the HTTP/2
#: preface without a word, as etcd's TLS port does
TLS_THERE_HINT = " (TLS there? an endpoint that serves TLS needs https://)"

#: OpenSSL's reasons for a handshake that met a hang-up or bytes that are no TLS
#: record (a plain-HTTP server's answer), as Twisted (lower case) and Python's ssl
#: (upper case, underscores) spell them; a refused certificate is none of them
_NOT_TLS_REASONS = frozenset({
    "unexpected eof while reading", "wrong version number", "record layer failure",
    "packet length too long", "http request",
})


def answer_hint(scheme: str, first: bytes | None) -> str:
    """The hint for a connection that ended before the peer's SETTINGS, from the
    first bytes it sent (None: none, it hung up); ``""`` when they say nothing.

    :param scheme: ``"http"`` (h2c) or ``"https"`` (``first`` are the bytes inside TLS)
    """
    cleartext = scheme == "http"
    if first is None:
        return TLS_THERE_HINT if cleartext else ""
    if cleartext and first[:1] in (b"\x15", b"\x16") and first[1:2] == b"\x03":
        # A TLS record (an alert, or a handshake message) where HTTP/2 was expected.
        return " (it answered in TLS: an endpoint that serves TLS needs https://)"
    if first.startswith(b"HTTP/1."):
        if cleartext and b"HTTPS" in first:
            # Go's http.Server: "Client sent an HTTP request to an HTTPS server."
            return " (it answered HTTP/1 that it serves TLS: such an endpoint needs https://)"
        return " (it answered HTTP/1, not HTTP/2: not an etcd client port?)"
    return ""


def handshake_met_no_tls(exc: BaseException | None) -> bool:
    """Whether a TLS handshake failed the way a cleartext server makes it fail: the
    peer hung up, or answered bytes that are no TLS record (not: a refused
    certificate, a TLS alert)."""
    if exc is None:
        return True
    if isinstance(exc, (ConnectionError, EOFError)):
        return True
    reason = getattr(exc, "reason", None)  # Python's ssl.SSLError
    if isinstance(reason, str):
        return reason.lower().replace("_", " ") in _NOT_TLS_REASONS
    args = getattr(exc, "args", ())
    queue = args[0] if args else ()  # OpenSSL.SSL.Error: [(library, function, reason)]
    return isinstance(queue, list) and bool(queue) and all(
        isinstance(entry, tuple) and str(entry[-1]).lower() in _NOT_TLS_REASONS
        for entry in queue)
