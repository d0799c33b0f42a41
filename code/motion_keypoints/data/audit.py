"""Label audit: rank the training annotations that look wrong, with a picture of each.

Everything is measured in a robust **body size** per image, so findings do not depend on how big
the person is. Bone lengths (the edges of :data:`keypoints.SKELETON`) are first compared with
their data-set median relative to the keypoint box, giving each bone's typical share of the
body; an image's body size is then the 75th percentile over its bones of length / typical share.
A high percentile because 2-D bones only get shorter (foreshortening), never longer; one wrong
point spoils two or three bones and leaves the percentile almost unchanged.

Kinds of findings, each with a ``score`` that is 1 at its threshold (ranks are by score):

- ``swap``: the labels of a left/right pair, alone or with everything beyond it on the limb
  (elbows, or elbows + wrists + palms), fit much better exchanged: as labelled, one of the
  bones they touch is at least ``swap_long`` times its typical (median) length, and exchanging
  them shortens those bones by at least ``swap_relative`` of their exchanged length. Limbs that
  legitimately cross keep their bone lengths, so they are not flagged, nor is a mirrored person
  (every pair exchanged: consistent). Found swaps are undone (greedily, best
  first) before the other checks, and the exchanged coordinates are offered as a fix.
- ``side_mismatch``: the shoulders point the opposite way from the hips (the left shoulder is
  right of the right shoulder while the left hip is left of the right hip), both pairs at least
  ``side_separation`` body sizes apart: half of the body is labelled mirrored. Near-profile
  views, where one pair nearly coincides, are not flagged.
- ``isolated_point``: every bone at a keypoint is far too long — the point is far from all its
  skeleton neighbours (robust z of the log length over the data set above ``bone_z``). A tip
  (palm, ear, instep) whose neighbour is itself isolated is left to the neighbour.
- ``bone_length``: a bone far too long (same z) not explained by an isolated end point.
- ``collapsed``: all keypoints of an image at one place (less than a pixel apart).

Pictures, ``audit.csv`` and suggested overrides are written by :mod:`.audit_report`.

Short bones are never flagged (foreshortening makes any bone short in some view). The checks
need the data set's distribution: audit tens of images at least. Fixes go into
``DIR/label_overrides.csv`` (:func:`motion_keypoints.io.tables.apply_overrides`), never into ``train_df.csv``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np
import pandas as pd

from ..io.tables import image_lines, keypoints_array
from ..meta import FLIP_INDEX, FLIP_PAIRS, KEYPOINT_NAMES, NUM_KEYPOINTS, skeleton_indices
from ..utils import PathLike
from .layout import DataPaths, train_labels

KINDS: Tuple[str, ...] = ("collapsed", "swap", "side_mismatch", "isolated_point", "bone_length")
#: Columns of ``audit.csv``.
AUDIT_COLUMNS: Tuple[str, ...] = (
    "rank", "image", "line", "kind", "keypoints", "score", "message", "picture",
)  # fmt: skip

_EDGES = np.array([(a, b) for a, b, _ in skeleton_indices()], dtype=np.intp)
_COLLAPSED_SCORE = 100.0  # ranks first: nothing else can be checked on such an image


@dataclass(frozen=True)
class AuditThresholds:
    """Where each check starts to flag (see the module docstring). The defaults leave clean
    synthetic data unflagged with a wide margin and catch gross errors."""

    swap_relative: float = 0.15
    swap_long: float = 1.3
    side_separation: float = 0.05
    bone_z: float = 5.0
    #: Floor of a bone's robust spread of log length, so that bones of almost constant length
    #: (in the labels) do not turn small deviations into large z.
    min_log_spread: float = 0.1


@dataclass(frozen=True)
class Finding:
    """One suspicious annotation. ``fix`` holds suggested ``(keypoint, x, y)`` overrides."""

    image: str
    line: int | None
    kind: str
    keypoints: Tuple[str, ...]
    score: float
    message: str
    fix: Tuple[Tuple[str, float, float], ...] = ()


@dataclass
class AuditReport:
    """Ranked findings (best first) of :func:`audit` over ``n_images`` images."""

    findings: List[Finding]
    n_images: int
    data_root: Path | None = None
    overrides_applied: int = 0
    thresholds: AuditThresholds = field(default_factory=AuditThresholds)

    def flagged_images(self) -> List[str]:
        """Images with findings, in the order of their best finding."""
        return list(dict.fromkeys(f.image for f in self.findings))

    def to_frame(self) -> pd.DataFrame:
        """The findings as a frame with :data:`AUDIT_COLUMNS` (``picture`` empty)."""
        rows = [{"rank": r, "image": f.image, "line": f.line, "kind": f.kind,
                 "keypoints": ";".join(f.keypoints), "score": round(f.score, 3),
                 "message": f.message, "picture": ""} for r, f in enumerate(self.findings, 1)]
        frame = pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))
        return frame.astype({"line": "Int64"})

    def summary(self) -> str:
        """One line: how many findings of which kind in how many images."""
        counts = pd.Series([f.kind for f in self.findings], dtype="str").value_counts()
        kinds = ", ".join(f"{counts[k]} {k}" for k in KINDS if k in counts)
        n = len(self.findings)
        text = (f"audit: {n} finding{'' if n == 1 else 's'} in {len(self.flagged_images())} of "
                f"{self.n_images} images" + (f" ({kinds})" if kinds else ""))
        if self.overrides_applied:
            text += f"; {self.overrides_applied} label overrides applied"
        return text


# ------------------------------------------------------------------------------- measurements


def _check_kps(kps) -> np.ndarray:
    kps = np.asarray(kps, dtype=np.float64)
    if kps.ndim != 3 or kps.shape[1:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints must have shape (N, {NUM_KEYPOINTS}, 2), got {kps.shape}")
    if not np.isfinite(kps).all():
        raise ValueError("keypoints must be finite (read them with io.tables.read_keypoint_csv)")
    return kps


def bone_lengths(kps) -> np.ndarray:
    """``(N, B)`` pixel lengths of the skeleton edges, in :data:`keypoints.SKELETON` order."""
    kps = np.asarray(kps, dtype=np.float64)
    return np.linalg.norm(kps[:, _EDGES[:, 0]] - kps[:, _EDGES[:, 1]], axis=-1)


def _box_diagonal(kps: np.ndarray) -> np.ndarray:
    return np.linalg.norm(kps.max(axis=1) - kps.min(axis=1), axis=-1)


def body_size(kps) -> np.ndarray:
    """``(N,)`` robust body size in pixels (see the module docstring); 0 for collapsed images."""
    kps = _check_kps(kps)
    lengths = bone_lengths(kps)
    diag = _box_diagonal(kps)
    ok = diag >= 1.0
    if not ok.any():
        return np.zeros(len(kps))
    share = np.median(lengths[ok] / diag[ok, None], axis=0)
    share = np.where(share > 0, share, np.nan)  # a bone of length 0 everywhere says nothing
    size = np.nanpercentile(lengths / share, 75, axis=1) if np.isfinite(share).any() else diag
    return np.where(ok, size, 0.0)


@dataclass(frozen=True)
class BoneStats:
    """The data set's bone lengths: per bone the median length in body sizes (``typical``) and
    the robust spread (1.4826 MAD, at least ``min_log_spread``) of the log length."""

    typical: np.ndarray
    log_spread: np.ndarray

    def multiples(self, lengths, size) -> np.ndarray:
        """``(N, B)`` pixel ``lengths`` of images of body ``size`` as multiples of typical."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.asarray(lengths) / (np.asarray(size)[:, None] * self.typical)
        return np.nan_to_num(out, nan=1.0, posinf=1.0)

    def zscores(self, lengths, size) -> np.ndarray:
        """``(N, B)`` robust z of the log lengths (``-inf`` for bones of length 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.multiples(lengths, size)) / self.log_spread


def bone_stats(kps, size=None, thresholds: AuditThresholds = AuditThresholds()) -> BoneStats:
    """:class:`BoneStats` of the labels ``kps`` (images of body size 0 left out)."""
    kps = _check_kps(kps)
    size = body_size(kps) if size is None else np.asarray(size, np.float64)
    ok = size > 0
    bones = len(_EDGES)
    if not ok.any():
        return BoneStats(np.ones(bones), np.full(bones, thresholds.min_log_spread))
    with np.errstate(divide="ignore"):
        log = np.log(bone_lengths(kps[ok]) / size[ok, None])
    log = np.where(np.isfinite(log), log, np.nan)
    with warnings.catch_warnings():  # a bone of length 0 in every image: all-NaN column
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(log, axis=0)
        spread = 1.4826 * np.nanmedian(np.abs(log - med), axis=0)
    typical = np.where(np.isfinite(med), np.exp(med), np.nan)  # NaN: the bone is always 0
    spread = np.maximum(np.nan_to_num(spread), thresholds.min_log_spread)
    return BoneStats(typical, spread)


# ------------------------------------------------------------------------------------- swaps


def _swap_candidates() -> Tuple[Tuple[int, ...], ...]:
    """Left keypoint sets whose labels may be exchanged with their mirror partners: each left
    keypoint alone, and with everything beyond it on its limb (away from the centre line)."""
    neighbours: Dict[int, set] = {k: set() for k in range(NUM_KEYPOINTS)}
    for a, b in _EDGES:
        neighbours[int(a)].add(int(b))
        neighbours[int(b)].add(int(a))
    depth = {k: 0 for k in range(NUM_KEYPOINTS) if FLIP_INDEX[k] == k}
    frontier = list(depth)
    while frontier:
        nxt = []
        for k in frontier:
            for n in sorted(neighbours[k]):
                if n not in depth:
                    depth[n] = depth[k] + 1
                    nxt.append(n)
        frontier = nxt

    def beyond(k: int) -> List[int]:
        out = []
        for n in sorted(neighbours[k]):
            if depth.get(n, -1) > depth[k]:
                out += [n, *beyond(n)]
        return out

    candidates = []
    for left, _ in FLIP_PAIRS:
        k = KEYPOINT_NAMES.index(left)
        candidates.append((k,))
        limb = beyond(k)
        if limb:
            candidates.append((k, *limb))
    return tuple(candidates)


#: Left keypoint indices of each swap candidate (its mirror partners are exchanged too).
SWAP_CANDIDATES: Tuple[Tuple[int, ...], ...] = _swap_candidates()


def _exchange(kps: np.ndarray, candidate: Sequence[int]) -> np.ndarray:
    perm = np.arange(NUM_KEYPOINTS)
    for k in candidate:
        perm[k], perm[FLIP_INDEX[k]] = FLIP_INDEX[k], k
    return kps[..., perm, :]


def _candidate_names(candidate: Sequence[int]) -> Tuple[str, ...]:
    return tuple(KEYPOINT_NAMES[j] for k in candidate for j in (k, FLIP_INDEX[k]))


class SwapMeasures(NamedTuple):
    """Per image and swap candidate ``(N, len(SWAP_CANDIDATES))``, for the bones that exchanging
    the candidate's labels changes: by what fraction of their exchanged length the exchange
    shortens them (``relative``; negative: it makes them longer) and by how many body sizes
    (``gain``); the longest of them as labelled, as a multiple of its typical length
    (``longest``); and the largest bone z-score left after the exchange (``after_z``)."""

    relative: np.ndarray
    gain: np.ndarray
    longest: np.ndarray
    after_z: np.ndarray

    def scores(self, thresholds: AuditThresholds = AuditThresholds()) -> np.ndarray:
        """``min(relative / swap_relative, longest / swap_long)`` where the exchange shortens
        the bones and leaves none of them too long (z below ``bone_z``), else 0."""
        score = np.minimum(self.relative / thresholds.swap_relative,
                           self.longest / thresholds.swap_long)
        return np.where((self.relative > 0) & (self.after_z < thresholds.bone_z), score, 0.0)


def swap_measures(kps, size=None, stats: BoneStats | None = None) -> SwapMeasures:
    """:class:`SwapMeasures` of every swap candidate (``stats`` by default from ``kps``)."""
    kps = _check_kps(kps)
    size = body_size(kps) if size is None else np.asarray(size, np.float64)
    stats = bone_stats(kps, size) if stats is None else stats
    before = bone_lengths(kps)
    multiples = stats.multiples(before, size)
    shape = (len(kps), len(SWAP_CANDIDATES))
    m = SwapMeasures(np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape))
    for c, candidate in enumerate(SWAP_CANDIDATES):
        moved = np.zeros(NUM_KEYPOINTS, bool)
        moved[list(candidate)] = True
        moved[[FLIP_INDEX[k] for k in candidate]] = True
        changed = moved[_EDGES[:, 0]] != moved[_EDGES[:, 1]]
        exchanged = bone_lengths(_exchange(kps, candidate))
        s0, s1 = before[:, changed].sum(axis=1), exchanged[:, changed].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            m.relative[:, c] = np.where(s1 > 0, (s0 - s1) / s1, 0.0)
            m.gain[:, c] = np.where(size > 0, (s0 - s1) / size, 0.0)
        m.longest[:, c] = multiples[:, changed].max(axis=1)
        m.after_z[:, c] = stats.zscores(exchanged, size)[:, changed].max(axis=1)
    return m


def swap_scores(kps, size=None, thresholds: AuditThresholds = AuditThresholds()) -> np.ndarray:
    """``(N, len(SWAP_CANDIDATES))`` swap scores (:meth:`SwapMeasures.scores`); >= 1 flags."""
    return swap_measures(kps, size).scores(thresholds)


@dataclass(frozen=True)
class UndoneSwap:
    """A swap undone by :func:`undo_swaps`: image index, candidate index and its measures."""

    image: int
    candidate: int
    score: float
    relative: float
    longest: float


def side_opposition(kps, size=None) -> np.ndarray:
    """``(N,)``: how far the left/right pairs point against the torso's left-to-right direction
    (shoulders plus hips), summed over the pairs, in body sizes; 0 for a consistent pose."""
    kps = _check_kps(kps)
    size = body_size(kps) if size is None else np.asarray(size, np.float64)
    left = [KEYPOINT_NAMES.index(a) for a, _ in FLIP_PAIRS]
    right = [KEYPOINT_NAMES.index(b) for _, b in FLIP_PAIRS]
    across = kps[:, left] - kps[:, right]  # (N, P, 2)
    torso = across[:, [left.index(KEYPOINT_NAMES.index(f"left_{p}")) for p in ("shoulder", "hip")]]
    torso = torso.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = torso / np.linalg.norm(torso, axis=1, keepdims=True)
        against = np.maximum(-np.einsum("npc,nc->np", across, unit), 0.0).sum(axis=1) / size
    return np.nan_to_num(against)


def undo_swaps(kps, size=None, thresholds: AuditThresholds = AuditThresholds()):
    """Exchange flagged swaps back until no candidate scores >= 1. Each round undoes, per image,
    the flagged candidate that shortens the skeleton most; where two shorten it equally (within
    1% of the body size; the eyes or the ears of a face, say), the one that leaves the pairs
    most consistent with the torso's left-right direction (:func:`side_opposition`).

    Returns ``(fixed keypoints, [UndoneSwap, ...])``."""
    fixed = _check_kps(kps).copy()
    size = body_size(fixed) if size is None else np.asarray(size, np.float64)
    stats = bone_stats(fixed, size, thresholds)
    undone: List[UndoneSwap] = []
    todo = np.arange(len(fixed))
    for _ in range(len(SWAP_CANDIDATES)):  # every undo shortens the skeleton: this terminates
        if not len(todo):
            break
        m = swap_measures(fixed[todo], size[todo], stats)
        scores = m.scores(thresholds)
        flagged = scores >= 1.0
        hit = flagged.any(axis=1)
        for j in np.flatnonzero(hit):
            i = todo[j]
            cands = np.flatnonzero(flagged[j])
            near = cands[m.gain[j, cands] >= m.gain[j, cands].max() - 0.01]
            opposed = [side_opposition(_exchange(fixed[i:i + 1], SWAP_CANDIDATES[c]),
                                       size[i:i + 1])[0] for c in near]
            c = near[int(np.argmin(opposed))]
            fixed[i] = _exchange(fixed[i], SWAP_CANDIDATES[c])
            undone.append(UndoneSwap(int(i), int(c), float(scores[j, c]),
                                     float(m.relative[j, c]), float(m.longest[j, c])))
        todo = todo[hit]
    return fixed, undone


def side_mismatch_scores(kps, size=None,
                         thresholds: AuditThresholds = AuditThresholds()) -> np.ndarray:
    """``(N,)``: how far the shoulders point against the hips, in units of ``side_separation``
    body sizes (0 when they agree). The shoulder vector (left minus right) is projected on the
    hip vector, reversed, and divided by the longer of the two, so the score is at most the
    shorter pair's separation: near-profile views score low."""
    kps = _check_kps(kps)
    size = body_size(kps) if size is None else np.asarray(size, np.float64)
    idx = {n: KEYPOINT_NAMES.index(n) for n in
           ("left_shoulder", "right_shoulder", "left_hip", "right_hip")}
    shoulders = kps[:, idx["left_shoulder"]] - kps[:, idx["right_shoulder"]]
    hips = kps[:, idx["left_hip"]] - kps[:, idx["right_hip"]]
    longer = np.maximum(np.linalg.norm(shoulders, axis=1), np.linalg.norm(hips, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        against = -np.einsum("ij,ij->i", shoulders, hips) / longer
        score = against / (size * thresholds.side_separation)
    return np.where((size > 0) & (longer > 0) & (against > 0), score, 0.0)


# ------------------------------------------------------------------------------- bone lengths


def bone_zscores(kps, size=None, thresholds: AuditThresholds = AuditThresholds()):
    """``(z, multiples)``, each ``(N, B)``: robust z-score over the data set of each bone's log
    length in body sizes, and the length as a multiple of the bone's median (0 and 1 for images
    of body size 0)."""
    kps = _check_kps(kps)
    size = body_size(kps) if size is None else np.asarray(size, np.float64)
    stats = bone_stats(kps, size, thresholds)
    lengths = bone_lengths(kps)
    ok = (size > 0)[:, None]
    return (np.where(ok, stats.zscores(lengths, size), 0.0),
            np.where(ok, stats.multiples(lengths, size), 1.0))


def _incident_bones() -> List[List[int]]:
    bones: List[List[int]] = [[] for _ in range(NUM_KEYPOINTS)]
    for b, (a, c) in enumerate(_EDGES):
        bones[a].append(b)
        bones[c].append(b)
    return bones


_INCIDENT = _incident_bones()


def isolated_points(z, thresholds: AuditThresholds = AuditThresholds()) -> np.ndarray:
    """``(N, K)`` isolation scores from bone z-scores ``(N, B)``: the smallest z of the bones at
    each keypoint over ``bone_z`` (>= 1: every bone at the point is too long). A tip whose only
    neighbour is isolated scores 0: the neighbour explains its long bone."""
    z = np.asarray(z, np.float64)
    score = np.zeros((len(z), NUM_KEYPOINTS))
    for k, bones in enumerate(_INCIDENT):
        if bones:
            score[:, k] = np.maximum(z[:, bones].min(axis=1), 0.0) / thresholds.bone_z
    flagged = score >= 1.0
    for k, bones in enumerate(_INCIDENT):
        if len(bones) == 1:
            a, b = _EDGES[bones[0]]
            other = b if a == k else a
            score[flagged[:, other], k] = 0.0
    return score


def bone_length_outliers(z, isolated, thresholds: AuditThresholds = AuditThresholds()):
    """``(N, B)`` scores ``z / bone_z`` of too-long bones (>= 1) whose ends are not isolated
    points (``isolated``: ``(N, K)`` scores from :func:`isolated_points`); 0 elsewhere."""
    z = np.asarray(z, np.float64)
    explained = (np.asarray(isolated) >= 1.0)[:, _EDGES].any(axis=2)
    score = np.maximum(z, 0.0) / thresholds.bone_z
    return np.where(explained, 0.0, score)


# ----------------------------------------------------------------------------------- findings


def _bone_name(b: int) -> str:
    a, c = _EDGES[b]
    return f"{KEYPOINT_NAMES[a]}-{KEYPOINT_NAMES[c]}"


def audit_keypoints(kps, images: Sequence[str], lines: Sequence[int | None] | None = None,
                    thresholds: AuditThresholds = AuditThresholds()) -> List[Finding]:
    """Findings for the labels ``kps`` ``(N, K, 2)`` of ``images`` (CSV ``lines``), ranked by
    score, best first."""
    kps = _check_kps(kps)
    images = [str(n) for n in images]
    if len(images) != len(kps):
        raise ValueError(f"{len(images)} image names for {len(kps)} keypoint rows")
    lines = list(lines) if lines is not None else [None] * len(images)
    findings: List[Finding] = []

    def add(i, kind, names, score, message, fix=()):
        findings.append(Finding(images[i], lines[i], kind, tuple(names), float(score), message,
                                tuple(fix)))

    size = body_size(kps)
    flat = size <= 0
    for i in np.flatnonzero(flat):
        x, y = kps[i].mean(axis=0)
        add(i, "collapsed", KEYPOINT_NAMES, _COLLAPSED_SCORE,
            f"all keypoints lie within a pixel of ({x:.1f}, {y:.1f}): the row is not a pose")
    usable = np.flatnonzero(~flat)
    if not len(usable):
        return _ranked(findings)
    kps_ok, size_ok = kps[usable], size[usable]
    fixed, undone = undo_swaps(kps_ok, size_ok, thresholds)
    offered: Dict[int, set] = {}  # image -> keypoints already given a fix
    for u in undone:
        j = u.image
        names = _candidate_names(SWAP_CANDIDATES[u.candidate])
        done = offered.setdefault(j, set())
        fix = [(n, *map(float, fixed[j, KEYPOINT_NAMES.index(n)]))
               for n in sorted(names, key=KEYPOINT_NAMES.index) if n not in done]
        done.update(names)
        pairs = ", ".join(f"{names[m]}/{names[m + 1]}" for m in range(0, len(names), 2))
        add(usable[j], "swap", names, u.score,
            f"left/right labels look exchanged ({pairs}): as labelled, a bone of theirs is "
            f"{u.longest:.1f}x its typical length, and their bones are {1 + u.relative:.2f}x "
            "as long as with the labels exchanged", fix)
    side = side_mismatch_scores(fixed, size_ok, thresholds)
    for j in np.flatnonzero(side >= 1.0):
        i = usable[j]
        pts = dict(zip(KEYPOINT_NAMES, fixed[j]))
        sh, hip = (pts[f"left_{p}"] - pts[f"right_{p}"] for p in ("shoulder", "hip"))
        add(i, "side_mismatch", ("left_shoulder", "right_shoulder", "left_hip", "right_hip"),
            side[j], "shoulders and hips point opposite ways (left minus right: shoulders "
            f"({sh[0]:.0f}, {sh[1]:.0f}) px, hips ({hip[0]:.0f}, {hip[1]:.0f}) px): half of the "
            "body may be labelled mirrored")
    z, ratio = bone_zscores(fixed, size_ok, thresholds)
    iso = isolated_points(z, thresholds)
    for j, k in zip(*np.nonzero(iso >= 1.0)):
        bones = _INCIDENT[k]
        least = min(bones, key=lambda b: z[j, b])
        others = [KEYPOINT_NAMES[c] for b in bones for c in _EDGES[b] if c != k]
        add(usable[j], "isolated_point", (KEYPOINT_NAMES[k],), iso[j, k],
            f"{KEYPOINT_NAMES[k]} is far from its neighbours {', '.join(others)}: all its bones "
            f"are too long, the least so {_bone_name(least)} at {ratio[j, least]:.1f}x its "
            f"typical length (robust z {z[j, least]:.1f})")
    bones = bone_length_outliers(z, iso, thresholds)
    for j, b in zip(*np.nonzero(bones >= 1.0)):
        add(usable[j], "bone_length", tuple(KEYPOINT_NAMES[c] for c in _EDGES[b]), bones[j, b],
            f"bone {_bone_name(b)} is {ratio[j, b]:.1f}x its typical length "
            f"(robust z {z[j, b]:.1f})")
    return _ranked(findings)


def _ranked(findings: List[Finding]) -> List[Finding]:
    return sorted(findings, key=lambda f: (-f.score, f.image, KINDS.index(f.kind), f.keypoints))


def audit(data_root: PathLike, thresholds: AuditThresholds = AuditThresholds()) -> AuditReport:
    """Audit the training labels of a data root (with ``label_overrides.csv`` applied)."""
    paths = DataPaths.from_root(data_root)
    df, fixes = train_labels(paths.root)
    lines = image_lines(paths.train_csv)
    images = df["image"].tolist()
    findings = audit_keypoints(keypoints_array(df), images, [lines.get(n) for n in images],
                               thresholds)
    applied = 0 if fixes is None else len(fixes)
    return AuditReport(findings, len(df), paths.root, applied, thresholds)
