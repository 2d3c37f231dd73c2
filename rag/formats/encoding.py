"""Text of unknown encoding decoded: by byte-order mark, else UTF-8, else the most likely
encoding by charset-normalizer (CSV files, HTML pages and e-mail parts share it)."""

from __future__ import annotations

import codecs

from rag.errors import LoaderError

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
         (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
_PREFERRED = "cp1252"  # among equally likely code pages, the one Windows saves Western text in


def decode_text(data: bytes, source: str) -> tuple[str, str]:
    """Bytes of text and the encoding they are in: by byte-order mark, else UTF-8, else the
    most likely encoding by charset-normalizer (cp1252 among equally likely code pages)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise LoaderError(source, f"damaged text (invalid {encoding}: {exc.reason} "
                                  f"at byte {exc.start})") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise LoaderError(source, "not a text file (binary content, or an encoding that "
                          "could not be recognised): save it as UTF-8 and add it again")
    best = min(matches, key=lambda m: (m.chaos, _PREFERRED not in m.could_be_from_charset))
    # the code pages it "could be from" decode the bytes to the same text
    encoding = _PREFERRED if _PREFERRED in best.could_be_from_charset else best.encoding
    text = data.decode(encoding, errors="replace")
    if "\x00" in text:
        raise LoaderError(source, "not a text file (binary content)")
    return text, encoding
