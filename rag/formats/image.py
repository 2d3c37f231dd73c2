"""Images (PNG, JPEG, TIFF): their text read by OCR (rag.formats.ocr), one section per frame.

Pillow opens the file without decoding it; each frame's size is checked before it is decoded
(a decompression bomb fails alone), a large JPEG is decoded at a reduced scale, and the frames
of a multi-page TIFF are read one at a time, each a page of the document."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator

from PIL import Image, ImageOps, UnidentifiedImageError

from rag.errors import LoaderError
from rag.formats.base import Limits, Parsed
from rag.formats.ocr import OCR_PIXELS, TESSERACT, check_engine, check_pixels, ocr_image
from rag.schema import Section

_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "TIFF": "TIFF"}  # MPO: a camera JPEG
# What Pillow raises on a broken or hostile file while opening or decoding it.
_IMAGE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
                 SyntaxError, EOFError)
NO_TEXT = "no text found by OCR"
OCR_OFF = ("the image's text can only be read by OCR, and OCR is off: turn it on (OCR=true) "
           "with Tesseract installed")


def read(data: bytes, source: str, limits: Limits, *,
         tesseract_cmd: str = TESSERACT) -> Parsed:
    """An image file as a document of one page per frame, its text read by OCR; raises
    LoaderError up front when the file is damaged, too large, over MAX_PAGES frames, when OCR
    is off or the engine missing; while reading, when a frame is bad or holds no text at all."""
    image = _open(data, source)
    try:
        frames = getattr(image, "n_frames", 1)
    except _IMAGE_ERRORS as exc:  # Pillow counts a TIFF's frames by walking them
        raise LoaderError(source, f"damaged image ({exc})") from exc
    if limits.max_pages is not None and frames > limits.max_pages:
        raise LoaderError(source, f"the image has {frames} pages (frames), more than the limit "
                          f"of {limits.max_pages} (MAX_PAGES); split it, or raise MAX_PAGES")
    if not limits.ocr:
        raise LoaderError(source, OCR_OFF)
    check_engine(source, limits.ocr_languages, tesseract_cmd=tesseract_cmd)
    parsed = Parsed("image", frames, iter(()), {"ocr_pages": []})
    parsed.sections = _sections(image, frames, source, limits, parsed.meta, tesseract_cmd)
    return parsed


def _open(data: bytes, source: str) -> Image.Image:
    """The image, opened lazily (nothing decoded yet), its first frame's size checked."""
    try:
        with warnings.catch_warnings():
            # over Pillow's own limit the check below refuses the image with its reason
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise LoaderError(source, f"the image is too large to decode safely ({exc}): "
                          "scale it down") from exc
    except _IMAGE_ERRORS as exc:
        raise LoaderError(source, f"damaged or unsupported image ({exc})") from exc
    if image.format not in _FORMATS:
        raise LoaderError(source, f"unsupported image format ({image.format}): add PNG, JPEG "
                          "or TIFF images")
    check_pixels(image.width, image.height, source)
    return image


def _sections(image: Image.Image, frames: int, source: str, limits: Limits,
              meta: dict, tesseract_cmd: str) -> Iterator[Section]:
    """One section per frame with text, OCR'd as it is asked for."""
    found = False
    for number in range(1, frames + 1):
        where = f"page {number}" if frames > 1 else "the image"
        frame, dpi = _frame(image, number, source, where)
        text = ocr_image(frame, source, limits.ocr_languages, where=where, dpi=dpi,
                         tesseract_cmd=tesseract_cmd)
        meta["ocr_pages"].append(number)
        if text:
            found = True
            yield Section(text=text, page=number)
    if not found:
        raise LoaderError(source, NO_TEXT)


def _frame(image: Image.Image, number: int, source: str,
           where: str) -> tuple[Image.Image, float | None]:
    """Frame `number` (from 1) decoded, upright (its EXIF orientation applied), with its
    resolution in dpi when the file records one."""
    try:
        image.seek(number - 1)
        width = image.width
        check_pixels(width, image.height, source, where)
        if image.format == "JPEG" and width * image.height > OCR_PIXELS:
            # decoded at 1/2, 1/4 or 1/8 of its size: a fraction of the memory
            scale = (OCR_PIXELS / (width * image.height)) ** 0.5
            image.draft("L", (int(width * scale), int(image.height * scale)))
        frame = ImageOps.exif_transpose(image)  # a decoded copy
    except _IMAGE_ERRORS as exc:
        raise LoaderError(source, f"damaged image ({where}: {exc})") from exc
    dpi = image.info.get("dpi")
    if not (isinstance(dpi, tuple) and dpi and isinstance(dpi[0], int | float) and dpi[0] >= 50):
        return frame, None  # no resolution recorded (or a meaningless one): Tesseract guesses
    return frame, float(dpi[0]) * image.width / width  # draft() scaled it down
