"""The synthetic face: subject parameters from traits, a semi-Markov state sequence, AU signals.

A video is a sequence of expression episodes. The state sequence is semi-Markov: the next state
is drawn by family (structure x subject preferences) and then within the family by the subject's
preference for each state, never the current one; the dwell time is log-normal around the family's
median, scaled by the subject's tempo. At each episode start the AU vector ramps (smoothstep) from
the previous target to the new one: onset, apex, and the offset is the onset of the next episode.
An episode's target is the subject's own resting level plus the state's excess over the common
resting level, scaled by the subject's gains and the episode's amplitude. On top: slow apex wobble,
jaw oscillation while talking, blinks as a fast point process, per-AU jitter (calibrated to the
frame-to-frame change of real OpenFace output), the calibrated per-AU offset, OpenFace's floor at 0,
and bursts of low-confidence and failed tracking. Everything is in frames, so any fps works.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from functools import lru_cache

from data.openface.format import AU_INTENSITY
from data.synth.calibration import DEFAULT_CALIBRATION, Calibration, read_calibration
from data.synth.states import (FAMILIES, FAMILY_LOADINGS, TRAIT_CORR, TRAITS, StateTable,
                               family_affinity, state_table)

AU = {name: i for i, name in enumerate(AU_INTENSITY)}
FAMILY_AFFINITY = family_affinity()   # (F, F)
SPEECH_FAMILY = FAMILIES.index("speech")
NEUTRAL_FAMILY = FAMILIES.index("neutral")
_TRAIT_CHOL = np.linalg.cholesky(TRAIT_CORR)


@dataclass
class Dynamics:
    """The calibrated per-AU figures the behaviour model takes from a calibration (see generate.py)."""
    offset: np.ndarray        # (17,) added to every frame before the floor at 0
    jitter: np.ndarray        # (17,) sd of the frame jitter
    jitter_frames: float      # its smoothing width, frames
    dwell_scale: float        # multiplies every family's median dwell


def behaviour_from(cal: Calibration, *, fps: float, states: tuple[np.ndarray, np.ndarray] | None = None,
                   where: str = "calibration") -> tuple[StateTable, Dynamics]:
    """The state table and dynamics of a calibration; `states` = (prototypes, shares) replaces its
    states (a vocabulary's centres and counts: entry preferences then solved from the shares)."""
    D = len(AU_INTENSITY)
    rest = cal.vector("rest", D, where)
    if states is not None:
        table = state_table(states[0], states[1], rest)
    else:
        prototypes = cal.prototypes(where)
        log_pref = cal.vector("log_pref", len(prototypes), where) if len(cal.log_pref) else None
        table = state_table(prototypes, cal.vector("shares", len(prototypes), where), rest, log_pref)
    dyn = Dynamics(offset=cal.vector("offset", D, where), jitter=cal.vector("jitter", D, where),
                   jitter_frames=cal.jitter_seconds * fps, dwell_scale=cal.dwell_scale)
    return table, dyn


@lru_cache(maxsize=4)
def default_behaviour(fps: float) -> tuple[StateTable, Dynamics]:
    """The default calibration's (configs/synth_calibration.yaml), for callers that take the defaults."""
    return behaviour_from(read_calibration(DEFAULT_CALIBRATION), fps=fps, where=DEFAULT_CALIBRATION)


def draw_traits(rng: np.random.Generator) -> np.ndarray:  # (len(TRAITS),) correlated N(0, 1)
    return _TRAIT_CHOL @ rng.standard_normal(len(TRAITS))


@dataclass
class Subject:
    traits: np.ndarray        # (n_traits,)
    table: StateTable
    dynamics: Dynamics
    pref: np.ndarray          # (n_states,) preference for entering each state (sums to 1)
    family_cum: np.ndarray    # (F, F) cumulative probabilities of the next family given the current
    members: list             # per family: state indices (int64 arrays)
    member_cum: list          # per family: cumulative within-family preferences
    dwell: np.ndarray         # (n_states,) median dwell, frames
    ramp: np.ndarray          # (n_states,) median onset ramp, frames
    gains: np.ndarray         # (17,) per-AU gain on excess over rest
    rest: np.ndarray          # (17,) this subject's resting level
    blink_rate: float         # blinks per second
    blink_amp: float
    noise: float              # multiplier of the calibrated jitter
    dropout: float            # multiplier of the low-confidence / failure burst rates

    def summary(self, fps: float) -> dict[str, float]:
        """Derived quantities saved next to the traits (for tests and inspection)."""
        fam = self.table.family
        return {"mean_dwell_s": float(np.dot(self.pref, self.dwell) / fps),
                "mean_ramp_s": float(np.dot(self.pref, self.ramp) / fps),
                "neutral_share": float(self.pref[fam == NEUTRAL_FAMILY].sum()),
                "blinks_per_min": 60.0 * self.blink_rate, "mean_gain": float(self.gains.mean())}


def make_subject(traits: np.ndarray, rng: np.random.Generator, *, fps: float, table: StateTable | None = None,
                 dynamics: Dynamics | None = None, elicitation: float = 0.0) -> Subject:
    """A subject's parameters; without `table` and `dynamics`, the default calibration's.

    `elicitation` is added to the expressivity trait where it drives the face (gains, rest between
    episodes), not to the stored traits the labels derive from: the same person watching emotive
    clips (DISFA) or posing for a photo expresses more than in an interview."""
    if table is None or dynamics is None:
        table, dynamics = default_behaviour(float(fps))
    t = dict(zip(TRAITS, traits))
    fam = table.family
    log_pref = table.log_pref + FAMILY_LOADINGS[fam] @ traits
    log_pref = log_pref + 0.35 * rng.standard_normal(table.n)   # idiosyncratic habits
    pref = np.exp(log_pref - log_pref.max())
    pref /= pref.sum()
    members = [np.flatnonzero(fam == f) for f in range(len(FAMILIES))]
    mass = np.array([pref[m].sum() for m in members])            # (F,)
    fam_p = FAMILY_AFFINITY * mass[None, :]
    fam_p /= np.maximum(fam_p.sum(axis=1, keepdims=True), 1e-300)
    member_cum = [np.cumsum(pref[m]) / max(pref[m].sum(), 1e-300) for m in members]
    speed = np.exp(0.35 * t["tempo"] + 0.1 * rng.standard_normal())
    dwell = table.dwell_s * dynamics.dwell_scale * fps / speed
    shown = t["expressivity"] + elicitation
    dwell[fam == NEUTRAL_FAMILY] *= np.exp(-0.25 * shown)  # expressive faces rest less
    ramp = table.ramp_s * fps / np.exp(0.45 * t["tempo"] + 0.1 * rng.standard_normal())
    gains = np.exp(0.25 * shown + 0.2 * rng.standard_normal(len(AU)))
    rest = table.rest * np.exp(0.35 * rng.standard_normal(len(AU)))
    tension, positivity = max(t["tension"], 0.0), max(t["positivity"], 0.0)
    for au, k in (("AU04", 0.25), ("AU07", 0.25), ("AU23", 0.1), ("AU17", 0.1)):
        rest[AU[au]] += k * tension
    rest[AU["AU12"]] += 0.15 * positivity
    return Subject(
        traits=np.asarray(traits, dtype=np.float64), table=table, dynamics=dynamics, pref=pref, family_cum=np.cumsum(fam_p, axis=1),
        members=members, member_cum=member_cum, dwell=dwell, ramp=ramp, gains=gains, rest=rest,
        blink_rate=(16 / 60) * float(np.exp(0.35 * t["blinkiness"] + 0.1 * t["tension"]
                                            + 0.15 * rng.standard_normal())),
        blink_amp=float(rng.uniform(1.6, 3.2)), noise=float(np.exp(0.2 * rng.standard_normal())),
        dropout=float(np.exp(0.5 * rng.standard_normal())))


def smooth_noise(rng: np.random.Generator, n: int, k: int, width: float) -> np.ndarray:
    """(n, k) Gaussian noise with unit variance, smoothed by a triangular kernel ~2*width wide."""
    w = max(1, int(round(width)))
    c = np.cumsum(rng.standard_normal((n + 2 * w, k)), axis=0)
    box = c[w:] - c[:-w]
    c2 = np.cumsum(box, axis=0)
    return (c2[w:] - c2[:-w])[:n] / np.sqrt((2 * w * w + 1) * w / 3)


def _next_state(sub: Subject, s: int, u: np.ndarray) -> int:
    """Family by affinity x preference mass, then a state of it by preference; never s itself
    (a state alone in its family hands over to another family)."""
    fam = sub.table.family
    for k in range(0, len(u) - 1, 2):
        f = min(int(np.searchsorted(sub.family_cum[fam[s]], u[k], side="right")), len(FAMILIES) - 1)
        m = sub.members[f]
        if len(m) == 0:
            continue
        j = int(m[min(int(np.searchsorted(sub.member_cum[f], u[k + 1], side="right")), len(m) - 1)])
        if j != s:
            return j
    return int(np.argmax(np.where(np.arange(sub.table.n) == s, -1.0, sub.pref)))   # all draws hit s


def sample_episodes(sub: Subject, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Semi-Markov chain covering n frames: state (K,) and dwell in frames (K,), sum(dwell) >= n."""
    states, durs, total = [], [], 0
    s = int(np.searchsorted(np.cumsum(sub.pref), rng.random(), side="right"))
    s = min(s, sub.table.n - 1)
    while total < n:
        d = int(max(2, round(sub.dwell[s] * np.exp(0.5 * rng.standard_normal()))))
        states.append(s)
        durs.append(d)
        total += d
        if total < n:
            s = _next_state(sub, s, rng.random(16))
    return np.array(states, dtype=np.int64), np.array(durs, dtype=np.int64)


def _bursts(rng, n: int, per_min: float, mean_len: float, fps: float) -> np.ndarray:
    """Boolean (n,) mask of Poisson-placed bursts with geometric lengths."""
    mask = np.zeros(n, dtype=bool)
    count = rng.poisson(per_min * n / fps / 60.0)
    starts = rng.integers(0, max(n, 1), count)
    lengths = np.minimum(rng.geometric(1.0 / mean_len, count), int(3 * fps))
    for s, length in zip(starts.tolist(), lengths.tolist()):
        mask[s:s + length] = True
    return mask


@dataclass
class VideoSignals:
    states: np.ndarray       # (n,) int16 hidden expression state per CSV row
    aus: np.ndarray          # (n, 17) float64, already rounded to 2 decimals, in [0, 5]
    presence: np.ndarray     # (n, 18) float64 0/1 (AU_c columns)
    confidence: np.ndarray   # (n,) float64, 2 decimals
    success: np.ndarray      # (n,) int64 0/1
    blink_onsets: np.ndarray  # (B,) int64 frame indices


def simulate_video(sub: Subject, n: int, rng: np.random.Generator, *, fps: float,
                   low_conf_per_min: float, fail_per_min: float) -> VideoSignals:
    dynamics = sub.dynamics
    states, durs = sample_episodes(sub, n, rng)
    k = len(states)
    table = sub.table
    seg = np.repeat(np.arange(k), durs)[:n]                      # (n,) episode of each frame
    t_in = np.arange(n) - (np.cumsum(durs) - durs)[seg]           # frames since episode start
    amp = np.exp(0.2 * rng.standard_normal((k, 1)) + 0.1 * rng.standard_normal((k, len(AU))))
    target = sub.rest + (table.prototypes[states] - table.rest) * sub.gains * amp   # (K, 17) apex
    prev = np.vstack([target[:1], target[:-1]])
    ramp = np.clip(sub.ramp[states] * np.exp(0.3 * rng.standard_normal(k)), 1.0, 0.8 * durs)
    p = np.clip((t_in + 1) / ramp[seg], 0.0, 1.0)
    w = (p * p * (3 - 2 * p))[:, None]                            # smoothstep onset
    x = prev[seg] + (target[seg] - prev[seg]) * w
    x *= np.exp(0.1 * smooth_noise(rng, n, len(AU), 0.3 * fps))   # apex is never flat

    # talking: the jaw oscillates at syllable rate (~4 Hz) while in a speech state
    sp = (table.family[states] == SPEECH_FAMILY).astype(np.float64)
    sp_prev = np.concatenate([sp[:1], sp[:-1]])
    sp_w = sp_prev[seg] + (sp - sp_prev)[seg] * w[:, 0]
    freq = 4.0 * np.exp(0.2 * smooth_noise(rng, n, 1, fps)[:, 0])
    osc = 0.5 + 0.5 * np.sin(np.cumsum(2 * np.pi * freq / fps) + rng.uniform(0, 2 * np.pi))
    x[:, AU["AU26"]] *= 1.0 - 0.6 * sp_w * (1.0 - osc)
    x[:, AU["AU25"]] *= 1.0 - 0.3 * sp_w * (1.0 - osc)

    # blinks: gamma-distributed intervals, a fast close-open profile (~0.25 s) on AU45
    mean_gap = fps / sub.blink_rate
    gaps = rng.gamma(2.5, mean_gap / 2.5, int(n / mean_gap * 2) + 4)
    onsets = np.cumsum(np.maximum(gaps, 0.1 * fps)).astype(np.int64) - int(rng.integers(0, int(mean_gap) + 1))
    onsets = onsets[(onsets >= 0) & (onsets < n)]
    tau = np.arange(int(np.ceil(0.3 * fps))) / fps + 0.5 / fps
    kernel = (tau / 0.07) * np.exp(1.0 - tau / 0.07)              # peaks at 70 ms
    impulses = np.zeros(n)
    np.add.at(impulses, onsets, sub.blink_amp * np.exp(0.2 * rng.standard_normal(len(onsets))))
    x[:, AU["AU45"]] += np.convolve(impulses, kernel)[:n]
    x = np.where(x > 3.5, 3.5 + 1.5 * np.tanh((x - 3.5) / 1.5), x)  # regressors saturate softly below 5

    # tracking quality: failed bursts (success 0, everything 0) and low-confidence bursts
    failed = _bursts(rng, n, fail_per_min * sub.dropout, 8.0, fps)
    low = _bursts(rng, n, low_conf_per_min * sub.dropout, 12.0, fps) & ~failed
    conf = np.clip(0.985 - 0.04 * np.abs(smooth_noise(rng, n, 1, fps)[:, 0]), 0.9, 0.98)
    conf[low] = rng.uniform(0.35, 0.89, int(low.sum()))
    noise = sub.noise * dynamics.jitter * smooth_noise(rng, n, len(AU), dynamics.jitter_frames)
    noise[low] *= 3.0
    aus = np.clip(x + noise + dynamics.offset, 0.0, 5.0)           # OpenFace clips at 0: sparse
    presence = np.zeros((n, 18))
    # AU_c order is AU01..AU26 (the first 16 intensities), then AU28, AU45
    presence[:, :16] = aus[:, :16] + 0.35 * smooth_noise(rng, n, 16, 2.0) > 0.75
    presence[:, 16] = smooth_noise(rng, n, 1, 0.5 * fps)[:, 0] > 2.0                  # AU28
    presence[:, 17] = aus[:, AU["AU45"]] + 0.3 * rng.standard_normal(n) > 1.0
    aus[failed], presence[failed], conf[failed] = 0.0, 0.0, 0.0
    return VideoSignals(states=states[seg].astype(np.int16), aus=np.round(aus, 2), presence=presence,
                        confidence=np.round(conf, 2), success=(~failed).astype(np.int64),
                        blink_onsets=onsets)
