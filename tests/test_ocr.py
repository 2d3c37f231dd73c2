"""OCR of images and of scanned PDF pages with Tesseract (rag.formats.ocr, .image, .pdf)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfWriter

from rag.errors import LoaderError
from rag.formats import Limits
from rag.formats import image as image_format
from rag.formats import pdf as pdf_format
from rag.formats.ocr import NO_ENGINE, check_engine, ocr_image
from rag.loading import load
from tests.helpers import OFFICE, PDFS

MISSING = "/nonexistent/bin/tesseract"


def _read_image(path: Path, limits: Limits | None = None, **kwargs: str) -> image_format.Parsed:
    return image_format.read(path.read_bytes(), path.name, limits or Limits(), **kwargs)


def _read_pdf(path: Path, limits: Limits | None = None, **kwargs: str) -> pdf_format.Parsed:
    return pdf_format.read(path.read_bytes(), path.name, limits or Limits(), **kwargs)


def _png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width × height gray pixels, with almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def _text_and_scan_pdf(tmp_path: Path) -> Path:
    """Page 1: the LibreOffice sample's text layer; page 2: DA-1p.png as an image only."""
    scan = tmp_path / "scan.pdf"
    Image.open(OFFICE / "DA-1p.png").convert("RGB").save(scan, "PDF", resolution=72)
    writer = PdfWriter()
    writer.append(PDFS / "pysample-libreoffice-1page.pdf")
    writer.append(scan)
    path = tmp_path / "text-and-scan.pdf"
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def test_scanned_form_png_words_are_found() -> None:
    parsed = _read_image(OFFICE / "DA-1p.png")
    sections = list(parsed.sections)
    assert parsed.kind == "image" and parsed.pages == 1
    assert parsed.meta["ocr_pages"] == [1]
    assert [s.page for s in sections] == [1]
    text = sections[0].text
    for words in ("CREATURES", "Abomination", "tracking the maleficar for days",
                  "the Circle of Magi", "Arcane Horror", "templar in Cumberland"):
        assert words in text
    assert "  " not in text and "\n\n\n" not in text


@pytest.mark.parametrize(("name", "phrases"), [
    ("layout-parser-paper-fast.jpg", ["LayoutParser: A Unified Toolkit for Deep",
                                      "Document Image Analysis", "Allen Institute"]),
    ("double-column-A.jpg", ["CIVIL SERVICE RULES", "Extent of the competitive service"]),
    ("table-multi-row-column-cells.png", ["Participants", "Low Vision", "1199 sec, n=1"]),
])
def test_shared_images_read_by_ocr(name: str, phrases: list[str]) -> None:
    text = "\n".join(s.text for s in _read_image(OFFICE / name).sections)
    for phrase in phrases:
        assert phrase in text


def test_a_table_image_keeps_its_rows_on_lines() -> None:
    text = next(_read_image(OFFICE / "table-multi-row-column-cells.png").sections).text
    blind = next(line for line in text.splitlines() if line.startswith("Blind"))
    assert "34.5%" in blind and "1199 sec" in blind


def test_image_is_read_through_load() -> None:
    doc = load(OFFICE / "DA-1p.png")
    assert doc.kind == "image" and doc.pages == 1
    assert "Abomination" in next(doc.sections).text
    assert doc.meta["ocr_pages"] == [1]


def test_multi_frame_tiff_is_one_section_per_frame(tmp_path: Path) -> None:
    path = tmp_path / "two-pages.tif"
    first = Image.open(OFFICE / "DA-1p.png").convert("RGB")
    first.save(path, save_all=True, compression="tiff_lzw",
               append_images=[Image.open(OFFICE / "table-multi-row-column-cells.png")])
    parsed = _read_image(path)
    assert parsed.pages == 2
    sections = list(parsed.sections)
    assert [s.page for s in sections] == [1, 2]
    assert "Abomination" in sections[0].text and "Low Vision" in sections[1].text
    assert parsed.meta["ocr_pages"] == [1, 2]


def test_more_frames_than_max_pages_fail_up_front(tmp_path: Path) -> None:
    path = tmp_path / "frames.tif"
    blank = Image.new("L", (50, 50), 255)
    blank.save(path, save_all=True, append_images=[blank] * 4)
    with pytest.raises(LoaderError) as info:
        _read_image(path, Limits(max_pages=3))
    assert info.value.reason == ("the image has 5 pages (frames), more than the limit of 3 "
                                 "(MAX_PAGES); split it, or raise MAX_PAGES")


def test_image_without_text_fails(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("RGB", (800, 600), "white").save(path)
    parsed = _read_image(path)
    with pytest.raises(LoaderError) as info:
        list(parsed.sections)
    assert info.value.reason == "no text found by OCR"
    assert parsed.meta["ocr_pages"] == [1]


def test_damaged_image_fails(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    path.write_bytes((OFFICE / "DA-1p.png").read_bytes()[:5000])
    with pytest.raises(LoaderError, match=r"damaged image"):
        list(_read_image(path).sections)


def test_decompression_bombs_fail_before_decoding(tmp_path: Path) -> None:
    with pytest.raises(LoaderError) as info:
        _read_image(_png(tmp_path / "huge.png", 20_000, 20_000))
    assert "too large to decode safely" in info.value.reason
    with pytest.raises(LoaderError) as info:
        _read_image(_png(tmp_path / "large.png", 10_000, 9_000))
    assert info.value.reason.startswith("the image is 10000×9000 pixels (90 million), more "
                                        "than the limit of 80 million")


def test_image_with_ocr_off_fails_saying_so() -> None:
    with pytest.raises(LoaderError) as info:
        _read_image(OFFICE / "DA-1p.png", Limits(ocr=False))
    assert info.value.reason == ("the image's text can only be read by OCR, and OCR is off: "
                                 "turn it on (OCR=true) with Tesseract installed")


def test_missing_engine_fails_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(LoaderError) as info:
        _read_image(OFFICE / "DA-1p.png", tesseract_cmd=MISSING)
    assert info.value.reason.startswith(NO_ENGINE)
    assert NO_ENGINE == ("no OCR engine: install Tesseract (apt-get install tesseract-ocr) or "
                         "set OCR=false")
    scanned = _read_pdf(OFFICE / "loremipsum-flat.pdf", tesseract_cmd=MISSING)
    with pytest.raises(LoaderError) as info:
        list(scanned.sections)
    assert info.value.reason.startswith(NO_ENGINE)
    # a PDF whose pages all have text never needs the engine
    text_pdf = _read_pdf(PDFS / "pysample-libreoffice-1page.pdf", tesseract_cmd=MISSING)
    assert "Lorem ipsum dolor sit amet" in next(text_pdf.sections).text


def test_missing_language_data_and_bad_codes_fail() -> None:
    check_engine("scan.png", "eng")
    with pytest.raises(LoaderError) as info:
        check_engine("scan.png", "eng+xyz")
    assert info.value.reason.startswith("no OCR engine for xyz: Tesseract has no data for it")
    assert "apt-get install tesseract-ocr-xyz" in info.value.reason
    with pytest.raises(LoaderError, match="not a list of Tesseract language codes"):
        check_engine("scan.png", "eng --psm 0")


def test_ocr_has_a_time_limit() -> None:
    with pytest.raises(LoaderError) as info:
        ocr_image(Image.open(OFFICE / "DA-1p.png"), "DA-1p.png", where="page 3", timeout=0.01)
    assert info.value.reason.startswith("OCR of page 3 took longer than 0.01 s")


def test_image_only_pdf_is_read_by_ocr() -> None:
    parsed = _read_pdf(OFFICE / "loremipsum-flat.pdf")
    assert parsed.meta["ocr_pages"] == []  # filled as the pages are read
    sections = list(parsed.sections)
    assert parsed.meta["ocr_pages"] == [1]
    assert [s.page for s in sections] == [1]
    text = sections[0].text
    assert text.startswith("Lorem ipsum dolor sit amet, consectetur adipiscing elit.")
    assert "Curabitur eget lacus" in text and "Pellentesque" in text


def test_image_only_pdf_with_ocr_off_fails_saying_so() -> None:
    parsed = _read_pdf(OFFICE / "loremipsum-flat.pdf", Limits(ocr=False))
    with pytest.raises(LoaderError) as info:
        list(parsed.sections)
    assert info.value.reason == ("no extractable text: the pages are scanned images; turn OCR "
                                 "on (OCR=true) with Tesseract installed")
    assert parsed.meta["ocr_skipped_pages"] == [1] and parsed.meta["ocr_pages"] == []


def test_only_the_pages_without_text_are_ocrd(tmp_path: Path) -> None:
    path = _text_and_scan_pdf(tmp_path)
    parsed = _read_pdf(path)
    sections = list(parsed.sections)
    assert parsed.meta["ocr_pages"] == [2]
    assert [s.page for s in sections] == [1, 2]
    text_layer = next(_read_pdf(PDFS / "pysample-libreoffice-1page.pdf").sections).text
    assert sections[0].text == text_layer
    assert "Abomination" in sections[1].text and "maleficar" in sections[1].text


def test_with_ocr_off_a_scanned_page_is_skipped_and_listed(tmp_path: Path) -> None:
    parsed = _read_pdf(_text_and_scan_pdf(tmp_path), Limits(ocr=False))
    sections = list(parsed.sections)
    assert [s.page for s in sections] == [1]
    assert parsed.meta == {"ocr_pages": [], "ocr_skipped_pages": [2]}


def test_blank_pages_are_not_ocrd_and_fail_as_without_text(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    path = tmp_path / "blank.pdf"
    with path.open("wb") as fh:
        writer.write(fh)
    parsed = _read_pdf(path, tesseract_cmd=MISSING)  # no images: OCR is never tried
    with pytest.raises(LoaderError) as info:
        list(parsed.sections)
    assert info.value.reason == ("no extractable text: its pages hold neither text nor images "
                                 "of text")
    assert parsed.meta["ocr_pages"] == []


def test_the_ocr_settings_are_read_and_checked_once() -> None:
    from rag.errors import ConfigError
    from rag.settings import Settings

    s = Settings.from_env({"OCR": "false", "OCR_LANGUAGES": "eng+deu"})
    assert (s.ocr, s.ocr_languages) == (False, "eng+deu")
    assert Settings.from_env({}).ocr is True
    with pytest.raises(ConfigError, match="OCR_LANGUAGES"):
        Settings.from_env({"OCR_LANGUAGES": "eng; rm -rf /"})
