"""The latent expression states of the synthetic faces, and how subject traits act on them.

Each state is an AU prototype at apex (intensities before per-subject gains and per-episode
amplitude), a family, a median dwell time and a median onset ramp. Prototypes follow FACS
descriptions of common displays (Duchenne smile = AU06+AU12, surprise = AU01+AU02+AU05+AU26, ...)
and the co-activations OpenFace shows in conversation (speech = AU25/AU26 with jaw oscillation).
Blinks (AU45) are not states: they are a separate fast point process.
"""
from __future__ import annotations

import numpy as np

from data.openface.format import AU_INTENSITY

# Hidden per-subject traits, standard normal (correlated, see TRAIT_CORR). They shape static levels
# (which states, how intense, tonic activity) and dynamics (dwell times, ramp speed, blink rate).
TRAITS = ("expressivity", "positivity", "tension", "tempo", "talkativeness", "blinkiness")
TRAIT_CORR = np.array([
    # expr  pos   tens  tempo talk  blink
    [1.0,  0.3, -0.1,  0.3,  0.3,  0.0],
    [0.3,  1.0, -0.3,  0.1,  0.2, -0.1],
    [-0.1, -0.3, 1.0,  0.0, -0.1,  0.3],
    [0.3,  0.1,  0.0,  1.0,  0.2,  0.1],
    [0.3,  0.2, -0.1,  0.2,  1.0,  0.0],
    [0.0, -0.1,  0.3,  0.1,  0.0,  1.0],
])

# name, family, apex prototype, median dwell (s), median onset ramp (s)
STATES: list[tuple[str, str, dict[str, float], float, float]] = [
    ("neutral",            "neutral",  {},                                                   2.2, 0.35),
    ("neutral_lips_apart", "neutral",  {"AU25": 0.7},                                        1.6, 0.30),
    ("slight_smile",       "smile",    {"AU12": 1.1, "AU06": 0.3},                           1.8, 0.40),
    ("smile",              "smile",    {"AU06": 1.6, "AU12": 2.4, "AU25": 0.6, "AU07": 0.3}, 1.6, 0.45),
    ("laugh",              "smile",    {"AU06": 2.8, "AU12": 3.4, "AU25": 2.4, "AU26": 1.6,
                                        "AU07": 1.0, "AU10": 0.6},                          1.4, 0.30),
    ("polite_smile",       "smile",    {"AU12": 1.5, "AU14": 0.7},                           1.2, 0.30),
    ("smile_brows",        "smile",    {"AU01": 1.0, "AU02": 0.9, "AU06": 1.4, "AU12": 2.3}, 1.2, 0.35),
    ("brow_raise",         "brow",     {"AU01": 2.0, "AU02": 1.8},                           0.8, 0.15),
    ("inner_brow_raise",   "brow",     {"AU01": 1.6, "AU02": 0.4},                           0.9, 0.20),
    ("surprise",           "surprise", {"AU01": 2.4, "AU02": 2.3, "AU05": 1.8, "AU25": 1.4,
                                        "AU26": 1.9},                                        0.9, 0.15),
    ("eyes_wide",          "surprise", {"AU05": 2.0, "AU01": 0.7},                           0.7, 0.12),
    ("frown",              "negative", {"AU04": 2.0, "AU07": 0.7},                           1.5, 0.35),
    ("concentration",      "negative", {"AU04": 1.2, "AU07": 1.4, "AU23": 0.5},              1.8, 0.45),
    ("anger",              "negative", {"AU04": 2.5, "AU05": 0.9, "AU07": 1.9, "AU23": 1.4}, 1.2, 0.25),
    ("disgust",            "negative", {"AU09": 2.0, "AU10": 1.5, "AU04": 0.7, "AU17": 0.5}, 1.0, 0.25),
    ("sad",                "negative", {"AU01": 1.3, "AU04": 0.8, "AU15": 1.5, "AU17": 1.0}, 1.8, 0.50),
    ("worried",            "negative", {"AU01": 1.7, "AU04": 1.1, "AU20": 0.6},              1.4, 0.40),
    ("fear",               "negative", {"AU01": 2.0, "AU02": 1.0, "AU04": 1.2, "AU05": 1.5,
                                        "AU20": 1.9, "AU25": 1.0},                           0.8, 0.20),
    ("lip_press",          "tension",  {"AU23": 1.6, "AU17": 1.1},                           1.2, 0.25),
    ("chin_raise",         "tension",  {"AU17": 2.0, "AU15": 0.5},                           1.1, 0.30),
    ("pensive",            "tension",  {"AU14": 0.9, "AU17": 0.8, "AU04": 0.4},              2.0, 0.50),
    ("squint",             "tension",  {"AU07": 2.0, "AU06": 0.5},                           1.0, 0.25),
    ("dimpler",            "tension",  {"AU14": 1.6, "AU12": 0.5},                           1.0, 0.30),
    ("talk_open",          "speech",   {"AU25": 2.0, "AU26": 1.6},                           0.6, 0.10),
    ("talk_mid",           "speech",   {"AU25": 1.5, "AU26": 0.8, "AU10": 0.3},              0.5, 0.10),
    ("talk_narrow",        "speech",   {"AU25": 0.9, "AU26": 0.3, "AU20": 0.3},              0.5, 0.08),
    ("talk_brows",         "speech",   {"AU25": 1.5, "AU26": 1.0, "AU01": 0.9, "AU02": 0.7}, 0.6, 0.12),
    ("talk_smile",         "speech",   {"AU25": 1.6, "AU26": 1.0, "AU12": 1.3, "AU06": 0.6}, 0.7, 0.15),
    ("talk_frown",         "speech",   {"AU25": 1.4, "AU26": 0.9, "AU04": 1.0},              0.6, 0.15),
    ("lip_stretch",        "other",    {"AU20": 1.6, "AU25": 0.5},                           0.7, 0.20),
    ("upper_lip_raise",    "other",    {"AU10": 1.6, "AU25": 0.4},                           0.8, 0.20),
    ("yawn",               "other",    {"AU25": 3.0, "AU26": 4.0, "AU07": 0.8}, 2.5, 0.80),
]
STATE_NAMES = [s[0] for s in STATES]
FAMILIES = ("neutral", "smile", "brow", "surprise", "negative", "tension", "speech", "other")
STATE_FAMILY = np.array([FAMILIES.index(s[1]) for s in STATES])
SPEECH = STATE_FAMILY == FAMILIES.index("speech")
NEUTRAL = STATE_FAMILY == FAMILIES.index("neutral")
DWELL_S = np.array([s[3] for s in STATES])
RAMP_S = np.array([s[4] for s in STATES])


def prototypes() -> np.ndarray:  # (n_states, 17) float64
    protos = np.zeros((len(STATES), len(AU_INTENSITY)))
    for i, (_, _, aus, _, _) in enumerate(STATES):
        for au, v in aus.items():
            if au in AU_INTENSITY:
                protos[i, AU_INTENSITY.index(au)] = v
    return protos


# Base log-preference of each family, and how traits move it (rows: families, columns: TRAITS).
FAMILY_BASE = np.array([2.3, 0.4, 0.0, -1.0, 0.0, 0.0, 1.4, -1.2])
FAMILY_LOADINGS = np.array([
    # expr  pos   tens  tempo talk  blink
    [-0.6,  0.0,  0.0,  0.0, -0.4,  0.0],  # neutral
    [0.3,   0.9,  -0.3, 0.0,  0.0,  0.0],  # smile
    [0.4,   0.0,  0.0,  0.2,  0.2,  0.0],  # brow
    [0.5,   0.0,  0.0,  0.2,  0.0,  0.0],  # surprise
    [0.0,  -0.5,  0.8,  0.0,  0.0,  0.0],  # negative
    [-0.2, -0.2,  0.6,  0.0,  0.0,  0.0],  # tension
    [0.1,   0.0,  0.0,  0.0,  1.0,  0.0],  # speech
    [0.0,   0.0,  0.0,  0.0,  0.0,  0.0],  # other
])


def affinity() -> np.ndarray:
    """Structural transition weights (before subject preferences): no self-transitions, expressions
    mostly relax back to a neutral state, and states of one family chain (talking, smile -> laugh)."""
    n = len(STATES)
    fam = STATE_FAMILY
    aff = np.ones((n, n))
    aff[fam[:, None] == fam[None, :]] = 2.0
    aff[np.ix_(SPEECH, SPEECH)] = 4.0
    aff[np.ix_(~NEUTRAL, NEUTRAL)] = 3.0
    np.fill_diagonal(aff, 0.0)
    return aff
