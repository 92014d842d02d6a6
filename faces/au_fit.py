"""Training and evaluation of Chu et al.'s hybrid network and of GTLE-Net on labelled face clips.

Plain functions over (model, clips, labels, split): everything on `device`, images moved there one
batch at a time as uint8 and converted there. Early stopping keeps the best state on the
validation subjects' loss. Labels are (N, A) int8 in {-1, 0, +1} (faces/clips.py).

Chu et al. (models/chu.py), part after part as the paper trains them:
    1. the CNN on random crops + flips of single frames, masked multi-label cross-entropy;
    2. L2-normalised fc7 of every frame (centre crop), PCA fitted on the training frames;
    3. the stacked LSTM on `subseqs` random subsequences of `subseq_len` frames per training clip each
       epoch (BPTT over the subsequence), the max-margin loss, the first `skip_first` frames of each
       subsequence left out of the loss (too little context, as the paper does), subsequences with
       fewer than `min_active` active AUs per frame skipped (the paper's 1.5 against negative bias);
    4. the fusion on the frozen CNN's and LSTM's scores of whole training clips.
GTLE-Net (models/gtle.py): the encoder pretrained on triplets (`pretrain_encoder`), then the whole
network on frames with L_au + 0.001 L_rec, the encoder random (`none`), `frozen` or fine-tuned.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from losses.au_detection import FEC_MARGINS, expression_triplet, gtle_loss, max_margin, multilabel_ce, positive_weights


def f1_per_au(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-frame F1 (%) of each AU over its labelled frames: predicted (N, A) bool, labels (N, A) in
    {-1, 0, 1}; 0 for an AU with neither true nor predicted positives."""
    labelled, positive = labels != 0, labels > 0
    tp = (predicted & positive).sum(0).double()
    fp = (predicted & labelled & ~positive).sum(0).double()
    fn = (~predicted & positive).sum(0).double()
    return torch.where(tp + fp + fn > 0, 200 * tp / (2 * tp + fp + fn).clamp(min=1), torch.zeros_like(tp))


def to_images(frames: np.ndarray, rows, device, *, size: int | None = None, crop: int | None = None,
              train: bool = False, gen: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (N, S, S, 3) rows -> float (B, 3, crop, crop) in [0, 1] on `device`: resized to `size`
    (area interpolation) when given, then a random crop and horizontal flip when `train`, the centre
    crop otherwise. (Flipping swaps left and right, which no AU here tells apart.)"""
    x = torch.from_numpy(frames[np.asarray(rows)]).to(device).permute(0, 3, 1, 2).float().div_(255)
    if size is not None and size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="area" if size < x.shape[-1] else "bilinear")
    S = x.shape[-1]
    c = crop or S
    if train:
        i, j = (int(v) for v in torch.randint(0, S - c + 1, (2,), generator=gen))
        x = x[..., i:i + c, j:j + c]
        if bool(torch.rand(1, generator=gen) < 0.5):
            x = x.flip(-1)
        return x
    a = (S - c) // 2
    return x[..., a:a + c, a:a + c]


class Best:
    """The best state of a module on the validation loss, and patience."""

    def __init__(self, module: torch.nn.Module, patience: int):
        self.module, self.patience, self.loss, self.waited, self.epoch = module, patience, math.inf, 0, -1
        self.state = copy.deepcopy(module.state_dict())

    def update(self, loss: float, epoch: int) -> bool:
        """Record one epoch's validation loss; True when training should stop."""
        if loss < self.loss:
            self.loss, self.waited, self.epoch = loss, 0, epoch
            self.state = copy.deepcopy(self.module.state_dict())
        else:
            self.waited += 1
        return self.waited >= self.patience

    def restore(self) -> None:
        self.module.load_state_dict(self.state)


def _batches(n: int, size: int, gen: torch.Generator | None):
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    for a in range(0, n, size):
        yield order[a:a + size].numpy()


@dataclass
class ChuTrainConfig:
    cnn_epochs: int = 8
    cnn_lr: float = 1e-3
    cnn_optimizer: str = "adam"    # paper: sgd (momentum 0.9, weight decay 5e-4, lr 1e-3, batch 196)
    cnn_batch: int = 32
    lstm_epochs: int = 30
    lstm_lr: float = 1e-3          # RMSProp, as the paper
    subseq_len: int = 30           # paper: 1300 frames
    subseqs: int = 4               # random subsequences per training clip and epoch (paper: 10)
    skip_first: int = 5            # paper: 10
    min_active: float = 0.0        # paper: 1.5 active AUs per frame (our rendered AUs are sparser)
    balance: bool = False          # weight the CNN's and fusion's positives per AU (losses.positive_weights)
    fusion_epochs: int = 60
    fusion_lr: float = 1e-2
    patience: int = 5


def _cnn_optimizer(params, cfg: ChuTrainConfig):
    if cfg.cnn_optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.cnn_lr, momentum=0.9, weight_decay=5e-4)
    if cfg.cnn_optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.cnn_lr)
    raise ValueError(f"chu_train.cnn_optimizer must be sgd or adam, got {cfg.cnn_optimizer!r}")


@torch.no_grad()
def _frame_outputs(model, frames, rows, device, batch=128):
    """CNN logits (n, A) and L2-normalised fc7 (n, fc) of the centre crops."""
    model.eval()
    logits, feats = [], []
    for a in range(0, len(rows), batch):
        x = to_images(frames, rows[a:a + batch], device, size=model.cnn.face, crop=model.cnn.crop)
        logits.append(model.cnn(x))
        feats.append(model.cnn.features(x))
    return torch.cat(logits), torch.cat(feats)


def fit_chu(model, clips, labels: np.ndarray, split, cfg: ChuTrainConfig, device, *, margin: float = 0.5,
            seed: int = 0, log=print) -> dict:
    """Train the three parts on split.train clips (early stopping on split.val); predictions on split.test."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.to(device)
    y = torch.from_numpy(labels).to(device)                                       # (N, A)
    train_rows, val_rows = clips.rows(split.train), clips.rows(split.val)
    t0 = time.time()
    yt = y[train_rows]
    pos_w = positive_weights((yt > 0).sum(0), (yt < 0).sum(0)) if cfg.balance else None   # (A,) or None
    ce = lambda logits_, labels_: multilabel_ce(logits_, labels_, pos_weight=pos_w)
    # 1. the CNN, frame by frame
    cnn, crop = model.cnn, model.cnn.crop
    opt, best = _cnn_optimizer(cnn.parameters(), cfg), Best(cnn, cfg.patience)
    for epoch in range(cfg.cnn_epochs):
        cnn.train()
        for b in _batches(len(train_rows), cfg.cnn_batch, gen):
            rows = train_rows[b]
            loss = ce(cnn(to_images(clips.frames, rows, device, size=cnn.face, crop=crop, train=True, gen=gen)), y[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val_logits, _ = _frame_outputs(model, clips.frames, val_rows, device)
        val = float(ce(val_logits, y[val_rows]))
        if best.update(val, epoch):
            break
    best.restore()
    log(f"    CNN: {epoch + 1} epochs, best val CE {best.loss:.4f} (epoch {best.epoch + 1}), {time.time() - t0:.0f}s")
    # 2. fc7 -> PCA
    all_rows = np.arange(len(labels))
    logits, fc7 = _frame_outputs(model, clips.frames, all_rows, device)   # (N, A), (N, fc)
    model.pca.fit(fc7[train_rows])
    feats = model.pca(fc7)                                                        # (N, k)
    # 3. the LSTM on random subsequences
    lstm = model.lstm
    opt, best = torch.optim.RMSprop(lstm.parameters(), lr=cfg.lstm_lr), Best(lstm, cfg.patience)
    active = (y > 0).sum(1).float()                                               # (N,) active AUs per frame
    for epoch in range(cfg.lstm_epochs):
        lstm.train()
        windows = _subsequences(clips, split.train, cfg, gen, active)
        for b in _batches(len(windows), 8, gen):
            w = torch.from_numpy(windows[b]).to(device)                           # (B, L) frame rows
            scores = lstm(feats[w])                                               # (B, L, A)
            loss = max_margin(scores[:, cfg.skip_first:], y[w][:, cfg.skip_first:], margin=margin)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val = float(_clip_loss(lstm, feats, y, clips, split.val, margin))
        if best.update(val, epoch):
            break
    best.restore()
    log(f"    LSTM: {epoch + 1} epochs, best val margin loss {best.loss:.4f}, {time.time() - t0:.0f}s")
    lstm_scores = _clip_scores(lstm, feats, clips, range(clips.n_clips))          # (N, A)
    # 4. the fusion on both frozen parts' scores
    fusion = model.fusion
    opt, best = torch.optim.Adam(fusion.parameters(), lr=cfg.fusion_lr), Best(fusion, cfg.patience)
    tr, va = torch.from_numpy(train_rows).to(device), torch.from_numpy(val_rows).to(device)
    for epoch in range(cfg.fusion_epochs):
        fusion.train()
        loss = ce(fusion(logits[tr], lstm_scores[tr]), y[tr])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            if best.update(float(ce(fusion(logits[va], lstm_scores[va]), y[va])), epoch):
                break
    best.restore()
    with torch.no_grad():
        fused = fusion(logits, lstm_scores)
    test = torch.from_numpy(clips.rows(split.test)).to(device)
    predicted = {"cnn": logits[test] > 0, "lstm": lstm_scores[test] > 0, "fusion": fused[test] > 0}
    return {name: f1_per_au(p, y[test]).cpu() for name, p in predicted.items()} | {"seconds": time.time() - t0}


def _subsequences(clips, train_clips, cfg: ChuTrainConfig, gen, active) -> np.ndarray:
    """(W, L) frame rows of random windows of the training clips (L = the shortest clip if shorter)."""
    lengths = np.diff(clips.offsets)[np.asarray(train_clips)]
    L = int(min(cfg.subseq_len, lengths.min()))
    windows = []
    for v in train_clips:
        a, n = int(clips.offsets[v]), int(clips.offsets[v + 1] - clips.offsets[v])
        for s in torch.randint(0, n - L + 1, (cfg.subseqs,), generator=gen).tolist():
            rows = np.arange(a + s, a + s + L)
            if float(active[rows].mean()) >= cfg.min_active:
                windows.append(rows)
    if not windows:
        raise ValueError(f"chu_train.min_active={cfg.min_active}: no training subsequence has that many active AUs "
                         "per frame; lower it")
    return np.stack(windows)


@torch.no_grad()
def _clip_scores(lstm, feats, clips, which) -> torch.Tensor:
    """LSTM scores of whole clips, one clip at a time, rows in clip order (N_which, A)."""
    lstm.eval()
    return torch.cat([lstm(feats[int(clips.offsets[v]):int(clips.offsets[v + 1])][None])[0] for v in which])


@torch.no_grad()
def _clip_loss(lstm, feats, y, clips, which, margin) -> torch.Tensor:
    rows = torch.from_numpy(clips.rows(which)).to(y.device)
    return max_margin(_clip_scores(lstm, feats, clips, which), y[rows], margin=margin)


# ---- GTLE-Net ------------------------------------------------------------------------------

@dataclass
class TripletTrainConfig:
    identities: int = 80           # rendered people for the triplets (stills: a pose and scene each)
    per_identity: int = 4
    triplets: int = 2000
    noise: float = 0.25            # annotators' perception noise on the AU distances
    min_agreement: int = 4         # of 6 annotators
    epochs: int = 5
    lr: float = 1e-3
    batch: int = 32


def pretrain_encoder(encoder, images: np.ndarray, rows: np.ndarray, types: list[str], cfg: TripletTrainConfig,
                     device, *, size: int, seed: int = 0, log=print) -> list[float]:
    """The triplet loss of An et al. (eq. 1) over (n, 3) image rows ordered (anchor, positive, negative)."""
    gen = torch.Generator().manual_seed(seed)
    encoder.to(device).train()
    margins = torch.tensor([FEC_MARGINS[t] for t in types], device=device)
    opt = torch.optim.Adam(encoder.parameters(), lr=cfg.lr)
    losses = []
    for epoch in range(cfg.epochs):
        total, count = 0.0, 0
        for b in _batches(len(rows), cfg.batch, gen):
            r = rows[b]                                                            # (B, 3)
            x = to_images(images, r.reshape(-1), device, size=size)               # (3B, C, S, S)
            e = encoder.embed(x).unflatten(0, (len(b), 3))                        # (B, 3, d)
            loss = expression_triplet(e[:, 0], e[:, 1], e[:, 2], margins[torch.from_numpy(b).to(device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * len(b), count + len(b)
        losses.append(total / count)
        log(f"    triplets epoch {epoch + 1}: loss {losses[-1]:.4f}")
    return losses


@torch.no_grad()
def triplet_accuracy(encoder, images: np.ndarray, rows: np.ndarray, device, *, size: int, batch: int = 64) -> float:
    """Share of triplets whose closest pair in the embedding is (anchor, positive)."""
    encoder.eval()
    ok = 0
    for a in range(0, len(rows), batch):
        r = rows[a:a + batch]
        e = encoder.embed(to_images(images, r.reshape(-1), device, size=size)).unflatten(0, (len(r), 3))
        d_ap, d_an, d_pn = ((e[:, 0] - e[:, 1]) ** 2).sum(1), ((e[:, 0] - e[:, 2]) ** 2).sum(1), ((e[:, 1] - e[:, 2]) ** 2).sum(1)
        ok += int(((d_ap < d_an) & (d_ap < d_pn)).sum())
    return ok / max(len(rows), 1)


@dataclass
class GTLETrainConfig:
    epochs: int = 8
    lr: float = 1e-3               # paper: Adam 1e-5, weight decay 1e-6, batch 10, 20 epochs
    weight_decay: float = 1e-6
    batch: int = 16
    patience: int = 4


@torch.no_grad()
def _gtle_eval(net, frames, rows, y, device, size, batch=64, rec_weight=0.001):
    net.eval()
    logits, loss = [], 0.0
    for a in range(0, len(rows), batch):
        r = rows[a:a + batch]
        x = to_images(frames, r, device, size=size)
        out = net(x)
        logits.append(out["logits"])
        loss += float(gtle_loss(out["logits"], y[r], out["reconstruction"], x, rec_weight=rec_weight)["loss"]) * len(r)
    return torch.cat(logits), loss / max(len(rows), 1)


def fit_gtle(net, clips, labels: np.ndarray, split, cfg: GTLETrainConfig, device, *, size: int,
             frozen_encoder: bool = False, rec_weight: float = 0.001, seed: int = 0, log=print) -> dict:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net.to(device)
    y = torch.from_numpy(labels).to(device)
    train_rows, val_rows, test_rows = clips.rows(split.train), clips.rows(split.val), clips.rows(split.test)
    for p in net.encoder.parameters():
        p.requires_grad_(not frozen_encoder)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, t0 = Best(net, cfg.patience), time.time()
    for epoch in range(cfg.epochs):
        net.train()
        if frozen_encoder:
            net.encoder.eval()   # frozen means its BatchNorm statistics too
        for b in _batches(len(train_rows), cfg.batch, gen):
            rows = train_rows[b]
            x = to_images(clips.frames, rows, device, size=size)
            out = net(x)
            loss = gtle_loss(out["logits"], y[rows], out["reconstruction"], x, rec_weight=rec_weight)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _, val = _gtle_eval(net, clips.frames, val_rows, y, device, size, rec_weight=rec_weight)
        if best.update(val, epoch):
            break
    best.restore()
    logits, _ = _gtle_eval(net, clips.frames, test_rows, y, device, size, rec_weight=rec_weight)
    log(f"    GTLE: {epoch + 1} epochs, best val loss {best.loss:.3f}, {time.time() - t0:.0f}s")
    return {"gtle": f1_per_au(logits > 0, y[torch.from_numpy(test_rows).to(device)]).cpu(), "seconds": time.time() - t0}
