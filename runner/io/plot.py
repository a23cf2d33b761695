"""loss.png and sweep.png without matplotlib, drawn with numpy into an RGB array and
written as a PNG with zlib.

Importing matplotlib alone takes longer than a whole small fit (0.35-0.8 s here), and a
sweep's plot is drawn by its one parent process after every trial, so yamlnet draws its
two plots itself: axes, grid, tick labels and a legend in a 5x7 bitmap font; a log scale
for losses when every one is positive; a metric against each swept value, one panel per
swept key, numbers on a linear axis and other values (names, booleans) side by side.
"""

import math
import struct
import zlib

import numpy as np

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 40  # margins around the plot area, in pixels
COLORS = {"loss": (31, 119, 180), "val_loss": (255, 127, 14)}  # matplotlib's first two
GRID, FRAME, TEXT = (225, 225, 225), (60, 60, 60), (30, 30, 30)

# 5x7 glyphs, one 5-bit row per number, top row first (bit 4 is the leftmost pixel).
FONT = {
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31), "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14), "9": (14, 17, 17, 15, 1, 2, 12),
    ".": (0, 0, 0, 0, 0, 12, 12), "-": (0, 0, 0, 31, 0, 0, 0), "+": (0, 4, 4, 31, 4, 4, 0),
    "_": (0, 0, 0, 0, 0, 0, 31), " ": (0,) * 7,
    "a": (0, 0, 14, 1, 15, 17, 15), "c": (0, 0, 14, 16, 16, 17, 14),
    "e": (0, 0, 14, 17, 31, 16, 14), "h": (16, 16, 22, 25, 17, 17, 17),
    "l": (12, 4, 4, 4, 4, 4, 14), "o": (0, 0, 14, 17, 17, 17, 14),
    "p": (0, 0, 30, 17, 30, 16, 16), "s": (0, 0, 15, 16, 14, 1, 30),
    "v": (0, 0, 17, 17, 17, 10, 4),
    "b": (16, 16, 22, 25, 17, 17, 30), "d": (1, 1, 13, 19, 17, 17, 15),
    "f": (6, 9, 8, 28, 8, 8, 8), "g": (0, 0, 15, 17, 15, 1, 14),
    "i": (4, 0, 12, 4, 4, 4, 14), "j": (2, 0, 6, 2, 2, 18, 12),
    "k": (16, 16, 18, 20, 24, 20, 18), "m": (0, 0, 26, 21, 21, 17, 17),
    "n": (0, 0, 22, 25, 17, 17, 17), "q": (0, 0, 13, 19, 15, 1, 1),
    "r": (0, 0, 22, 25, 16, 16, 16), "t": (8, 8, 28, 8, 8, 9, 6),
    "u": (0, 0, 17, 17, 17, 19, 13), "w": (0, 0, 17, 17, 21, 21, 10),
    "x": (0, 0, 17, 10, 4, 10, 17), "y": (0, 0, 17, 17, 15, 1, 14),
    "z": (0, 0, 31, 2, 4, 8, 31), ":": (0, 12, 12, 0, 12, 12, 0),
    "/": (0, 1, 2, 4, 8, 16, 0), "=": (0, 0, 31, 0, 31, 0, 0), ",": (0, 0, 0, 0, 12, 4, 8),
    "[": (14, 8, 8, 8, 8, 8, 14), "]": (14, 2, 2, 2, 2, 2, 14),
}
POINT = COLORS["loss"]


def text(img, x, y, s, color=TEXT, anchor="left"):
    """Draw `s` with its top at row y, starting (or, with anchor right/center, ending or
    centred) at column x; 6 pixels per character."""
    width = 6 * len(s) - 1
    x -= {"left": 0, "right": width, "center": width // 2}[anchor]
    for k, ch in enumerate(s):
        for r, bits in enumerate(FONT.get(ch, FONT.get(ch.lower(), FONT[" "]))):
            for c in range(5):
                if bits >> (4 - c) & 1 and 0 <= y + r < img.shape[0] and 0 <= x + 6 * k + c < img.shape[1]:
                    img[y + r, x + 6 * k + c] = color


def nice_ticks(lo, hi, count=6):
    """Round values (1, 2 or 5 times a power of ten apart) spanning [lo, hi]."""
    span = (hi - lo) or abs(hi) or 1.0
    raw = span / count
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)),
               key=lambda s: abs(s - raw))
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(v):
    if v == 0 or 1e-4 <= abs(v) < 1e6:
        return f"{v:.6g}"
    return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e+")


def line(img, xs, ys, color):
    """A polyline through pixel coordinates (xs, ys), 2 pixels thick."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if len(xs) == 1:
        xs, ys = np.repeat(xs, 2), np.repeat(ys, 2)
    steps = np.maximum(np.ceil(np.maximum(abs(np.diff(xs)), abs(np.diff(ys)))), 1).astype(int)
    seg = np.repeat(np.arange(len(steps)), steps)
    t = (np.arange(len(seg)) - np.repeat(np.cumsum(steps) - steps, steps)) / steps[seg]
    px = np.append(xs[seg] + t * np.diff(xs)[seg], xs[-1])
    py = np.append(ys[seg] + t * np.diff(ys)[seg], ys[-1])
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        c = np.clip(np.floor(px).astype(int) + dx, 0, img.shape[1] - 1)
        r = np.clip(np.floor(py).astype(int) + dy, 0, img.shape[0] - 1)
        img[r, c] = color


def losses_png(rows):
    """The PNG bytes of loss (and val_loss) against epoch for history rows."""
    img = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    keys = [k for k in ("loss", "val_loss") if k in rows[0]]
    epochs = np.array([r["epoch"] for r in rows], float)
    values = {k: np.array([r[k] for r in rows], float) for k in keys}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()])
    log = finite.size > 0 and bool((finite > 0).all())
    f = np.log10 if log else (lambda v: np.asarray(v, float))
    lo, hi = (f(finite.min()), f(finite.max())) if finite.size else (0.0, 1.0)
    lo, hi = (lo - 0.5, hi + 0.5) if hi - lo < 1e-12 else (lo - 0.04 * (hi - lo), hi + 0.04 * (hi - lo))
    e0, e1 = epochs[0], max(epochs[-1], epochs[0] + 1)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP

    def px(e):
        return x0 + (np.asarray(e, float) - e0) / (e1 - e0) * (x1 - x0)

    def py(v):
        return y0 - (f(v) - lo) / (hi - lo) * (y0 - y1)

    if log and hi - lo >= 1:
        yticks = [10.0**k for k in range(math.ceil(lo), math.floor(hi) + 1)]
    else:
        yticks = [10**t if log else t for t in nice_ticks(lo, hi)] if not log else \
            [v for v in nice_ticks(10**lo, 10**hi) if v > 0]
    frame(img, (x0, x1, y0, y1), [(py(v), _label(v)) for v in yticks],
          [(px(e), _label(e)) for e in nice_ticks(e0, e1)])
    text(img, (x0 + x1) // 2, HEIGHT - 14, "epoch", anchor="center")
    for i, k in enumerate(keys):
        ok = np.isfinite(values[k])
        if ok.any():
            line(img, px(epochs[ok]), py(values[k][ok]), COLORS[k])
        img[y1 + 10 + 12 * i:y1 + 12 + 12 * i, x1 - 80:x1 - 64] = COLORS[k]
        text(img, x1 - 58, y1 + 8 + 12 * i, k)
    return png(img)


def frame(img, box, yticks, xticks):
    """Grid lines, tick labels and the frame of the plot area box = (x0, x1, y0, y1)
    (y0 the bottom row); ticks: [(pixel position, label)] on each axis."""
    x0, x1, y0, y1 = box
    for r, label in yticks:
        r = int(round(float(r)))
        if y1 <= r <= y0:
            img[r, x0:x1] = GRID
            text(img, x0 - 6, r - 3, label, anchor="right")
    for c, label in xticks:
        c = int(round(float(c)))
        if x0 <= c <= x1:
            img[y1:y0, c] = GRID
            text(img, c, y0 + 6, label, anchor="center")
    img[y1:y0 + 1, x0] = img[y1:y0 + 1, x1] = FRAME
    img[y0, x0:x1 + 1] = img[y1, x0:x1 + 1] = FRAME


def _span(values):
    """(lo, hi) around finite `values`, padded by 4% (by 0.5 when they are all equal)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    return (lo - 0.5, hi + 0.5) if hi - lo < 1e-12 else (lo - 0.04 * (hi - lo), hi + 0.04 * (hi - lo))


def _numeric(values):
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


PANEL_W, PANEL_H = 360, 300


def sweep_png(panels, metric):
    """The PNG bytes of `metric` against each swept value: panels [(key, [value], [metric])],
    one beside the other; numeric values on a linear axis, others (names, booleans, lists)
    at evenly spaced positions labelled by their text."""
    img = np.full((PANEL_H, PANEL_W * len(panels), 3), 255, np.uint8)
    ys = np.array([y for _, _, values in panels for y in values], float)
    lo, hi = _span(ys) if ys.size else (0.0, 1.0)
    for k, (key, xs, values) in enumerate(panels):
        x0, x1, y0, y1 = PANEL_W * k + LEFT, PANEL_W * (k + 1) - RIGHT, PANEL_H - BOTTOM, TOP + 12
        if _numeric(xs):
            a, b = _span(np.array(xs, float))
            at = [x0 + (float(x) - a) / (b - a) * (x1 - x0) for x in xs]
            xticks = [(x0 + (t - a) / (b - a) * (x1 - x0), _label(t)) for t in nice_ticks(a, b, 4)]
        else:
            names = list(dict.fromkeys(str(x) for x in xs))
            slot = (x1 - x0) / len(names)
            place = {n: x0 + slot * (i + 0.5) for i, n in enumerate(names)}
            at = [place[str(x)] for x in xs]
            room = max(1, int(slot // 6) - 1)  # characters that fit under a value
            xticks = [(place[n], n if len(n) <= room else n[:room - 1] + ".") for n in names]
        yticks = [(y0 - (t - lo) / (hi - lo) * (y0 - y1), _label(t)) for t in nice_ticks(lo, hi, 5)]
        frame(img, (x0, x1, y0, y1), yticks, xticks)
        for x, y in zip(at, values):
            c, r = int(round(x)), int(round(y0 - (y - lo) / (hi - lo) * (y0 - y1)))
            img[max(r - 2, 0):r + 3, max(c - 2, 0):c + 3] = POINT
        text(img, (x0 + x1) // 2, PANEL_H - 14, key, anchor="center")
        text(img, x0, TOP - 2, metric)
    return png(img)


def png(img):
    """PNG bytes of an (h, w, 3) uint8 RGB array."""
    h, w, _ = img.shape
    raw = np.zeros((h, 1 + 3 * w), np.uint8)  # filter byte 0 (none) before each row
    raw[:, 1:] = img.reshape(h, 3 * w)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))
