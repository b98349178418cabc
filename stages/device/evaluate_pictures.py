"""doit evaluate's pictures, drawn with OpenCV and numpy: a per-class IoU bar chart per variant
(with the baseline's IoU as a tick), the baseline's confusion matrix (rows: label, normalised per
row), and image | label | prediction for the worst images. Each returns PNG or JPEG bytes."""
import numpy as np

FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX
WHITE, GREY, DARK = (255, 255, 255), (150, 150, 150), (32, 32, 32)


def _text(canvas, text, org, scale=0.5, color=WHITE, thickness=1):
    import cv2
    cv2.putText(canvas, text, org, FONT, scale, color, thickness, cv2.LINE_AA)


def _png(canvas):
    import cv2
    return cv2.imencode(".png", canvas)[1].tobytes()


def iou_chart(title, classes, baseline_classes=None):
    """Horizontal bars of per-class IoU (classes with a non-empty union), 0..1, with the
    baseline's IoU as a white tick and the value written after each bar."""
    import cv2
    rows = [c for c in classes if c["iou"] is not None]
    base = dict((c["name"], c["iou"]) for c in (baseline_classes or []))
    name_w, bar_w, row_h, top = 250, 520, 24, 56
    canvas = np.full((top + row_h * max(1, len(rows)) + 34, name_w + bar_w + 150, 3), 24, np.uint8)
    _text(canvas, title, (10, 24), 0.6)
    _text(canvas, "per-class IoU (0 to 1); white tick: the baseline", (10, 46), 0.45, GREY)
    for k, c in enumerate(rows):
        y = top + row_h * k
        _text(canvas, c["name"][:28], (10, y + 17), 0.5)
        colour = (80, 180, 80) if c["iou"] >= 0.5 else (60, 140, 230) if c["iou"] >= 0.25 else (
            70, 70, 220)
        cv2.rectangle(canvas, (name_w, y + 4), (name_w + int(bar_w * c["iou"]), y + row_h - 4),
                      colour, -1)
        b = base.get(c["name"])
        if b is not None:
            x = name_w + int(bar_w * b)
            cv2.line(canvas, (x, y + 1), (x, y + row_h - 1), WHITE, 2)
        _text(canvas, "%.3f" % c["iou"], (name_w + bar_w + 10, y + 17), 0.5)
    for frac in (0, 0.5, 1):
        x = name_w + int(bar_w * frac)
        cv2.line(canvas, (x, top - 2), (x, top + row_h * len(rows)), (70, 70, 70), 1)
        _text(canvas, "%g" % frac, (x - 6, canvas.shape[0] - 12), 0.45, GREY)
    return _png(canvas)


def confusion_picture(title, matrix, labels):
    """The confusion matrix over the classes present in the labels or the predictions, each row
    divided by its label pixels (so a row reads: where this class's pixels went), in percent."""
    import cv2
    matrix = np.asarray(matrix, np.float64)
    present = [c for c in range(len(labels)) if matrix[c].sum() or matrix[:, c].sum()]
    sub = matrix[np.ix_(present, present)]
    rows = sub.sum(axis=1, keepdims=True)
    share = np.divide(sub, rows, out=np.zeros_like(sub), where=rows > 0)
    cell, left, top = 40, 260, 96
    n = len(present)
    canvas = np.full((top + cell * n + 40, left + cell * n + 20, 3), 24, np.uint8)
    _text(canvas, title, (10, 24), 0.6)
    _text(canvas, "rows: label, columns: prediction (ids as on the left); % of the row", (10, 48),
          0.45, GREY)
    heat = cv2.applyColorMap(np.uint8(np.round(share * 255)).reshape(n, n, 1) if n else
                             np.zeros((1, 1, 1), np.uint8), cv2.COLORMAP_VIRIDIS)
    for i, c in enumerate(present):
        _text(canvas, "%2d %s" % (c, labels[c][:24]), (10, top + cell * i + 25), 0.5)
        _text(canvas, "%d" % c, (left + cell * i + 10, top - 12), 0.5)
        for j in range(n):
            x, y = left + cell * j, top + cell * i
            colour = tuple(int(v) for v in heat[i, j])
            cv2.rectangle(canvas, (x, y), (x + cell - 2, y + cell - 2), colour, -1)
            if share[i, j] >= 0.005:
                ink = DARK if share[i, j] > 0.6 else WHITE
                _text(canvas, "%d" % round(100 * share[i, j]), (x + 6, y + 25), 0.5, ink)
    return _png(canvas)


def colour_mask(mask, palette):
    """The mask in the model's palette (BGR); ignored pixels (255) in black."""
    table = np.zeros((256, 3), np.uint8)
    table[:len(palette)] = np.asarray(palette, np.uint8)[:, ::-1]
    return table[mask]


def worst_strip(image, label, prediction, palette, caption, height=360):
    """image | label | prediction, each `height` pixels high, captioned, as JPEG bytes."""
    import cv2
    h, w = image.shape[:2]
    width = max(1, int(round(w * float(height) / h)))
    panels = []
    for panel, name in ((image, "image"), (colour_mask(label, palette), "label (black: ignored)"),
                        (colour_mask(prediction, palette), "prediction")):
        interp = cv2.INTER_AREA if panel is image else cv2.INTER_NEAREST
        p = cv2.resize(panel, (width, height), interpolation=interp)
        cv2.rectangle(p, (0, height - 30), (width, height), (0, 0, 0), -1)
        _text(p, name, (8, height - 9), 0.6)
        panels.append(p)
    strip = np.concatenate(panels, axis=1)
    head = np.full((34, strip.shape[1], 3), 24, np.uint8)
    _text(head, caption, (8, 23), 0.6)
    return cv2.imencode(".jpg", np.concatenate([head, strip], axis=0),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
