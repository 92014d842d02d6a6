"""The AU-driven face renderer: each AU moves the landmarks FACS says it moves and no others,
rendering is deterministic, and every AU changes the picture."""
from __future__ import annotations

import numpy as np
import pytest

from data.openface.format import AU_INTENSITY
from faces.identity import draw_scene
from faces.landmarks import BASIS, face_points, identity_offsets
from faces.render import FaceRenderer
from faces.synthetic import Variation, au_track, person, render_faces, render_video

IN_BROW, OUT_BROW, BROWS = [19, 20, 21, 22, 23, 24], [17, 18, 25, 26], list(range(17, 27))
UP_LID, LO_LID, NOSTRILS, CHIN = [37, 38, 43, 44], [40, 41, 46, 47], [31, 32, 33, 34, 35], [7, 8, 9]
CORNERS, LEFT_CORNERS = [48, 54, 60, 64], [48, 60]
UP_LIP, LO_LIP = [49, 50, 51, 52, 53, 61, 62, 63], [55, 56, 57, 58, 59, 65, 66, 67]
# FACS, written independently of the basis: landmarks each AU moves, and (points, axis, sign) it moves them along
EXPECTED = {
    "AU01": (IN_BROW, [(IN_BROW, 1, -1)]), "AU02": (OUT_BROW, [(OUT_BROW, 1, -1)]),
    "AU04": (BROWS, [(BROWS, 1, +1), ([19, 20, 21], 0, +1), ([22, 23, 24], 0, -1)]),
    "AU05": (UP_LID, [(UP_LID, 1, -1)]), "AU06": (LO_LID, [(LO_LID, 1, -1)]), "AU07": (LO_LID, [(LO_LID, 1, -1)]),
    "AU09": (NOSTRILS + [21, 22, 50, 51, 52], [(NOSTRILS, 1, -1), ([21, 22], 1, +1)]),
    "AU10": (UP_LIP, [(UP_LIP, 1, -1)]),
    "AU12": (CORNERS, [(CORNERS, 1, -1), (LEFT_CORNERS, 0, -1), ([54, 64], 0, +1)]),
    "AU14": (CORNERS, [(CORNERS, 2, +1), (LEFT_CORNERS, 0, +1), ([54, 64], 0, -1)]),
    "AU15": (CORNERS, [(CORNERS, 1, +1)]), "AU17": (LO_LIP + CHIN, [(LO_LIP + CHIN, 1, -1)]),
    "AU20": (CORNERS, [(LEFT_CORNERS, 0, -1), ([54, 64], 0, +1)]),
    "AU23": ([49, 50, 51, 52, 53, 55, 56, 57, 58, 59], [([49, 50, 51, 52, 53], 1, +1), ([55, 56, 57, 58, 59], 1, -1)]),
    "AU25": (UP_LIP + LO_LIP, [(LO_LIP, 1, +1), (UP_LIP, 1, -1)]),
    "AU26": (LO_LIP + CHIN, [(LO_LIP + CHIN, 1, +1)]), "AU45": (UP_LID, [(UP_LID, 1, +1)]),
}


def test_every_au_has_an_expectation():
    assert set(EXPECTED) == set(AU_INTENSITY)


@pytest.mark.parametrize("au", AU_INTENSITY)
def test_au_moves_its_landmarks_along_the_basis_and_no_others(au):
    k = AU_INTENSITY.index(au)
    offsets = identity_offsets(np.random.default_rng(3))
    aus = np.zeros((2, 17))
    aus[1, k] = 2.5
    rest, active = face_points(offsets, aus)
    disp = active - rest                                                    # (68, 3) mm
    np.testing.assert_allclose(disp, 2.5 * BASIS[k], atol=1e-12)           # linear in the basis
    moved = set(np.flatnonzero(np.linalg.norm(disp, axis=1) > 1e-9).tolist())
    points, directions = EXPECTED[au]
    assert moved == set(points)
    for idx, axis, sign in directions:
        assert np.all(np.sign(disp[idx, axis]) == sign), (au, idx, axis)


@pytest.mark.parametrize("au", ["AU01", "AU12", "AU26", "AU45"])
def test_rendered_landmarks_move_only_where_the_au_acts(au):
    k = AU_INTENSITY.index(au)
    who = person(0, 2, fps=30.0)
    aus = np.zeros((2, 17))
    aus[1, k] = 3.0
    pose = np.tile([0.1, -0.3, 0.05, 0.0, 0.0, 1.0], (2, 1))
    _, marks = FaceRenderer(size=64).render(who.identity, draw_scene(np.random.default_rng(0)), aus, pose,
                                            np.zeros((2, 2)), noise_rng=np.random.default_rng(0))
    moved = set(np.flatnonzero(np.linalg.norm(marks[1] - marks[0], axis=1) > 1e-9).tolist())
    assert moved == set(EXPECTED[au][0])


def test_every_au_changes_the_picture():
    who = person(0, 1, fps=30.0)
    n = 18
    aus = np.zeros((n, 17))
    aus[np.arange(1, n), np.arange(17)] = 4.0
    scene = draw_scene(np.random.default_rng(5), hand_p=0.0)
    scene.noise = 0.0
    imgs, _ = FaceRenderer(size=96).render(who.identity, scene, aus, np.tile([0, 0, 0, 0, 0, 1.0], (n, 1)),
                                           np.zeros((n, 2)), noise_rng=np.random.default_rng(0))
    diff = np.abs(imgs[1:].astype(int) - imgs[0].astype(int)).sum(axis=(1, 2, 3))
    assert np.all(diff > 200), dict(zip(AU_INTENSITY, diff.tolist()))


def test_rendering_is_deterministic_and_slices_match_the_whole_video():
    kw = dict(seed=7, subject=4, video=1, n_frames=12, renderer=FaceRenderer(size=64))
    a, b = render_video(**kw), render_video(**kw)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.aus, b.aus)
    part = render_video(**kw, frames=slice(5, 9))
    np.testing.assert_array_equal(part.frames, a.frames[5:9])
    other = render_video(**{**kw, "seed": 8})
    assert not np.array_equal(other.frames, a.frames)


def test_render_faces_batch_api():
    batch = render_faces(n_subjects=2, per_subject=3, size=48, seed=1)
    assert batch.images.shape == (6, 48, 48, 3) and batch.images.dtype == np.uint8
    assert batch.aus.shape == (6, 17) and batch.landmarks.shape == (6, 68, 2)
    assert batch.subject.tolist() == [0, 0, 0, 1, 1, 1]
    assert (batch.aus >= 0).all() and (batch.aus <= 5).all()
    again = render_faces(n_subjects=1, per_subject=3, size=48, seed=1, first_subject=1)
    np.testing.assert_array_equal(again.images, batch.images[3:])


def test_bad_shapes_are_refused():
    who = person(0, 0, fps=30.0)
    with pytest.raises(ValueError, match="aus"):
        FaceRenderer(size=64).render(who.identity, draw_scene(np.random.default_rng(0)), np.zeros((2, 16)),
                                     np.zeros((2, 6)), np.zeros((2, 2)), noise_rng=np.random.default_rng(0))


@pytest.mark.parametrize("elicitation", [0.0, 2.0])
def test_rendered_truth_is_what_synth_writes_for_the_same_person(tmp_path, elicitation):
    """The documented agreement: render_video's AUs are the CSV that `synth.py kind=pretrain` writes for
    that subject and video, tracker dropouts off and the same behaviour.elicitation."""
    from data.openface.reader import read_raw
    from data.synth.generate import generate
    root = generate(tmp_path / "synth", {"kind": "pretrain", "seed": 3, "pretrain.n_subjects": 2,
                                         "pretrain.videos_per_subject": 1, "pretrain.video_seconds_min": 1,
                                         "pretrain.video_seconds_max": 2, "behaviour.fps": 10.0, "workers": 1,
                                         "behaviour.low_conf_bursts_per_min": 0, "behaviour.failed_bursts_per_min": 0,
                                         "behaviour.elicitation": elicitation})
    files = sorted((root / "openface").rglob("*.csv"))
    assert files
    for path in files:
        subject = sorted(p.name for p in (root / "openface").iterdir()).index(path.parent.name)
        video = int(path.stem.lstrip("v"))
        raw = read_raw(path)
        v = render_video(seed=3, subject=subject, video=video, n_frames=len(raw.aus), renderer=FaceRenderer(size=64),
                         fps=10.0, variation=Variation(elicitation=elicitation), frames=slice(0, 1))
        full = person(3, subject, fps=10.0, variation=Variation(elicitation=elicitation))
        np.testing.assert_allclose(au_track(full, len(raw.aus), video), raw.aus, atol=1e-9)
        np.testing.assert_allclose(v.aus, raw.aus[:1], atol=1e-9)


def test_elicitation_makes_people_express_more_and_leaves_their_traits():
    calm, elicited = (person(0, s, fps=20.0, variation=Variation(elicitation=e)) for s, e in ((5, 0.0), (5, 3.0)))
    np.testing.assert_array_equal(calm.behaviour.traits, elicited.behaviour.traits)   # the labels derive from these
    np.testing.assert_allclose(elicited.behaviour.gains, calm.behaviour.gains * np.exp(0.75))
    occ = [(au_track(p, 2000, 0) >= 2).mean() for p in (calm, elicited)]
    assert occ[1] > 1.5 * occ[0]
