"""Figure plumbing shared by every figure: whole-pixel figures, axes in inches, names, PNGs.

Figures are :class:`matplotlib.figure.Figure` objects with the Agg canvas attached directly,
so no pyplot state and no global backend setting is touched and no display is needed.  Every
PNG is written atomically (temporary file in the same folder, then a rename) and
byte-for-byte deterministic for the same inputs and library versions.
"""

from __future__ import annotations

import math
import re
import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from depth_eval.writing import write_atomic

# Resolution of every saved figure; sizes are in inches, so pixels = inches * DPI.
DPI = 100
# zlib level of the figure PNGs (1: fast; the pictures are for looking at, not archiving).
FIGURE_PNG_COMPRESSION = 1

# Space around a figure's content, in inches.
MARGIN_IN = 0.15
# Band above the panels holding the figure title, and the title's distance from the top.
SUPTITLE_HEIGHT_IN = 0.5
SUPTITLE_TOP_IN = 0.1

TITLE_FONT_SIZE = 10
SUPTITLE_FONT_SIZE = 13
TICK_FONT_SIZE = 8

# Snapshot names: characters per title line (two lines at most).
MAX_NAME_CHARS = 28
ELLIPSIS = "\u2026"
NAME_TOKEN_PATTERN = re.compile(r"[^_\-.]*[_\-.]|[^_\-.]+")

# Matplotlib's text and font caches are shared between figures; draw one figure at a time.
RENDER_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------

def shorten_name(name: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """``name`` unchanged if short enough, else its start and end around an ellipsis.

    The end is kept as long as the start or one longer, because snapshot names differ at the
    end (``..._iter_90000``).
    """
    if len(name) <= max_chars:
        return name
    tail = max_chars // 2
    head = max_chars - 1 - tail
    return name[:head] + ELLIPSIS + name[-tail:]


def wrap_name(name: str, line_chars: int = MAX_NAME_CHARS) -> list[str]:
    """A snapshot name as one or two lines of at most ``line_chars`` characters.

    Lines break after ``_``, ``-`` or ``.`` where possible.  A name too long for two lines
    keeps its start (ending in an ellipsis) and its end, where snapshot names differ.
    """
    if len(name) <= line_chars:
        return [name]
    tokens = NAME_TOKEN_PATTERN.findall(name)
    if len(name) <= 2 * line_chars:
        for split in range(len(tokens) - 1, 0, -1):
            first, second = "".join(tokens[:split]), "".join(tokens[split:])
            if len(first) <= line_chars and len(second) <= line_chars:
                return [first, second]
        return [name[:line_chars], name[line_chars:]]
    return [_tokens_within(tokens, line_chars - 1) + ELLIPSIS,
            _tokens_within(tokens[::-1], line_chars, reverse=True)]


def _tokens_within(tokens: list[str], max_chars: int, reverse: bool = False) -> str:
    """The longest run of whole leading tokens within ``max_chars`` (else a cut first token).

    With ``reverse``, ``tokens`` are given last first and the result is the name's tail.
    """
    kept = ""
    for token in tokens:
        candidate = token + kept if reverse else kept + token
        if len(candidate) > max_chars:
            break
        kept = candidate
    if kept:
        return kept
    return tokens[0][-max_chars:] if reverse else tokens[0][:max_chars]


# --------------------------------------------------------------------------------------------
# Figures and axes
# --------------------------------------------------------------------------------------------

def whole_pixels(inches: float) -> float:
    """``inches`` rounded up so that ``inches * DPI`` is a whole number of pixels."""
    return math.ceil(round(inches * DPI, 6)) / DPI


def new_figure(width_in: float, height_in: float, constrained: bool = False) -> Figure:
    """A figure (whole pixels at ``DPI``) with its own Agg canvas, no pyplot involved."""
    figure = Figure(figsize=(whole_pixels(width_in), whole_pixels(height_in)), dpi=DPI,
                    layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    if constrained:
        figure.get_layout_engine().set(w_pad=0.04, h_pad=0.04, wspace=0.02, hspace=0.02)
    return figure


def axes_at(figure: Figure, left_in: float, top_in: float, width_in: float, height_in: float):
    """Axes placed in inches from the figure's top-left corner."""
    width, height = figure.get_size_inches()
    return figure.add_axes((left_in / width, 1.0 - (top_in + height_in) / height,
                            width_in / width, height_in / height))


def top_title(figure: Figure, title: str) -> None:
    """The figure title, ``SUPTITLE_TOP_IN`` below the top edge (for hand-placed panels)."""
    figure.suptitle(title, fontsize=SUPTITLE_FONT_SIZE,
                    y=1.0 - SUPTITLE_TOP_IN / figure.get_size_inches()[1], va="top")


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

def figure_pixels(figure: Figure) -> tuple[int, int]:
    """(width, height) in pixels of the PNG :func:`save_png` writes for ``figure``."""
    width_in, height_in = figure.get_size_inches()
    return round(width_in * DPI), round(height_in * DPI)


def render_bgr(figure: Figure) -> np.ndarray:
    """The figure drawn by Agg at ``DPI``, as an H x W x 3 uint8 BGR picture."""
    figure.set_dpi(DPI)
    canvas = figure.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return cv2.cvtColor(np.asarray(canvas.buffer_rgba()), cv2.COLOR_RGBA2BGR)


def save_png(figure: Figure, path: Path, text: dict[str, str] | None = None) -> None:
    """Render ``figure`` (pixels = size in inches * ``DPI``) and write a PNG atomically.

    OpenCV encodes the PNG (several times faster than matplotlib's encoder on maps with noise);
    the file holds no time stamp or version, so equal figures give equal bytes.  ``text``
    adds PNG text chunks (keyword -> Latin-1 text), read back by :func:`png_text`.
    """
    ok, data = cv2.imencode(".png", render_bgr(figure),
                            [cv2.IMWRITE_PNG_COMPRESSION, FIGURE_PNG_COMPRESSION])
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    data = data.tobytes()
    if text:
        chunks = b"".join(_png_chunk(b"tEXt", key.encode("latin-1") + b"\0"
                                     + value.encode("latin-1")) for key, value in text.items())
        data = data[:_PNG_FIRST_CHUNK_END] + chunks + data[_PNG_FIRST_CHUNK_END:]
    write_atomic(Path(path), data)


# A PNG: the 8-byte signature, then chunks (length, type, data, CRC-32); IHDR comes first and
# is 13 bytes of data, so text chunks go in right after its 25 bytes (the PNG specification).
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_FIRST_CHUNK_END = len(_PNG_SIGNATURE) + 25


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (len(payload).to_bytes(4, "big") + kind + payload
            + zlib.crc32(kind + payload).to_bytes(4, "big"))


def png_text(data: bytes) -> dict[str, str]:
    """The tEXt chunks of PNG bytes (keyword -> text); empty for anything that is not a PNG."""
    if not data.startswith(_PNG_SIGNATURE):
        return {}
    found, offset = {}, len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        kind = data[offset + 4:offset + 8]
        payload = data[offset + 8:offset + 8 + length]
        if kind == b"tEXt" and b"\0" in payload:
            key, _, value = payload.partition(b"\0")
            found[key.decode("latin-1")] = value.decode("latin-1")
        if kind in (b"IDAT", b"IEND"):
            break  # text before the image data is all this reader needs
        offset += 12 + length
    return found
