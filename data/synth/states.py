"""The latent expression states of the synthetic faces, and how subject traits act on them.

A state table is a set of AU prototypes (n_states, 17) with the share of frames each should hold.
It comes from a calibration (data/synth/calibrate.py: k-means of a real corpus or of a vocabulary's
count-weighted centres, written to configs/synth_calibration.yaml) or from any vocabulary directory
(`vocab=DIR`: one state per centre, shares from the counts). Each state gets a family by a FACS rule
on its prototype's excess over the resting level (`family_of`), and the family decides what the
traits do to it (which subjects show it more often) and its dynamics (median dwell and onset ramp).
Blinks (AU45) are also a separate fast point process on top of the states.
"""
from __future__ import annotations

from dataclasses import dataclass

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

FAMILIES = ("neutral", "smile", "brow", "negative", "tension", "speech", "other")
# median dwell (s) and median onset ramp (s) of a family's episodes; speech is fast (syllables, jaw)
FAMILY_DWELL_S = np.array([1.6, 1.4, 0.8, 1.2, 1.1, 0.6, 0.8])
FAMILY_RAMP_S = np.array([0.3, 0.35, 0.15, 0.3, 0.25, 0.1, 0.2])
# how traits move a family's log-preference (rows: FAMILIES, columns: TRAITS)
FAMILY_LOADINGS = np.array([
    # expr  pos   tens  tempo talk  blink
    [-0.6,  0.0,  0.0,  0.0, -0.4,  0.0],  # neutral
    [0.3,   0.9,  -0.3, 0.0,  0.0,  0.0],  # smile
    [0.5,   0.0,  0.0,  0.2,  0.2,  0.0],  # brow (and surprise)
    [0.0,  -0.5,  0.8,  0.0,  0.0,  0.0],  # negative
    [-0.2, -0.2,  0.6,  0.0,  0.0,  0.0],  # tension
    [0.1,   0.0,  0.0,  0.0,  1.0,  0.0],  # speech
    [0.0,   0.0,  0.0,  0.0,  0.0,  0.0],  # other
])
# which family an AU's activity points to (family_of); AU45 (eyes closed) is "other"
AU_FAMILY = {"AU01": "brow", "AU02": "brow", "AU05": "brow", "AU04": "negative", "AU09": "negative",
             "AU15": "negative", "AU20": "negative", "AU06": "smile", "AU12": "smile", "AU10": "negative",
             "AU07": "tension", "AU14": "tension", "AU17": "tension", "AU23": "tension",
             "AU25": "speech", "AU26": "speech", "AU45": "other"}
NEUTRAL_EXCESS = 0.5   # a prototype whose AUs all lie within this of the resting level is neutral


def family_of(prototype: np.ndarray, rest: np.ndarray) -> int:
    """FACS rule on the excess over rest: a smile needs AU12 (with AU06 it wins over any other AU),
    an open mouth alone is speech, otherwise the family of the most raised AU."""
    excess = np.asarray(prototype) - np.asarray(rest)
    if excess.max() < NEUTRAL_EXCESS:
        return FAMILIES.index("neutral")
    au = {a: excess[i] for i, a in enumerate(AU_INTENSITY)}
    if au["AU12"] >= NEUTRAL_EXCESS and au["AU12"] + au["AU06"] >= max(excess):
        return FAMILIES.index("smile")
    return FAMILIES.index(AU_FAMILY[AU_INTENSITY[int(np.argmax(excess))]])


def family_affinity() -> np.ndarray:
    """(F, F) structural weights of moving from one family to another: families chain (talking,
    smile -> laugh) and expressions relax back to neutral; applied before subject preferences."""
    n = len(FAMILIES)
    aff = np.ones((n, n))
    np.fill_diagonal(aff, 2.0)
    speech, neutral = FAMILIES.index("speech"), FAMILIES.index("neutral")
    aff[speech, speech] = 3.0
    aff[:, neutral] = 2.0
    return aff


@dataclass
class StateTable:
    prototypes: np.ndarray   # (n_states, 17) float64, AU levels at apex (resting level included)
    log_pref: np.ndarray     # (n_states,) base log-preference of entering the state
    family: np.ndarray       # (n_states,) int64 index into FAMILIES
    rest: np.ndarray         # (17,) resting level of each AU
    names: list[str]

    @property
    def n(self) -> int:
        return len(self.prototypes)

    @property
    def dwell_s(self) -> np.ndarray:   # (n_states,)
        return FAMILY_DWELL_S[self.family]

    @property
    def ramp_s(self) -> np.ndarray:    # (n_states,)
        return FAMILY_RAMP_S[self.family]


def frame_shares(log_pref: np.ndarray, family: np.ndarray) -> np.ndarray:
    """(n,) share of frames each state holds in the chain of a subject with all traits 0: the next
    state j of i is drawn with weight affinity[family i, family j] x pref j, never i itself
    (behaviour._next_state), so visits are the stationary law of that matrix, times the dwell."""
    pref = np.exp(log_pref - log_pref.max())
    aff = family_affinity()[family[:, None], family[None, :]] * pref[None, :]   # (n, n)
    np.fill_diagonal(aff, 0.0)
    trans = aff / np.maximum(aff.sum(axis=1, keepdims=True), 1e-300)
    a = trans.T - np.eye(len(pref))            # visits @ trans = visits, and the visits sum to 1
    a[-1] = 1.0
    b = np.zeros(len(pref))
    b[-1] = 1.0
    visits = np.clip(np.linalg.solve(a, b), 0.0, None)
    share = visits * FAMILY_DWELL_S[family]
    return share / share.sum()


def entry_preferences(shares: np.ndarray, family: np.ndarray, iters: int = 50) -> np.ndarray:
    """Log-preferences under which the traits-0 chain holds each state for `shares` of the frames."""
    target = shares / shares.sum()
    log_pref = np.log(target) - np.log(FAMILY_DWELL_S[family])
    for _ in range(iters):
        got = frame_shares(log_pref, family)
        if np.abs(got / target - 1).max() < 1e-3:
            break
        log_pref = log_pref + np.log(target / got)
    return log_pref


def state_table(prototypes, shares, rest, log_pref=None) -> StateTable:
    """States from prototypes (n, 17) and target frame shares (n,). Without a fitted `log_pref`, the
    entry preferences are solved so that a subject with all traits 0 shows each state its share."""
    p = np.asarray(prototypes, dtype=np.float64)
    rest = np.asarray(rest, dtype=np.float64)
    shares = np.asarray(shares, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(AU_INTENSITY) or len(shares) != len(p) or len(p) == 0:
        raise ValueError(f"a state table needs prototypes (n, {len(AU_INTENSITY)}) and n shares, "
                         f"got {p.shape} and {shares.shape}")
    if not (np.isfinite(p).all() and (shares > 0).all()):
        raise ValueError("state prototypes must be finite and every state's share positive")
    family = np.array([family_of(row, rest) for row in p], dtype=np.int64)
    if log_pref is None:
        log_pref = entry_preferences(shares, family)
    counts = {}
    names = []
    for f in family.tolist():
        counts[f] = counts.get(f, 0) + 1
        names.append(f"{FAMILIES[f]}_{counts[f] - 1:02d}")
    return StateTable(prototypes=p, log_pref=np.asarray(log_pref, dtype=np.float64), family=family,
                      rest=rest, names=names)
