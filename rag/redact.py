"""Credentials out of what is shown: URLs in messages, logs and the web page.

A server URL may carry a login (`http://user:pass@host/v1`) or a key in its query
(`?api_key=...`). `redact` hides both in a URL or in any text that holds URLs; every message,
log line and page that names a server URL passes it through here.
"""

from __future__ import annotations

import re

HIDDEN = "***"
# scheme://user:password@ or scheme://token@ (before the host)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#@\s]*@")
# ?api_key=... / &token=... / &sig=... in a query string
_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:[a-z0-9_\-]*(?:key|token|secret|password|passwd|pwd|auth)[a-z0-9_\-]*"
    r"|sig|signature)=)[^&#\s]*")


def redact(text: str) -> str:
    """`text` with the login of every URL in it and its secret query values hidden:
    'http://***@host/v1', '...?api_key=***'."""
    text = _USERINFO.sub(rf"\1{HIDDEN}@", text)
    return _SECRET_PARAM.sub(rf"\1{HIDDEN}", text)
