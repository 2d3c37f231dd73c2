"""Text of an image by OCR, with Tesseract (Debian's tesseract-ocr), offline.

Tesseract runs as a child process with the image piped in as a PPM (or PGM) and its text
piped out: no temporary files. It is called directly rather than through pytesseract because
the call needs its own environment: with OpenMP threads (Tesseract's default) it is about six
times slower on a machine of two shared cores (5.5 s against 0.9 s for the shared DA-1p.png),
and pytesseract passes the process's own environment, its command path as a module global.

Bounds: an image of more than MAX_IMAGE_PIXELS is refused before it is decoded (a
decompression bomb); what goes to Tesseract is at most OCR_PIXELS (larger images are scaled
down); each run has a time limit, and its failures are LoaderErrors naming the fix."""

from __future__ import annotations

import io
import os
import re
import subprocess

from PIL import Image

from rag.errors import LoaderError
from rag.pdf import normalise_pdf_text

TESSERACT = "tesseract"
MAX_IMAGE_PIXELS = 80_000_000  # an image file's frame: 80 Mpx is 240 MB decoded as RGB
OCR_PIXELS = 25_000_000  # what Tesseract reads: an A3 page at 300 dpi is 17 Mpx
OCR_SECONDS = 120.0  # one page or image; a dense 300 dpi page takes a few seconds
_LOW_RESOLUTION = 1200  # px on the longer side: a page scanned at 100 dpi or less
_CHECK_SECONDS = 30.0
_WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_GRAY_MODES = _WIDE_MODES | {"1", "L", "LA", "La"}
_LANGUAGES = re.compile(r"[A-Za-z0-9_]+(?:\+[A-Za-z0-9_]+)*")
NO_ENGINE = "no OCR engine: install Tesseract (apt-get install tesseract-ocr) or set OCR=false"


def check_engine(source: str, languages: str, *, tesseract_cmd: str = TESSERACT) -> None:
    """Raise LoaderError unless Tesseract runs and has the data of every language of
    `languages` ("eng", "eng+deu")."""
    if not _LANGUAGES.fullmatch(languages):
        raise LoaderError(source, f"OCR_LANGUAGES={languages!r} is not a list of Tesseract "
                          "language codes such as eng or eng+deu")
    try:
        done = subprocess.run([tesseract_cmd, "--list-langs"], capture_output=True,
                              timeout=_CHECK_SECONDS, env=_environment(), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:  # not installed, not executable, hung
        raise LoaderError(source, f"{NO_ENGINE} ({tesseract_cmd}: {exc})") from exc
    if done.returncode != 0:
        raise LoaderError(source, f"{NO_ENGINE} ({tesseract_cmd} --list-langs failed: "
                          f"{_last_line(done.stderr or done.stdout)})")
    listed = done.stdout.decode("utf-8", "replace").splitlines()[1:]  # after "List of ..."
    missing = [code for code in languages.split("+") if code not in {x.strip() for x in listed}]
    if missing:
        packages = " ".join(f"tesseract-ocr-{code.lower().replace('_', '-')}"
                            for code in missing)
        raise LoaderError(source, f"no OCR engine for {', '.join(missing)}: Tesseract has no "
                          f"data for it; install it (apt-get install {packages}), or change "
                          "OCR_LANGUAGES, or set OCR=false")


def check_pixels(width: int, height: int, source: str, where: str = "the image") -> None:
    """Raise LoaderError for an image of more than MAX_IMAGE_PIXELS, before decoding it."""
    if width * height > MAX_IMAGE_PIXELS:
        raise LoaderError(
            source, f"{where} is {width}×{height} pixels ({width * height / 1e6:.0f} million), "
            f"more than the limit of {MAX_IMAGE_PIXELS / 1e6:.0f} million for OCR (a "
            "decompression bomb, or a scan at too high a resolution): scale it down")


def ocr_image(image: Image.Image, source: str, languages: str = "eng", *,
              where: str = "the image", dpi: float | None = None,
              tesseract_cmd: str = TESSERACT, timeout: float = OCR_SECONDS) -> str:
    """The text Tesseract reads in an image, normalised like PDF text (hyphenated line ends
    joined, spaces collapsed, paragraphs kept); "" when it finds none. `dpi`: the image's
    resolution, when known; `where` names it in errors ("page 3")."""
    check_pixels(image.width, image.height, source, where)
    prepared, dpi = _prepared(image, dpi)
    buffer = io.BytesIO()
    prepared.save(buffer, format="PPM")  # a PPM (or PGM): fast to write, no compression
    command = [tesseract_cmd, "stdin", "stdout", "-l", languages]
    if dpi:
        command += ["--dpi", str(round(dpi))]
    try:
        done = subprocess.run(command, input=buffer.getvalue(), capture_output=True,
                              timeout=timeout, env=_environment(), check=False)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it
        raise LoaderError(source, f"OCR of {where} took longer than {timeout:g} s (the time "
                          "limit of one page): split the file, or set OCR=false") from exc
    except OSError as exc:  # the engine went away since check_engine
        raise LoaderError(source, f"{NO_ENGINE} ({tesseract_cmd}: {exc})") from exc
    if done.returncode != 0:
        raise LoaderError(source, f"OCR of {where} failed (Tesseract: "
                          f"{_last_line(done.stderr)})")
    return normalise_pdf_text(done.stdout.decode("utf-8", "replace"))


def _prepared(image: Image.Image, dpi: float | None) -> tuple[Image.Image, float | None]:
    """The image as 8-bit gray or RGB on white (colour kept: text on a coloured table header
    is lost in gray), at a size Tesseract reads well: low-resolution images doubled (it reads
    text best with capitals 20-30 px high: DA-1p.png, 595×842, reads "ofthe", "theit",
    "ereate" as it is, and those words right doubled), large ones shrunk to OCR_PIXELS."""
    gray = image.mode in _GRAY_MODES
    if image.mode in _WIDE_MODES:
        image = image.convert("F").point(lambda v: v / 256)  # 16-bit samples to 8 bits
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    image = image.convert("L" if gray else "RGB")
    pixels = image.width * image.height
    factor = 1.0
    if max(image.size) < _LOW_RESOLUTION:
        factor = min(2.0, (OCR_PIXELS / pixels) ** 0.5)
    elif pixels > OCR_PIXELS:
        factor = (OCR_PIXELS / pixels) ** 0.5
    if factor != 1.0:
        size = (max(1, int(image.width * factor)), max(1, int(image.height * factor)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image, dpi * factor if dpi else None


def _environment() -> dict[str, str]:
    """The process environment with Tesseract on one thread, unless it is set already."""
    environment = dict(os.environ)
    environment.setdefault("OMP_THREAD_LIMIT", "1")
    return environment


def _last_line(output: bytes) -> str:
    """The last non-blank line of a program's output, for an error message."""
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "no message"
