"""Procedural street scenes with pixel-exact labels, for the embedded default model.

A scene is drawn at any size from a seed: sky, buildings, road with lane marks and
crosswalks, curbs, sidewalks, grass, trees, poles with signs, cars and people.
Class ids follow the 35-label id2label of nickmuchi/segformer-b4-finetuned-segments-sidewalk.
"""
import cv2
import numpy as np

ROAD, SIDEWALK, CROSSWALK, CURB, PERSON, CAR = 1, 2, 3, 7, 8, 10
BUILDING, POLE, SIGN, VEGETATION, TERRAIN, SKY = 18, 25, 26, 28, 29, 30


def _noise(rng, h, w, amp):
    small = rng.normal(0, amp, (max(2, h // 8), max(2, w // 8))).astype(np.float32)
    coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    return coarse + rng.normal(0, amp / 2, (h, w, 1)).astype(np.float32)


def _paint(img, lab, mask, color, cls, rng, amp=8.0):
    """Fill `mask` with a textured colour and write its class into the label map."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    tex = np.asarray(color, np.float32) + _noise(rng, y1 - y0, x1 - x0, amp)
    img[ys, xs] = tex[ys - y0, xs - x0]
    lab[ys, xs] = cls


def _poly_mask(h, w, pts):
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(np.asarray(pts)).astype(np.int32)], 1)
    return m.astype(bool)


def _jitter(rng, base, spread=25):
    return np.clip(np.asarray(base) + rng.integers(-spread, spread + 1, 3), 0, 255)


def _sky_and_buildings(img, lab, rng, h, w, horizon):
    sky = np.zeros((h, w), bool)
    sky[:horizon] = True
    _paint(img, lab, sky, _jitter(rng, (215, 170, 120), 30), SKY, rng, 4)
    x = -int(rng.integers(0, w // 10 + 1))
    while x < w:
        bw = int(w * rng.uniform(0.08, 0.22)) + 2
        top = int(horizon * rng.uniform(0.05, 0.7))
        m = np.zeros((h, w), bool)
        m[top:horizon + 2, max(x, 0):x + bw] = True
        base = (int(rng.integers(60, 200)),) * 3 if rng.random() < 0.5 else (90, 110, 170)
        _paint(img, lab, m, _jitter(rng, base, 30), BUILDING, rng, 6)
        win = _jitter(rng, (70, 60, 40), 20)
        step = max(4, bw // 5)
        for wy in range(top + step // 2, horizon - step, step):
            for wx in range(max(x, 0) + step // 3, min(x + bw, w) - step // 2, step):
                cv2.rectangle(img, (wx, wy), (wx + step // 2, wy + step // 2), win.tolist(), -1)
        x += bw


def _ground(img, lab, rng, h, w, horizon):
    vx = w * rng.uniform(0.35, 0.65)
    half = w * rng.uniform(0.25, 0.45)
    walk = w * rng.uniform(0.12, 0.3)
    grass = _poly_mask(h, w, [(0, horizon), (w, horizon), (w, h), (0, h)])
    _paint(img, lab, grass, _jitter(rng, (60, 150, 90), 25), TERRAIN, rng, 14)
    for sgn in (-1, 1):
        outer = [(vx + sgn * 4, horizon), (vx + sgn * (half + walk), h), (vx + sgn * half, h),
                 (vx + sgn * 2, horizon)]
        _paint(img, lab, _poly_mask(h, w, outer), _jitter(rng, (170, 180, 185), 15), SIDEWALK, rng,
               6)
        curb = [(vx + sgn * 2.5, horizon), (vx + sgn * (half + w * 0.012), h), (vx + sgn * half, h),
                (vx + sgn * 2, horizon)]
        _paint(img, lab, _poly_mask(h, w, curb), (215, 215, 215), CURB, rng, 3)
    road = [(vx - 2, horizon), (vx + 2, horizon), (vx + half, h), (vx - half, h)]
    _paint(img, lab, _poly_mask(h, w, road), _jitter(rng, (75, 75, 78), 12), ROAD, rng, 5)
    _road_marks(img, lab, rng, h, w, horizon, vx, half)
    return vx, half, walk


def _road_marks(img, lab, rng, h, w, horizon, vx, half):
    for t0 in np.arange(0.1, 1.0, 0.18):
        t1 = t0 + 0.07
        ya, yb = horizon + t0 * (h - horizon), horizon + t1 * (h - horizon)
        da, db = 1 + t0 * w * 0.004, 1 + t1 * w * 0.004
        pts = [(vx - da, ya), (vx + da, ya), (vx + db, yb), (vx - db, yb)]
        cv2.fillPoly(img, [np.round(np.asarray(pts)).astype(np.int32)], (235, 235, 235))
    if rng.random() < 0.6:
        t0 = rng.uniform(0.55, 0.8)
        y0, y1 = horizon + t0 * (h - horizon), horizon + (t0 + 0.08) * (h - horizon)
        for k in range(-5, 6, 2):
            xa0, xa1 = vx + half * t0 * k / 6, vx + half * t0 * (k + 1) / 6
            pts = [(xa0, y0), (xa1, y0), (xa1, y1), (xa0, y1)]
            _paint(img, lab, _poly_mask(h, w, pts), (240, 240, 240), CROSSWALK, rng, 3)


def _trees(img, lab, rng, h, w, horizon):
    for _ in range(rng.integers(1, 4)):
        r = int(w * rng.uniform(0.03, 0.09)) + 2
        cy = int(horizon - r * 0.3)
        m = np.zeros((h, w), np.uint8)
        cv2.circle(m, (int(rng.uniform(0, w)), cy), r, 1, -1)
        _paint(img, lab, m.astype(bool), _jitter(rng, (40, 110, 50), 20), VEGETATION, rng, 18)


def _poles(img, lab, rng, h, w, horizon, vx, half, walk):
    for _ in range(rng.integers(1, 4)):
        sgn = rng.choice([-1, 1])
        t = rng.uniform(0.3, 0.9)
        y = int(horizon + t * (h - horizon))
        x = int(vx + sgn * (half + walk * 0.6) * t)
        pw, ph = max(2, int(w * 0.006 * t)), int((h - horizon) * 0.9 * t + h * 0.1)
        m = np.zeros((h, w), bool)
        m[max(0, y - ph):y, max(0, x - pw):max(0, x + pw)] = True
        _paint(img, lab, m, (70, 70, 70), POLE, rng, 3)
        m = np.zeros((h, w), np.uint8)
        cv2.circle(m, (x, max(0, y - ph)), max(3, int(w * 0.025 * t)), 1, -1)
        color = (40, 40, 200) if rng.random() < .5 else (180, 90, 30)
        _paint(img, lab, m.astype(bool), _jitter(rng, color, 20), SIGN, rng, 3)


def _cars(img, lab, rng, h, w, horizon, vx, half):
    for _ in range(rng.integers(0, 4)):
        t = rng.uniform(0.2, 0.95)
        y = int(horizon + t * (h - horizon))
        cw, ch = int(half * 0.55 * t) + 4, int(half * 0.35 * t) + 3
        x = int(vx + rng.uniform(-0.6, 0.6) * half * t)
        m = np.zeros((h, w), np.uint8)
        cv2.rectangle(m, (x - cw // 2, y - ch), (x + cw // 2, y), 1, -1)
        cv2.rectangle(m, (x - cw // 3, y - int(ch * 1.5)), (x + cw // 3, y - ch), 1, -1)
        _paint(img, lab, m.astype(bool), _jitter(rng, rng.integers(20, 230, 3), 10), CAR, rng, 6)
        cv2.rectangle(img, (x - cw // 4, y - int(ch * 1.4)), (x + cw // 4, y - int(ch * 1.05)),
                      (40, 30, 30), -1)
        for dx in (-cw // 3, cw // 3):
            cv2.circle(img, (x + dx, y), max(1, ch // 4), (20, 20, 20), -1)
            cv2.circle(lab, (x + dx, y), max(1, ch // 4), CAR, -1)


def _people(img, lab, rng, h, w, horizon, vx, half, walk):
    for _ in range(rng.integers(0, 4)):
        sgn = rng.choice([-1, 1])
        t = rng.uniform(0.3, 0.95)
        y = int(horizon + t * (h - horizon))
        x = int(vx + sgn * (half + walk * 0.4) * t)
        ph = int((h - horizon) * 0.45 * t) + 6
        pw = max(2, ph // 6)
        m = np.zeros((h, w), np.uint8)
        cv2.rectangle(m, (x - pw, y - int(ph * 0.85)), (x + pw, y), 1, -1)
        cv2.circle(m, (x, y - int(ph * 0.92)), max(1, int(pw * 0.8)), 1, -1)
        _paint(img, lab, m.astype(bool), _jitter(rng, (60, 80, 150), 60), PERSON, rng, 8)


def render_scene(seed, width, height):
    """Return (bgr uint8 HxWx3, label uint8 HxW) for one generated street scene."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32)
    lab = np.zeros((height, width), np.uint8)
    horizon = int(height * rng.uniform(0.3, 0.55))
    _sky_and_buildings(img, lab, rng, height, width, horizon)
    vx, half, walk = _ground(img, lab, rng, height, width, horizon)
    _trees(img, lab, rng, height, width, horizon)
    _poles(img, lab, rng, height, width, horizon, vx, half, walk)
    _cars(img, lab, rng, height, width, horizon, vx, half)
    _people(img, lab, rng, height, width, horizon, vx, half, walk)
    img = np.clip(img * rng.uniform(0.75, 1.2), 0, 255).astype(np.uint8)
    return img, lab
