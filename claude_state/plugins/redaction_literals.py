"""The literal prefilter of secret redaction, importable without :mod:`re`.

Every built-in secret pattern in :mod:`claude_state.plugins.redaction` contains at least
one of these substrings (lower-cased). The hook's hot path lower-cases the raw event
and looks for them with ``bytes.find``, a few microseconds per event; only when one is
present does it import ``re`` (about 10 ms of start-up) and run the real patterns. A
test (``tests/test_redaction.py``) checks that every built-in pattern is caught by this
list, so the two cannot drift apart.

Hot path module: no imports at all.
"""

from __future__ import annotations

#: Substrings (lower-case bytes) of which every built-in pattern's match contains one,
#: and so does every key name of ``redaction.SENSITIVE_KEYS``.
TRIGGERS: tuple[bytes, ...] = (
    b"sk-",  # OpenAI / Anthropic API keys
    b"ghp_",
    b"gho_",
    b"ghu_",
    b"ghs_",
    b"ghr_",
    b"github_pat_",
    b"glpat-",  # GitLab
    b"npm_",
    b"akia",  # AWS access key ids
    b"asia",
    b"aiza",  # Google API keys
    b"xox",  # Slack
    b"eyj",  # JWTs (base64 of '{"')
    b"private key",
    b"bearer",
    b"authorization",
    b"password",
    b"passwd",
    b"pwd",
    b"secret",
    b"token",
    b"api_key",
    b"api-key",
    b"apikey",
    b"access_key",
    b"access-key",
    b"credential",
    # key names of SENSITIVE_KEYS that contain none of the literals above
    b"private_key",
    b"privatekey",
    b"accesskey",
)

#: URLs with a password (``scheme://user:pass@host``) need both of these.
URL_TRIGGERS: tuple[bytes, bytes] = (b"://", b"@")


def may_contain_secret(raw: bytes, extra: tuple[bytes, ...] = ()) -> bool:
    """True when *raw* contains a trigger substring (case-insensitive), so the full
    redactor must run. False means no built-in pattern can match *raw*.

    :param extra: further lower-case literals (from custom patterns' ``triggers``).
    """
    low = raw.lower()
    for t in TRIGGERS:
        if low.find(t) >= 0:
            return True
    for t in extra:
        if low.find(t) >= 0:
            return True
    return low.find(URL_TRIGGERS[0]) >= 0 and low.find(URL_TRIGGERS[1]) >= 0
