"""Faces from rendered video to tokens: render -> write video -> decode -> detect and crop -> AU
detector -> OpenFace CSV -> ingest -> k-means tokens; and the Haar cropper's report."""
from __future__ import annotations

import numpy as np
import torch

import cluster
import models  # noqa: F401
from data.openface.corpus import FrameCorpus
from data.openface.ingest import ingest
from faces.crops import CropConfig, FaceCropper
from faces.experiment import _tensor_images
from faces.fit import predict
from faces.openface_out import write_au_csv
from faces.render import FaceRenderer
from faces.synthetic import Variation, render_video
from faces.video import read_all, write_video
from models.registry import create_model
from vocab.tokens import END, START, Tokens

FRONTAL = Variation(yaw_deg=4.0, pitch_deg=3.0, roll_deg=2.0, hand_p=0.0, glasses_p=0.0)


def test_cropper_finds_frontal_rendered_faces_and_reports_the_rest():
    v = render_video(seed=0, subject=3, video=0, n_frames=8, renderer=FaceRenderer(size=96), variation=FRONTAL)
    frames = np.concatenate([v.frames, np.zeros((2, 96, 96, 3), np.uint8)])     # two frames without a face
    crops, kept, report = FaceCropper(CropConfig(size=64)).crop_all(frames)
    assert kept[:8].sum() >= 7 and not kept[8:].any()
    assert crops.shape == (int(kept.sum()), 64, 64) and crops.dtype == np.uint8
    assert report == {"frames": 10, "kept": int(kept.sum()), "dropped": {"no_face": 10 - int(kept.sum())}}


def test_detector_csvs_round_trip_through_ingestion_to_tokens(tmp_path):
    torch.manual_seed(0)
    net = create_model("au_cnn", n_outputs=17, width=0.125, fc=32).eval()
    cropper = FaceCropper(CropConfig(size=64))
    fps, written = 20.0, {}
    for s in range(2):
        v = render_video(seed=1, subject=s, video=0, n_frames=24, renderer=FaceRenderer(size=96), fps=fps,
                         variation=FRONTAL)
        path = write_video(tmp_path / "videos" / f"v{s}.avi", v.frames, fps=fps)
        crops, kept, _ = cropper.crop_all(read_all(path))
        probs = np.zeros((len(kept), 17))
        probs[kept] = predict(net, _tensor_images(crops)).numpy()
        write_au_csv(tmp_path / "csv" / f"s{s}.csv", 5 * probs, (probs >= 0.5).astype(float), kept, fps=fps)
        written[f"s{s}"] = (5 * probs, kept)
    corpus = ingest(tmp_path / "csv", tmp_path / "corpus", {"fps": None, "progress": False, "workers": 1})
    loaded = FrameCorpus.load(tmp_path / "corpus", "cpu")
    assert loaded.n_frames == corpus.n_frames == sum(int(k.sum()) for _, k in written.values())
    frames = loaded.frames.numpy()
    expect = np.concatenate([np.round(a[k], 2) for a, k in written.values()])
    np.testing.assert_allclose(frames, expect, atol=1e-5)           # every kept frame's AUs, unchanged
    cluster.main([f"corpus={tmp_path / 'corpus'}", f"out={tmp_path / 'vocab'}", "k=3", "sweep=[]", "min_count=1",
                  "device=cpu"])
    tokens = Tokens.load(tmp_path / "vocab")
    assert len(tokens.video_ids) == 2
    seq = tokens.tokens[tokens.offsets[0]:tokens.offsets[1]]
    assert seq[0] == START and seq[-1] == END and len(tokens.tokens) == loaded.n_frames + 2 * 2
