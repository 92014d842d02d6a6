"""The synthetic face: subject parameters from traits, a semi-Markov state sequence, AU signals.

A video is a sequence of expression episodes. The state sequence is semi-Markov: the next state
is drawn from the subject's transition matrix (structure x subject preferences), and the dwell
time from a log-normal around the state's median scaled by the subject's tempo. At each episode
start the AU vector ramps (smoothstep) from the previous target to the new one: onset, apex, and
the offset is the onset of the next, usually neutral, episode. On top: slow apex wobble, jaw
oscillation while talking, blinks as a fast point process, tonic per-subject activity, OpenFace-
like noise with its floor at 0, and bursts of low-confidence and failed tracking.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from data.openface.format import AU_INTENSITY
from data.synth.states import (DWELL_S, FAMILY_BASE, FAMILY_LOADINGS, NEUTRAL, RAMP_S, SPEECH,
                               STATE_FAMILY, TRAIT_CORR, TRAITS, affinity, prototypes)

AU = {name: i for i, name in enumerate(AU_INTENSITY)}
PROTOTYPES = prototypes()   # (n_states, 17)
AFFINITY = affinity()       # (n_states, n_states)
_TRAIT_CHOL = np.linalg.cholesky(TRAIT_CORR)


def draw_traits(rng: np.random.Generator) -> np.ndarray:  # (len(TRAITS),) correlated N(0, 1)
    return _TRAIT_CHOL @ rng.standard_normal(len(TRAITS))


@dataclass
class Subject:
    traits: np.ndarray        # (n_traits,)
    start_p: np.ndarray       # (n_states,) first-state distribution
    trans_cum: list           # per state: cumulative next-state probabilities (python lists, for bisect)
    dwell: np.ndarray         # (n_states,) median dwell, frames
    ramp: np.ndarray          # (n_states,) median onset ramp, frames
    gains: np.ndarray         # (17,) per-AU gain
    tonic: np.ndarray         # (17,) resting activity
    blink_rate: float         # blinks per second
    blink_amp: float
    noise_sd: float
    dropout: float            # multiplier of the low-confidence / failure burst rates

    def summary(self, fps: float) -> dict[str, float]:
        """Derived quantities saved next to the traits (for tests and inspection)."""
        return {"mean_dwell_s": float(np.dot(self.start_p, self.dwell) / fps),
                "mean_ramp_s": float(np.dot(self.start_p, self.ramp) / fps),
                "neutral_share": float(self.start_p[NEUTRAL].sum()),
                "blinks_per_min": 60.0 * self.blink_rate, "mean_gain": float(self.gains.mean())}


def make_subject(traits: np.ndarray, rng: np.random.Generator, *, fps: float) -> Subject:
    t = dict(zip(TRAITS, traits))
    log_pref = FAMILY_BASE[STATE_FAMILY] + FAMILY_LOADINGS[STATE_FAMILY] @ traits
    log_pref = log_pref + 0.35 * rng.standard_normal(len(log_pref))  # idiosyncratic habits
    pref = np.exp(log_pref)
    trans = AFFINITY * pref[None, :]
    trans /= trans.sum(axis=1, keepdims=True)
    speed = np.exp(0.35 * t["tempo"] + 0.1 * rng.standard_normal())
    dwell = DWELL_S * fps / speed
    dwell[NEUTRAL] *= np.exp(-0.25 * t["expressivity"])  # expressive faces rest less
    ramp = RAMP_S * fps / np.exp(0.45 * t["tempo"] + 0.1 * rng.standard_normal())
    gains = np.exp(0.25 * t["expressivity"] + 0.2 * rng.standard_normal(len(AU)))
    tonic = np.where(rng.random(len(AU)) < 0.2, rng.uniform(0.1, 0.6, len(AU)), 0.0)
    tension = max(t["tension"], 0.0)
    for au, k in (("AU04", 0.15), ("AU07", 0.2), ("AU23", 0.1)):
        tonic[AU[au]] += k * tension
    tonic[AU["AU12"]] += 0.1 * max(t["positivity"], 0.0)
    return Subject(
        traits=np.asarray(traits, dtype=np.float64), start_p=pref / pref.sum(),
        trans_cum=np.cumsum(trans, axis=1).tolist(), dwell=dwell, ramp=ramp, gains=gains, tonic=tonic,
        blink_rate=(16 / 60) * float(np.exp(0.35 * t["blinkiness"] + 0.1 * t["tension"]
                                            + 0.15 * rng.standard_normal())),
        blink_amp=float(rng.uniform(1.6, 3.2)), noise_sd=float(rng.uniform(0.04, 0.1)),
        dropout=float(np.exp(0.5 * rng.standard_normal())))


def smooth_noise(rng: np.random.Generator, n: int, k: int, width: float) -> np.ndarray:
    """(n, k) Gaussian noise with unit variance, smoothed by a triangular kernel ~2*width wide."""
    w = max(1, int(round(width)))
    c = np.cumsum(rng.standard_normal((n + 2 * w, k)), axis=0)
    box = c[w:] - c[:-w]
    c2 = np.cumsum(box, axis=0)
    return (c2[w:] - c2[:-w])[:n] / np.sqrt((2 * w * w + 1) * w / 3)


def sample_episodes(sub: Subject, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Semi-Markov chain covering n frames: state (K,) and dwell in frames (K,), sum(dwell) >= n."""
    states, durs, total = [], [], 0
    s = int(np.searchsorted(np.cumsum(sub.start_p), rng.random(), side="right"))
    while total < n:
        batch = max(8, int(2 * (n - total) / sub.dwell.min()) // 8)
        u, z = rng.random(batch).tolist(), rng.standard_normal(batch)
        d_batch = np.maximum(2, np.rint(sub.dwell[None, :] * np.exp(0.5 * z)[:, None])).astype(int)
        for k in range(batch):
            d = int(d_batch[k, s])
            states.append(s)
            durs.append(d)
            total += d
            if total >= n:
                break
            s = min(bisect_right(sub.trans_cum[s], u[k]), len(sub.trans_cum) - 1)
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
    states, durs = sample_episodes(sub, n, rng)
    k = len(states)
    seg = np.repeat(np.arange(k), durs)[:n]                      # (n,) episode of each frame
    t_in = np.arange(n) - (np.cumsum(durs) - durs)[seg]           # frames since episode start
    amp = np.exp(0.25 * rng.standard_normal((k, 1)) + 0.15 * rng.standard_normal((k, len(AU))))
    target = PROTOTYPES[states] * sub.gains * amp                 # (K, 17) apex of each episode
    prev = np.vstack([target[:1], target[:-1]])
    ramp = np.clip(sub.ramp[states] * np.exp(0.3 * rng.standard_normal(k)), 1.0, 0.8 * durs)
    p = np.clip((t_in + 1) / ramp[seg], 0.0, 1.0)
    w = (p * p * (3 - 2 * p))[:, None]                            # smoothstep onset
    x = prev[seg] + (target[seg] - prev[seg]) * w
    x *= np.exp(0.12 * smooth_noise(rng, n, len(AU), 0.3 * fps))  # apex is never flat

    # talking: the jaw oscillates at syllable rate (~4 Hz) while in a speech state
    sp = SPEECH[states].astype(np.float64)
    sp_w = (np.concatenate([sp[:1], sp[:-1]])[seg] + (sp - np.concatenate([sp[:1], sp[:-1]]))[seg] * w[:, 0])
    freq = 4.0 * np.exp(0.2 * smooth_noise(rng, n, 1, fps)[:, 0])
    osc = 0.5 + 0.5 * np.sin(np.cumsum(2 * np.pi * freq / fps) + rng.uniform(0, 2 * np.pi))
    x[:, AU["AU26"]] *= 1.0 - 0.6 * sp_w * (1.0 - osc)
    x[:, AU["AU25"]] *= 1.0 - 0.3 * sp_w * (1.0 - osc)
    x += sub.tonic
    x = np.where(x > 3.5, 3.5 + 1.5 * np.tanh((x - 3.5) / 1.5), x)  # regressors saturate softly below 5

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

    # tracking quality: failed bursts (success 0, everything 0) and low-confidence bursts
    failed = _bursts(rng, n, fail_per_min * sub.dropout, 8.0, fps)
    low = _bursts(rng, n, low_conf_per_min * sub.dropout, 12.0, fps) & ~failed
    conf = np.clip(0.985 - 0.04 * np.abs(smooth_noise(rng, n, 1, fps)[:, 0]), 0.9, 0.98)
    conf[low] = rng.uniform(0.35, 0.89, int(low.sum()))
    noise = sub.noise_sd * np.sqrt(2.0) * smooth_noise(rng, n, len(AU), 1.0)
    noise[low] *= 4.0
    aus = np.clip(x + noise - 0.05, 0.0, 5.0)                     # OpenFace clips at 0: sparse
    presence = np.zeros((n, 18))
    # AU_c order is AU01..AU26 (the first 16 intensities), then AU28, AU45
    presence[:, :16] = aus[:, :16] + 0.35 * smooth_noise(rng, n, 16, 2.0) > 0.75
    presence[:, 16] = smooth_noise(rng, n, 1, 0.5 * fps)[:, 0] > 2.0                  # AU28
    presence[:, 17] = aus[:, AU["AU45"]] + 0.3 * rng.standard_normal(n) > 1.0
    aus[failed], presence[failed], conf[failed] = 0.0, 0.0, 0.0
    return VideoSignals(states=states[seg].astype(np.int16), aus=np.round(aus, 2), presence=presence,
                        confidence=np.round(conf, 2), success=(~failed).astype(np.int64),
                        blink_onsets=onsets)
