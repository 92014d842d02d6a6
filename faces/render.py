"""The AU-driven face renderer: per-frame AU intensities in, RGB frames and 68 landmarks out.

    renderer = FaceRenderer(size=128, supersample=2)
    frames, landmarks = renderer.render(identity, scene, aus, pose, gaze)   # (N, H, W, 3) uint8, (N, 68, 2)

Each frame: the 3-D landmarks of the person (faces.landmarks) moved by the AUs, projected with the
head pose; skin, hair, brows, eyes (iris following the gaze), nose and mouth drawn with OpenCV's
anti-aliased polygons at `supersample` x the output size; the AU appearance cues FACS names,
darkening with intensity (forehead lines AU01/AU02, brow furrows AU04, crow's feet and the
infraorbital furrow AU06 with the cheeks raised in the shading, lid tension AU07, nose wrinkles
AU09, nasolabial fold AU10/AU12, dimples AU14, marionette lines AU15, chin boss AU17, stretch lines
AU20, pressed lips AU23, teeth when the lips part AU25/AU26, lids closing AU45); the person's
permanent lines at constant depth (FACS would not score them); Lambert lighting, a passing hand,
colour cast, blur, area down-sampling (the anti-aliasing), sensor noise and, for stills, JPEG.
Deterministic: the only randomness is the seeded noise stream passed in.
"""
from __future__ import annotations

import cv2
import numpy as np

from faces.identity import Identity, Scene
from faces.landmarks import AU, CAMERA_MM, FACE_HEIGHT_MM, PIVOT, face_points, rotations
from faces.shading import depth, grid_to_image, shade_map, skin_texture

SHIFT = 4                  # OpenCV fixed-point bits for sub-pixel vertices
# An expression line is a shaded groove a few millimetres wide. Drawn 0.8 mm wide, it averaged away
# at the detector's 64x64 crops (~0.3 px/mm): a CNN trained on the true labels stayed at chance.
CREASE_MM = 2.2
_ONE = float(1 << SHIFT)


def _cue(x: float, full: float = 3.0) -> float:
    """Intensity-graded strength of an appearance cue: 0 at rest, 1 from `full` on."""
    return float(np.clip(x / full, 0.0, 1.0)) ** 0.8


def _arc(x0, x1, y, sag, n=7):
    xs = np.linspace(x0, x1, n)
    mid = (x0 + x1) / 2
    return np.stack([xs, y + sag * ((xs - mid) / max(abs(x1 - x0) / 2, 1e-6)) ** 2], axis=1)


def _on_surface(xy: np.ndarray, lift: float = 0.0, cheek: float = 0.0) -> np.ndarray:
    """(P, 2) face-frame points -> (P, 3) lying on the surface (lift > 0 floats towards the camera)."""
    return np.concatenate([xy, depth(xy[:, 0], xy[:, 1], cheek)[:, None] - lift], axis=1)


def _ellipse(c: np.ndarray, rx: float, ry: float, n: int = 14) -> np.ndarray:
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return c + np.stack([rx * np.cos(th), ry * np.sin(th), np.zeros(n)], axis=1)


class FaceRenderer:
    def __init__(self, *, size: int = 128, supersample: int = 2, face_frac: float = 0.62):
        if not 32 <= size <= 512:
            raise ValueError(f"render size={size}: expected 32..512 pixels")
        self.size, self.ss, self.face_frac = int(size), int(max(1, supersample)), float(face_frac)
        self._texture: dict[int, np.ndarray] = {}

    # ---- drawing helpers on the supersampled canvas (float32 RGB in [0, 1]) ----
    # A mask covers only the bounding box of its shape (`roi` = y0, y1, x0, x1): most features are a
    # few hundred pixels, and painting whole frames for each would dominate the cost.
    def _roi(self, polys, pad: float) -> tuple[int, int, int, int]:
        allp = np.concatenate(polys)
        lo = np.floor(allp.min(axis=0) - pad).astype(int)
        hi = np.ceil(allp.max(axis=0) + pad).astype(int) + 1
        w = self._w
        clip = lambda v: min(max(int(v), 0), w)
        return clip(lo[1]), clip(hi[1]), clip(lo[0]), clip(hi[0])

    def _mask(self, polys, *, closed=True, width=0.0, roi=None):
        roi = roi or self._roi(polys, width + 2)
        y0, y1, x0, x1 = roi
        m = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), np.uint8)
        if m.size:
            pts = [np.round((p - [x0, y0]) * _ONE).astype(np.int32) for p in polys]
            if width > 0:
                cv2.polylines(m, pts, closed, 255, max(1, int(round(width))), cv2.LINE_AA, SHIFT)
            else:
                cv2.fillPoly(m, pts, 255, cv2.LINE_AA, SHIFT)
        return m.astype(np.float32) * (1.0 / 255.0), roi

    @staticmethod
    def _paint(img, mask_roi, color, alpha=1.0):
        mask, (y0, y1, x0, x1) = mask_roi
        if alpha <= 0 or mask.size == 0:
            return
        sub = img[y0:y1, x0:x1]
        sub += (alpha * mask)[..., None] * (np.asarray(color, np.float32) - sub)

    def _line(self, img, xy3, width_mm, color, alpha):
        if alpha > 0.01:
            self._paint(img, self._mask([self._px(xy3)], closed=False, width=width_mm * self._mm), color, alpha)

    def _projector(self, rot: np.ndarray, pose: np.ndarray, w: int):
        """faces.landmarks.project for one frame with its rotation computed once (called ~50x a frame)."""
        focal = w * self.face_frac * CAMERA_MM / FACE_HEIGHT_MM * pose[5]
        centre = w / 2 + w * pose[3:5] + [0.0, -0.04 * w]
        shift = PIVOT @ np.eye(3) - PIVOT @ rot.T + [0.0, 0.0, CAMERA_MM]

        def px(p3: np.ndarray) -> np.ndarray:
            cam = p3 @ rot.T + shift
            return focal * cam[:, :2] / cam[:, 2:3] + centre
        return px

    # ---- one frame ----
    def _frame(self, ident: Identity, scene: Scene, aus, pose, gaze, t: float, background) -> tuple:
        w = self._w
        lm = face_points(ident.offsets, aus[None])[0]                       # (68, 3)
        cheek = float(np.clip(0.8 * _cue(aus[AU["AU06"]]) + 0.3 * _cue(aus[AU["AU12"]]), 0, 1))
        rot = rotations(pose[None, :3])[0]
        self._px = self._projector(rot, pose, w)
        lm_px = self._px(lm)
        self._mm = float(np.linalg.norm(lm_px[16] - lm_px[0]) / max(np.linalg.norm(lm[16] - lm[0]), 1e-6))
        # scale estimate for stroke widths: at large yaw the width shrinks, so use the height too
        self._mm = max(self._mm, float(np.linalg.norm(lm_px[8] - lm_px[27]) / max(np.linalg.norm(lm[8] - lm[27]), 1e-6)))
        img = background.copy()
        skin, hair = ident.skin, ident.hair
        brow_y = lm[17:27, 1].mean()
        half_w = (lm[16, 0] - lm[0, 0]) / 2
        y0 = (lm[0, 1] + lm[16, 1]) / 2
        th = np.linspace(0, np.pi, 13)[1:-1]
        forehead = np.stack([half_w * np.cos(th), y0 - (y0 - brow_y + ident.forehead_mm) * np.sin(th)], 1)
        outline = np.concatenate([lm[:17], _on_surface(forehead)])
        # neck and hair behind the head
        neck = np.array([lm[4], lm[12], lm[12] + [6, 110, 40], lm[4] + [-6, 110, 40]])
        self._paint(img, self._mask([self._px(neck)]), skin * 0.8)
        bald = ident.hairline_mm > ident.forehead_mm
        if not bald:
            r = ident.hair_volume
            ts = np.linspace(-0.25 * np.pi, 1.25 * np.pi, 17)
            skull = np.stack([(half_w + r) * np.cos(ts), y0 - (y0 - brow_y + ident.forehead_mm + r) * np.sin(ts),
                              np.full(len(ts), 70.0)], 1)
            skull[(ts < 0) | (ts > np.pi), 1] = y0 + 25
            self._paint(img, self._mask([self._px(skull)]), hair)
        head = self._mask([self._px(outline)], roi=(0, w, 0, w))
        self._paint(img, head, skin)
        for side in (0, 16):   # ears: outside the cheek line, hidden when turned away
            c = lm[side] + [(-8 if side == 0 else 8), -12, 25]
            ear, roi = self._mask([self._px(_ellipse(c, 7, 16))])
            y0_, y1_, x0_, x1_ = roi
            self._paint(img, (ear * (1 - head[0][y0_:y1_, x0_:x1_]), roi), skin * 0.85)
        if not bald:           # fringe: between the top of the forehead and the hair line
            hl = ident.hairline_mm
            line = np.stack([0.97 * half_w * np.cos(th), brow_y - hl - 6 * np.sin(th) ** 8 + 8 * (1 - np.sin(th))], 1)
            fringe = np.concatenate([_on_surface(forehead, 1.0), _on_surface(line[::-1], 1.0)])
            self._paint(img, self._mask([self._px(fringe)]), hair)
        self._features(img, ident, lm, aus, gaze)
        # lighting over the head (drawn features included), with the person's skin texture
        if ident.texture_seed not in self._texture:
            self._texture[ident.texture_seed] = skin_texture(ident.texture_seed)
        shade = shade_map(rot, scene.light, scene.ambient, cheek) * self._texture[ident.texture_seed]
        warp = grid_to_image(lm[:, :2], lm_px)
        light = cv2.warpAffine(shade, warp, (w, w), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        img *= light[..., None]
        if scene.hand.size and scene.hand[0] <= t <= scene.hand[1]:
            u = (t - scene.hand[0]) / max(scene.hand[1] - scene.hand[0], 1e-6)
            c = np.array([scene.hand[2] * 120 + 30 * (u - 0.5), 40 + scene.hand[3] * 60, -60.0])
            hand = self._px(_ellipse(c, 32, 48, 18))
            self._paint(img, self._mask([hand]), skin * (0.6 + 0.5 * scene.ambient))
        return img, lm_px

    def _features(self, img, ident: Identity, lm, aus, gaze):
        dark = ident.skin * 0.45
        c = ident.crease
        a = {name: _cue(aus[i]) for name, i in AU.items()}
        # brows
        for idx in (slice(17, 22), slice(22, 27)):
            b = lm[idx]
            taper = np.linspace(0.6, 1.0, 5) if idx.start == 17 else np.linspace(1.0, 0.6, 5)
            up = b + np.stack([np.zeros(5), -ident.brow_mm * taper, np.full(5, -0.5)], 1)
            lo = b + np.stack([np.zeros(5), ident.brow_mm * 0.6 * taper, np.full(5, -0.5)], 1)
            self._paint(img, self._mask([self._px(np.concatenate([up, lo[::-1]]))]), ident.hair * 0.7, 0.9)
        # eyes: sclera, iris and pupil clipped to the lids, lash line, upper-lid crease
        for eye in (slice(36, 42), slice(42, 48)):
            e = lm[eye]
            m, roi = self._mask([self._px(e)])
            self._paint(img, (m, roi), [0.88, 0.86, 0.83])
            centre = e[[0, 3]].mean(axis=0) + [4.5 * gaze[0], 2.0 * gaze[1], -1.0]
            for r, color in ((5.5, ident.iris), (2.3, [0.02, 0.02, 0.02])):
                self._paint(img, (m * self._mask([self._px(_ellipse(centre, r, r))], roi=roi)[0], roi), color)
            self._line(img, e[[0, 1, 2, 3]], 1.1, [0.05, 0.04, 0.04], 0.9)
            self._line(img, e[[3, 4, 5, 0]], 0.5, dark, 0.4)
            corner_y = e[[0, 3], 1].mean() - 6.5 - 2.0 * a["AU05"]
            crease = _on_surface(_arc(e[0, 0] + 2, e[3, 0] - 2, corner_y, 2.0, 5), 0.3)
            self._line(img, crease, 0.7, dark, 0.45)
        # nose: wings and nostrils
        for i, sx in ((31, -1), (35, 1)):
            wing = lm[i] + np.array([[0, -6, 0], [4 * sx, -4, 0], [5 * sx, 0, 0], [2 * sx, 2, 0]])
            self._line(img, wing, 0.8, dark, 0.5)
        for i in (32, 34):
            self._paint(img, self._mask([self._px(_ellipse(lm[i] + [0, 0.5, -1], 3.0, 1.6, 10))]), [0.15, 0.07, 0.06], 0.85)
        # mouth: lips, cavity, teeth, the line where the lips meet
        self._paint(img, self._mask([self._px(lm[48:60])]), ident.lips)
        inner = lm[60:68]
        cavity, roi = self._mask([self._px(inner)])
        self._paint(img, (cavity, roi), [0.22, 0.06, 0.06])
        up_teeth = np.concatenate([inner[[0, 1, 2, 3, 4]], inner[[4, 3, 2, 1, 0]] + [0, 4.5, 0.5]])
        lo_teeth = np.concatenate([inner[[4, 5, 6, 7, 0]], inner[[0, 7, 6, 5, 4]] + [0, -3.0, 0.5]])
        for teeth, color in ((up_teeth, [0.93, 0.91, 0.85]), (lo_teeth, [0.80, 0.78, 0.72])):
            self._paint(img, (cavity * self._mask([self._px(teeth)], roi=roi)[0], roi), color)
        self._line(img, inner[[0, 7, 6, 5, 4]], 0.6, ident.lips * 0.4, 0.5 + 0.4 * a["AU23"])
        # AU appearance cues and permanent lines: (polyline in the face frame, darkness)
        p = ident.permanent
        lines = []
        for k, dy in enumerate((10, 17, 24)):
            y = lm[17:27, 1].mean() - dy
            lines.append((_arc(-22, 22, y, 2.0), c * a["AU01"] * 0.8 + p[0] * (k < 2)))
            for sx in (-1, 1):
                lines.append((_arc(sx * 26, sx * 52, y + 2, 3.0, 5), c * a["AU02"] * 0.75 + p[0] * 0.5 * (k < 2)))
        g = (lm[21] + lm[22]) / 2
        for sx in (-3.5, 3.5):
            lines.append((np.array([[g[0] + sx, g[1] - 6], [g[0] + sx * 0.8, g[1] + 4], [g[0] + sx * 0.6, g[1] + 9]]),
                          c * a["AU04"]))
        for corner, sx in ((36, -1), (45, 1)):
            o = lm[corner, :2]
            for ang in (-30, 0, 30):
                d = np.array([np.cos(np.radians(ang)), np.sin(np.radians(ang))]) * [sx, 1]
                lines.append((np.stack([o + d * 4, o + d * 11]), c * a["AU06"] + p[2]))
        for eye in (slice(36, 42), slice(42, 48)):
            e = lm[eye]
            lines.append((_arc(e[0, 0], e[3, 0], e[[4, 5], 1].mean() + 6 - 2 * a["AU06"], 2.5, 5), c * a["AU06"]))
            lines.append((_arc(e[0, 0] + 3, e[3, 0] - 3, e[[4, 5], 1].mean() + 2.5, 1.0, 5), c * a["AU07"] * 0.7))
        for k in range(3):
            y = lm[27, 1] + 2 + 3 * k
            lines.append((_arc(-5, 5, y, -1.0, 5), c * a["AU09"]))
            for sx in (-1, 1):
                lines.append((np.array([[sx * 5, y + 4], [sx * 9, y + 8]]), c * a["AU09"] * 0.8))
        for wing, corner, sx in ((31, 48, -1), (35, 54, 1)):
            n0, m0 = lm[wing, :2], lm[corner, :2]
            fold = np.array([n0 + [sx * 4, -3], n0 + [sx * 10, 6], m0 + [sx * 6, -2], m0 + [sx * 5, 6]])
            lines.append((fold, c * max(a["AU10"], a["AU12"]) + p[1]))
            lines.append((np.array([m0 + [sx * 3, -3], m0 + [sx * 4, 0], m0 + [sx * 3, 3]]), c * a["AU14"]))
            lines.append((np.array([m0 + [sx * 2, 3], m0 + [sx * 4, 9], m0 + [sx * 5, 15]]), c * a["AU15"] * 0.8))
            lines.append((np.array([m0 + [sx * 3, 0], m0 + [sx * 9, 1]]), c * a["AU20"] * 0.8))
        chin_y = lm[57, 1] + 6
        lines.append((_arc(-11, 11, chin_y, -2.0), c * a["AU17"]))
        lines.append((_arc(-7, 7, chin_y + 7, 1.5, 5), c * a["AU17"] * 0.6))
        lines = [(np.asarray(xy, float), min(float(k), 0.9)) for xy, k in lines if k > 0.01]
        if lines:   # one surface lookup for all lines
            flat = _on_surface(np.concatenate([xy for xy, _ in lines]), 0.3)
            cut = np.cumsum([len(xy) for xy, _ in lines])[:-1]
            for pts, (_, strength) in zip(np.split(flat, cut), lines):
                self._line(img, pts, CREASE_MM, dark, strength)
        if ident.glasses:
            for eye in (slice(36, 42), slice(42, 48)):
                centre = lm[eye][[0, 3]].mean(axis=0) + [0, 0, -14]
                self._line(img, _ellipse(centre, 18, 12, 16)[list(range(16)) + [0]], 1.2, [0.08, 0.08, 0.1], 0.9)
            self._line(img, np.array([lm[39] + [4, -2, -14], lm[27] + [0, 0, -12], lm[42] + [-4, -2, -14]]),
                       1.2, [0.08, 0.08, 0.1], 0.9)

    def _background(self, scene: Scene) -> np.ndarray:
        w = self._w
        rng = np.random.default_rng(scene.blob_seed)
        ramp = np.linspace(0, 1, w, dtype=np.float32)[:, None, None]
        img = scene.background[0] + ramp * (scene.background[1] - scene.background[0])
        img = np.broadcast_to(img, (w, w, 3)).astype(np.float32).copy()
        blobs = cv2.resize(rng.uniform(-0.3, 0.3, (12, 12, 3)).astype(np.float32), (w, w),
                           interpolation=cv2.INTER_NEAREST)
        blobs = cv2.GaussianBlur(blobs, (0, 0), w / 14)
        return np.clip(img + blobs, 0, 1)

    def render(self, ident: Identity, scene: Scene, aus: np.ndarray, pose: np.ndarray, gaze: np.ndarray, *,
               noise_rng: np.random.Generator, times: np.ndarray | None = None,
               jpeg: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Frames (N, size, size, 3) uint8 RGB and landmarks (N, 68, 2) output pixels.

        aus (N, 17) intensities 0..5 in AU_INTENSITY order; pose (N, 6) from faces.identity.pose_track;
        gaze (N, 2); times (N,) position in the video in [0, 1] (when the hand passes)."""
        aus, pose, gaze = np.asarray(aus, float), np.asarray(pose, float), np.asarray(gaze, float)
        n = len(aus)
        if aus.shape != (n, len(AU)) or pose.shape != (n, 6) or gaze.shape != (n, 2):
            raise ValueError(f"render: aus {aus.shape}, pose {pose.shape}, gaze {gaze.shape}: expected "
                             f"({n}, {len(AU)}), ({n}, 6), ({n}, 2)")
        self._w = self.size * self.ss
        times = np.linspace(0, 1, n) if times is None else times
        bg = self._background(scene)
        frames = np.empty((n, self.size, self.size, 3), np.uint8)
        marks = np.empty((n, 68, 2))
        sigma = scene.blur_px * self.ss
        for i in range(n):
            img, lm_px = self._frame(ident, scene, aus[i], pose[i], gaze[i], float(times[i]), bg)
            img *= scene.cast.astype(np.float32)
            if sigma > 0.3:
                img = cv2.GaussianBlur(img, (0, 0), sigma)
            img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
            img += noise_rng.normal(0, scene.noise, img.shape).astype(np.float32)
            out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
            if jpeg:
                ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, scene.jpeg_quality])
                out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]   # OpenCV codes BGR
            frames[i] = out
            marks[i] = lm_px / self.ss
        return frames, marks
