"""Bounded work per PDF and per page: content to parse is measured before any text is
extracted (MAX_PDF_CONTENT_MB, MAX_PAGE_CONTENT_MB), and pypdf's own limits are named as such."""

from __future__ import annotations

import inspect
import zlib
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.errors import LimitReachedError, PdfReadError
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    EncodedStreamObject,
    NameObject,
    NumberObject,
    StreamObject,
)

from rag.errors import ConfigError, LoaderError
from rag.ingest import Ingestor
from rag.loading import Limits, load
from rag.pdf import pdf_error_reason
from rag.settings import Settings
from tests.helpers import PDFS, SHARED

DEFAULTS = Settings()
LIMITS = {"max_pdf_content_mb": DEFAULTS.max_pdf_content_mb,
          "max_page_content_mb": DEFAULTS.max_page_content_mb}
_TEXT = b"BT /F1 12 Tf 72 700 Td (Hello world) Tj ET\n"
UNREADABLE = {"edge-encrypted-aes256-nist-sp800-145.pdf", "edge-truncated-nist-sp800-145.pdf",
              "password.pdf"}
REAL_PDFS = sorted(p for p in [*PDFS.glob("*.pdf"), *(SHARED / "office").glob("*.pdf")]
                   if p.name not in UNREADABLE)


def _stream(data: bytes) -> StreamObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    return stream


def _font(writer: PdfWriter) -> DictionaryObject:
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                             NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    return DictionaryObject({NameObject("/F1"): writer._add_object(font)})


def _write(writer: PdfWriter, path: Path) -> Path:
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def _shared_stream_pdf(path: Path, pages: int = 200, mb: float = 5.0) -> Path:
    """`pages` pages whose /Contents all reference one stream of `mb` MB of text operators."""
    writer = PdfWriter()
    shared = writer._add_object(_stream(_TEXT * int(mb * 2**20 / len(_TEXT))).flate_encode())
    fonts = _font(writer)
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Contents")] = shared
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    return _write(writer, path)


def test_200_pages_sharing_one_5_mb_stream_fail_before_any_page_is_extracted(
        tmp_path: Path) -> None:
    path = _shared_stream_pdf(tmp_path / "tiny.pdf")
    assert path.stat().st_size < 100_000, "a tiny file"
    # load() measures up front; extraction happens only when sections are iterated, so a
    # failure raised by load() itself means no page text was extracted
    with pytest.raises(LoaderError) as info:
        load(path, limits=Limits(**LIMITS))
    reason = info.value.reason
    assert "MAX_PDF_CONTENT_MB" in reason and "damaged" not in reason
    assert f"more than {DEFAULTS.max_pdf_content_mb:g} MB" in reason
    limit_pages = int(DEFAULTS.max_pdf_content_mb // 5) + 1
    assert f"by page {limit_pages} of 200" in reason, "measuring stops where the limit is passed"


def test_without_the_limits_the_same_file_loads(tmp_path: Path) -> None:
    """The limit, not the file's structure, fails it: without limits it opens (lazily)."""
    path = _shared_stream_pdf(tmp_path / "few.pdf", pages=1, mb=0.05)
    doc = load(path)
    assert doc.pages == 1
    assert "Hello world" in next(doc.sections).text


def test_one_page_over_max_page_content_fails_naming_it(tmp_path: Path) -> None:
    writer = PdfWriter()
    fonts = _font(writer)
    for word, size in (("alpha", 1_000), ("beta", 3 * 2**20), ("gamma", 1_000)):
        page = writer.add_blank_page(612, 792)
        line = _TEXT.replace(b"Hello world", word.encode())
        body = line * (size // len(line))
        page[NameObject("/Contents")] = writer._add_object(_stream(body).flate_encode())
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    path = _write(writer, tmp_path / "heavy-page.pdf")
    with pytest.raises(LoaderError) as info:
        load(path, limits=Limits(max_pdf_content_mb=64, max_page_content_mb=2))
    reason = info.value.reason
    assert reason.startswith("page 2 has 3.0 MB of content to parse")
    assert "limit of 2 MB (MAX_PAGE_CONTENT_MB)" in reason
    roomy = Limits(max_pdf_content_mb=64, max_page_content_mb=4)
    assert len(list(load(path, limits=roomy).sections)) == 3


def _form_pdf(path: Path, draws: int, form_kb: int, *, loop: bool = False) -> Path:
    """One page drawing a form XObject of `form_kb` KB of text `draws` times."""
    writer = PdfWriter()
    fonts = _font(writer)
    form = _stream(_TEXT * (form_kb * 1024 // len(_TEXT)) + (b"/X0 Do\n" if loop else b""))
    form.update({NameObject("/Type"): NameObject("/XObject"),
                 NameObject("/Subtype"): NameObject("/Form")})
    form_ref = writer._add_object(form)
    resources = DictionaryObject({NameObject("/Font"): fonts,
                                  NameObject("/XObject"): DictionaryObject(
                                      {NameObject("/X0"): form_ref})})
    form[NameObject("/Resources")] = resources if loop else DictionaryObject(
        {NameObject("/Font"): fonts})
    form[NameObject("/BBox")] = ArrayObject([NumberObject(n) for n in (0, 0, 612, 792)])
    page = writer.add_blank_page(612, 792)
    page[NameObject("/Contents")] = writer._add_object(_stream(b"/X0 Do\n" * draws))
    page[NameObject("/Resources")] = resources
    return _write(writer, path)


def test_a_form_drawn_many_times_counts_at_every_drawing(tmp_path: Path) -> None:
    path = _form_pdf(tmp_path / "forms.pdf", draws=10_000, form_kb=10)  # 70 KB of content
    with pytest.raises(LoaderError) as info:
        load(path, limits=Limits(**LIMITS))
    assert info.value.reason.startswith("page 1 has 97.7 MB of content to parse")
    assert "MAX_PAGE_CONTENT_MB" in info.value.reason
    few = _form_pdf(tmp_path / "few-forms.pdf", draws=2, form_kb=10)
    assert "Hello world" in next(load(few, limits=Limits(**LIMITS)).sections).text


def test_a_form_that_draws_itself_fails_as_damaged(tmp_path: Path) -> None:
    path = _form_pdf(tmp_path / "loop.pdf", draws=1, form_kb=1, loop=True)
    with pytest.raises(LoaderError, match="a form XObject draws itself"):
        load(path, limits=Limits(**LIMITS))


def test_a_pypdf_safety_limit_is_named_not_called_damaged(tmp_path: Path) -> None:
    writer = PdfWriter()
    bomb = EncodedStreamObject()
    bomb._data = zlib.compress(b" " * (80 << 20), 9)  # 80 MB, over pypdf's 75 MB; 80 KB
    bomb[NameObject("/Filter")] = NameObject("/FlateDecode")
    writer.add_blank_page(612, 792)[NameObject("/Contents")] = writer._add_object(bomb)
    path = _write(writer, tmp_path / "bomb.pdf")
    with pytest.raises(LoaderError) as info:
        # measured up front (pypdf's extraction would skip it silently)
        load(path, limits=Limits(**LIMITS))
    reason = info.value.reason
    assert "safety limit of the PDF reader, pypdf" in reason and "page 1" in reason
    assert "damaged" not in reason
    # the one mapping of pypdf errors, also used when opening and extracting
    assert "damaged" not in pdf_error_reason(LimitReachedError("Declared size too big"))
    assert pdf_error_reason(PdfReadError("bad xref")) == "damaged or truncated PDF (bad xref)"


@pytest.mark.parametrize("path", REAL_PDFS, ids=lambda p: p.name)
def test_real_pdfs_pass_the_limits_with_a_margin(path: Path) -> None:
    """Every shared real PDF loads under a fifth of the default limits."""
    doc = load(path, limits=Limits(max_pdf_content_mb=DEFAULTS.max_pdf_content_mb / 5,
                                   max_page_content_mb=DEFAULTS.max_page_content_mb / 5))
    assert doc.kind == "pdf" and doc.pages


@pytest.mark.parametrize("path", [p for p in REAL_PDFS if p.parent == PDFS], ids=lambda p: p.name)
def test_real_pdfs_ingest_their_text_under_the_default_limits(path: Path) -> None:
    sections = list(load(path, limits=Limits(**LIMITS)).sections)
    assert sections and all(s.text for s in sections)


def test_settings_read_and_check_the_content_limits() -> None:
    s = Settings.from_env({"MAX_PDF_CONTENT_MB": "12.5", "MAX_PAGE_CONTENT_MB": "2"})
    assert (s.max_pdf_content_mb, s.max_page_content_mb) == (12.5, 2.0)
    for name in ("MAX_PDF_CONTENT_MB", "MAX_PAGE_CONTENT_MB"):
        with pytest.raises(ConfigError, match=f"{name} must be above 0"):
            Settings.from_env({name: "0"})


def test_the_ingestor_defaults_are_the_settings_defaults() -> None:
    params = inspect.signature(Ingestor).parameters
    for name, value in LIMITS.items():
        assert params[name].default == value
