"""Authentication-Results (RFC 8601): did the receiving server see DKIM or SPF pass
for a domain? Pure.

Anyone can write this header into the mail they send, so only headers added by
servers we trust count when `trusted` names them; a receiving MTA prepends its
own header above whatever the sender wrote.
"""

from __future__ import annotations

import re
from collections.abc import Collection

_COMMENT = re.compile(r"\([^()]*\)")
_PROPERTY = re.compile(r"([\w.-]+)\s*=\s*\"?([^\s\";]+)\"?")


def passes(headers: list[str], domain: str, trusted: Collection[str] = ()) -> bool:
    """True when a (trusted) header shows dkim=pass or spf=pass for `domain`."""
    wanted = domain.lower()
    allowed = {t.lower() for t in trusted}
    for header in headers:
        server, _, results = _COMMENT.sub("", header).partition(";")
        authserv = server.strip().split()[0].lower() if server.strip() else ""
        if allowed and authserv not in allowed:
            continue
        if any(_result_passes(part, wanted) for part in results.split(";")):
            return True
    return False


def _result_passes(part: str, domain: str) -> bool:
    props = {k.lower(): v.lower() for k, v in _PROPERTY.findall(part)}
    if props.get("dkim") == "pass":
        signer = props.get("header.d") or props.get("header.i", "").rpartition("@")[2]
        return _aligned(signer, domain)
    if props.get("spf") == "pass":
        sender = props.get("smtp.mailfrom", "").rpartition("@")[2]
        return _aligned(sender, domain)
    return False


def _aligned(found: str, domain: str) -> bool:
    """Relaxed alignment: the same domain, or the From domain under the signing domain."""
    return bool(found) and (domain == found or domain.endswith("." + found))
