"""The plots drawn without matplotlib: valid PNG files whose points and curves sit where
the values put them (decoded back into pixels here with zlib alone)."""

import struct
import zlib

import numpy as np

from runner.io import plot


def decode(data):
    """(h, w, 3) uint8 pixels of a PNG written by plot.png (8-bit RGB, filter 0)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, {}
    while at < len(data):
        (size,), kind = struct.unpack(">I", data[at:at + 4]), data[at + 4:at + 8]
        body = data[at + 8:at + 8 + size]
        assert struct.unpack(">I", data[at + 8 + size:at + 12 + size])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        at += 12 + size
    w, h, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, color) == (8, 2)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


def point_centres(img, x_from, x_to):
    """(column, row) centres of the 5x5 point squares between columns x_from and x_to."""
    mask = (img[:, x_from:x_to] == plot.POINT).all(axis=2)
    centres = []
    for r, c in zip(*np.nonzero(mask)):
        if mask[r - 2:r + 3, c - 2:c + 3].all():  # the centre of a whole square
            centres.append((x_from + int(c), int(r)))
    return centres


def test_sweep_png_places_each_point_by_its_value():
    panels = [("train.optimizer.lr", [0.001, 0.01, 0.001], [0.9, 0.3, 0.6]),
              ("model.layers.0.activation", ["relu", "tanh", "relu"], [0.9, 0.3, 0.6])]
    img = decode(plot.sweep_png(panels, "val_loss"))
    assert img.shape == (plot.PANEL_H, 2 * plot.PANEL_W, 3)
    left = sorted(point_centres(img, 0, plot.PANEL_W))
    right = sorted(point_centres(img, plot.PANEL_W, 2 * plot.PANEL_W))
    assert len(left) == len(right) == 3
    # numbers: lr 0.001 at the left of the axis, 0.01 at the right, the 4% padding apart
    x0, x1 = plot.LEFT, plot.PANEL_W - plot.RIGHT
    cols = sorted({c for c, _ in left})
    assert abs(cols[0] - (x0 + 0.04 / 1.08 * (x1 - x0))) <= 1
    assert abs(cols[1] - (x1 - 0.04 / 1.08 * (x1 - x0))) <= 1
    # the metric: higher values higher up, the same rows in both panels
    by_value = {0.9: None, 0.6: None, 0.3: None}
    rows = sorted({r for _, r in left})
    assert rows == sorted({r for _, r in right})
    for value, row in zip(sorted(by_value, reverse=True), rows):
        by_value[value] = row
    assert by_value[0.9] < by_value[0.6] < by_value[0.3]
    # names: relu and tanh at the centres of two equal slots
    slot = (x1 - x0) / 2
    assert sorted({c - plot.PANEL_W for c, _ in right}) == [round(x0 + slot * 0.5),
                                                            round(x0 + slot * 1.5)]


def test_losses_png_draws_both_curves():
    rows = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.5 / e} for e in range(1, 11)]
    img = decode(plot.losses_png(rows))
    assert img.shape == (plot.HEIGHT, plot.WIDTH, 3)
    for key in ("loss", "val_loss"):
        assert (img == plot.COLORS[key]).all(axis=2).sum() > 200  # a curve, not the legend alone
