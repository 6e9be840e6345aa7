"""Build the training data set: sampled ICT heads, one npz of arrays stacked over heads.

Arrays (H heads; E = H * expressions_per_identity expressed heads; model frame, float32
unless noted; signed distances negative inside):
  identity_weights (H, 100)   ICT identity weights of each head, drawn from N(0, 1)
  surface (H, S, 3)           area-uniform points on the head's outer surface
  normals (H, S, 3)           outward unit normals at those points
  near (H, M, 3)              surface points moved by Gaussian offsets (sigma 1 mm and 1 cm)
  near_sdf (H, M)             their exact signed distance
  free (H, K, 3)              points uniform in [-1, 1]^3
  free_sdf (H, K)             their exact signed distance
  keypoints (H, 39, 3)        the keypoints of model/data/keypoints.json on each head
  exp_head (E,) int32         index of the identity (row of the arrays above) each expression belongs to
  exp_weights (E, 53)         expression weights, in the order of expression_names
  exp_canonical (E, S, 3)     surface points of the neutral head of that identity ...
  exp_observed (E, S, 3)      ... and the same points (same face, barycentric) on the expressed head
  exp_near (E, M, 3)          points around the expressed head
  exp_near_sdf (E, M)         their exact signed distance to the expressed head
  expression_names (53,) str, keypoint_names (39,) str
  seed () int64

Training identities come from one random stream of the seed; held-out test identities
(test_identities) from a disjoint stream, so no test head is ever a training head.
Each head's samples come from its own stream (seed, head index): the result does not depend
on the number of worker processes.

    python -m model.data.build_dataset --out .cache/heads300.npz --heads 300

The all-ages data set (flat_neck_cut, configs/v2.json) has H = N ICT heads then M Anny heads
(model/data/anny_heads.py), every one cut by the same flat neck rule (model/data/neck.py); expressions
(E = N * expressions_per_identity) only on ICT heads, as before. Its extra arrays:
  source (H,) int8            0 ICT, 1 Anny (source_names)
  candidate (H,) int32        the head's index in its source's training stream
  identity_weights (N, 100)   of the ICT heads (the first N rows)
  age_years (H,)              the Anny heads' ages; NaN for ICT's (adults of unknown age)
  anny_phenotypes (M, 8)      gender, african, asian, caucasian, muscle, weight, height, proportions
  anny_local_changes ()       JSON: each Anny head's local targets
Every candidate identity (source, index) has its own random stream, training and held-out ones
in disjoint streams (held_out_heads); a candidate the neck cut refuses is skipped, so the
training heads are the first accepted candidates whatever N and M are. Each head's samples are
cached in .cache/heads-<settings hash>/ as they are made (an interrupted build resumes; a larger
build reuses a smaller one's heads), then stacked into one npz.

    python -m model.data.build_dataset --heads 1000 --anny-heads 1000 --flat-neck-cut
"""
import argparse
import hashlib
import importlib.metadata
import json
import math
import multiprocessing
import os
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..runtime.progress import progress_bar
from .data_paths import cache_dir, data_dir
from .heads import N_IDENTITY, HeadData
from .neck import NECK_CUT_BELOW_CHIN_M, NeckCutError
from .samples import expression_samples, identity_samples

_TRAIN_STREAM, _TEST_STREAM, _SAMPLE_STREAM = 0, 1, 2
# The all-ages data set's streams: one per (purpose, source), then one per candidate index.
_CANDIDATE_STREAM, _HELD_OUT_STREAM, _CANDIDATE_SAMPLE_STREAM = 10, 11, 12
ICT, ANNY = 0, 1
SOURCE_NAMES = ("ict-face-model", "anny")
ANNY_PHENOTYPES = ("gender", "african", "asian", "caucasian", "muscle", "weight", "height", "proportions")
# Bumped when what a cached head holds changes, so that an old cache is never mixed in.
ALL_AGES_FORMAT = 1
EXPRESSION_ATTEMPTS = 10  # an expression whose head the neck cut refuses is drawn again


def training_identities(n, seed):
    """(n, 100) float32 identity weights of the training heads."""
    return _identity_stream(seed, _TRAIN_STREAM).standard_normal((n, N_IDENTITY)).astype(np.float32)


def test_identities(n, seed=0):
    """(n, 100) float32 identity weights of held-out heads, never among the training heads."""
    return _identity_stream(seed, _TEST_STREAM).standard_normal((n, N_IDENTITY)).astype(np.float32)


def make_dataset(n_identities, seed, n_surface, n_near, n_free, expressions_per_identity,
                 workers=2, progress=None):
    """The data set as a dict of arrays (see the module docstring); progress(fraction) per head."""
    identities = training_identities(n_identities, seed)
    jobs = [(seed, index, identities[index], n_surface, n_near, n_free, expressions_per_identity)
            for index in range(n_identities)]
    _init_worker()
    results = []
    if workers <= 1:
        for job in jobs:
            results.append(_sample_head(job))
            _report(progress, len(results), n_identities)
    else:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for result in pool.imap(_sample_head, jobs):
                results.append(result)
                _report(progress, len(results), n_identities)

    data = {key: np.stack([r[key] for r in results]) for key in
            ("surface", "normals", "near", "near_sdf", "free", "free_sdf", "keypoints")}
    data["identity_weights"] = identities
    data["exp_head"] = np.repeat(np.arange(n_identities, dtype=np.int32), expressions_per_identity)
    empty_shapes = {"weights": (0, 53), "canonical": (0, n_surface, 3), "observed": (0, n_surface, 3),
                    "near": (0, n_near, 3), "near_sdf": (0, n_near)}
    for key, empty_shape in empty_shapes.items():
        expressed = [e[key] for r in results for e in r["expressions"]]
        data["exp_" + key] = np.stack(expressed) if expressed else np.zeros(empty_shape, np.float32)
    data["expression_names"] = np.array(_head_data.expression_names)
    data["keypoint_names"] = np.array(_head_data.keypoint_names)
    data["seed"] = np.int64(seed)
    return data


def build_dataset(out_path, n_identities, seed, n_surface, n_near, n_free, expressions_per_identity,
                  workers=2, progress=None, anny_heads=0, flat_neck_cut=False, head_cache=None):
    """Build the data set and write it to out_path (npz, no pickled objects): n_identities ICT
    heads, and with flat_neck_cut the all-ages data set of n_identities ICT and anny_heads Anny heads."""
    if flat_neck_cut:
        data = make_all_ages_dataset(n_identities, anny_heads, seed, n_surface, n_near, n_free,
                                     expressions_per_identity, workers, progress, head_cache)
    elif anny_heads:
        raise ValueError("Anny heads have the flat neck cut: build them with flat_neck_cut, so that "
                         "every head ends in the same kind of neck")
    else:
        data = make_dataset(n_identities, seed, n_surface, n_near, n_free, expressions_per_identity,
                            workers, progress)
    np.savez(out_path, **data)
    return out_path


_head_data = None


def _init_worker():
    global _head_data
    if _head_data is None:
        _head_data = HeadData()


def _sample_head(job):
    seed, index, identity, n_surface, n_near, n_free, n_expressions = job
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SAMPLE_STREAM, index)))
    neutral = _head_data.head(identity)
    result = identity_samples(neutral, n_surface, n_near, n_free, rng)
    result["keypoints"] = _head_data.keypoints(neutral.vertices)
    expressions = []
    for _ in range(n_expressions):
        weights = _head_data.random_expression(rng)
        sample = expression_samples(neutral, _head_data.head(identity, weights), n_surface, n_near, rng)
        sample["weights"] = weights
        expressions.append(sample)
    result["expressions"] = expressions
    return result


def _identity_stream(seed, stream):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def _report(progress, done, total):
    if progress is not None:
        progress(done / total)


# ---- The all-ages data set: ICT and Anny heads, every one with the flat neck cut. ----

def _candidate_rng(seed, purpose, source, index):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(purpose, source, index)))


def ict_candidate(seed, index, held_out=False):
    """(100,) float32 identity weights of the ICT candidate `index` of the training stream (or
    of the held-out one: a disjoint stream, so never a training head)."""
    purpose = _HELD_OUT_STREAM if held_out else _CANDIDATE_STREAM
    return _candidate_rng(seed, purpose, ICT, index).standard_normal(N_IDENTITY).astype(np.float32)


def anny_candidate(anny_data, seed, index, held_out=False):
    """The AnnyIdentity of candidate `index` of Anny's training stream, or of its held-out one,
    whose age bands take turns (children, adults, the old: a third of them children)."""
    if held_out:
        from .anny_heads import AGE_BANDS_YEARS
        return anny_data.sample_identity(_candidate_rng(seed, _HELD_OUT_STREAM, ANNY, index),
                                         age_band=index % len(AGE_BANDS_YEARS))
    return anny_data.sample_identity(_candidate_rng(seed, _CANDIDATE_STREAM, ANNY, index))


def held_out_heads(source, n, seed=0, ict_data=None, anny_data=None):
    """The first n held-out heads of a source the neck cut accepts: list of (identity, Head);
    an ICT identity is its weights (100,), an Anny one its AnnyIdentity. ict_data is a
    HeadData(flat_neck_cut=True), anny_data an AnnyHeadData."""
    return accepted_heads(source, n, seed, ict_data, anny_data, held_out=True)


def accepted_heads(source, n, seed=0, ict_data=None, anny_data=None, held_out=False):
    """The first n heads of a source's training (or held-out) stream that the neck cut accepts,
    as held_out_heads: the training ones are the data set's rows of that source, in order."""
    heads, index = [], 0
    while len(heads) < n:
        try:
            if source == ICT:
                identity = ict_candidate(seed, index, held_out)
                heads.append((identity, ict_data.head(identity)))
            else:
                identity = anny_candidate(anny_data, seed, index, held_out)
                heads.append((identity, anny_data.head_and_keypoints(identity)[0]))
        except NeckCutError:
            pass
        index += 1
    return heads


@lru_cache(maxsize=1)
def data_version():
    """A digest of what a data set is made from: the data-building modules (model/data/*.py), every file
    of the data folder and the Anny release. It is part of every cache name, so that a changed builder
    or data file never reuses a stale cache (hashing the ~17 MB takes a few hundredths of a second)."""
    digest = hashlib.sha256()
    sources = sorted(Path(__file__).parent.glob("*.py")) + sorted(p for p in data_dir().rglob("*") if p.is_file())
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    try:
        digest.update(importlib.metadata.version("anny").encode())
    except importlib.metadata.PackageNotFoundError:
        digest.update(b"no anny")
    return digest.hexdigest()[:10]


def all_ages_settings(seed, n_surface, n_near, n_free, expressions_per_identity):
    """What a cached head depends on (not the counts: a larger build reuses a smaller one's heads)."""
    return {"format": ALL_AGES_FORMAT, "version": data_version(), "seed": seed, "surface": n_surface,
            "near": n_near, "free": n_free, "expressions": expressions_per_identity,
            "neck_cut_below_chin_m": NECK_CUT_BELOW_CHIN_M}


def head_cache_dir(settings, parent=None):
    """The folder of the cached heads of these settings, in parent (default: the project's cache)."""
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(parent or cache_dir()) / f"heads-{key}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "settings.json").write_text(json.dumps(settings, indent=1))
    return path


def make_all_ages_dataset(n_ict, n_anny, seed, n_surface, n_near, n_free, expressions_per_identity,
                          workers=2, progress=None, head_cache=None):
    """The all-ages data set as a dict of arrays (see the module docstring); progress(fraction) per head."""
    settings = all_ages_settings(seed, n_surface, n_near, n_free, expressions_per_identity)
    folder = head_cache_dir(settings, head_cache)
    accepted = {ICT: [], ANNY: []}
    wanted = {ICT: n_ict, ANNY: n_anny}
    next_candidate = {ICT: 0, ANNY: 0}
    done, total = 0, n_ict + n_anny
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        while any(len(accepted[s]) < wanted[s] for s in accepted):
            jobs = []
            for source in (ICT, ANNY):  # a few spare candidates, for those the neck cut refuses
                need = wanted[source] - len(accepted[source])
                count = need + math.ceil(0.03 * need) + (1 if need else 0)
                jobs += [(str(folder), settings, source, k) for k in range(next_candidate[source],
                                                                          next_candidate[source] + count)]
                next_candidate[source] += count
            results = pool.imap(_cached_head, jobs) if pool else map(_cached_head, jobs)
            for (_, _, source, index), ok in zip(jobs, results):
                if ok and len(accepted[source]) < wanted[source]:
                    accepted[source].append(index)
                    done += 1
                    if progress is not None:
                        progress(done / total)
    finally:
        if pool is not None:
            pool.terminate()
    return _stack_cached_heads(folder, accepted, settings)


def _stack_cached_heads(folder, accepted, settings):
    rows = [(ICT, k) for k in accepted[ICT]] + [(ANNY, k) for k in accepted[ANNY]]
    keys = ("surface", "normals", "near", "near_sdf", "free", "free_sdf", "keypoints")
    first = {}
    with np.load(folder / _head_file(*rows[0])) as head:
        for key in keys:
            first[key] = head[key]
    data = {key: np.empty((len(rows),) + first[key].shape, first[key].dtype) for key in keys}
    expressed = {k: [] for k in ("weights", "canonical", "observed", "near", "near_sdf")}
    exp_head, age, phenotypes, local_changes = [], [], [], []
    for row, (source, index) in enumerate(rows):
        with np.load(folder / _head_file(source, index)) as head:
            for key in keys:
                data[key][row] = head[key]
            for key in expressed:
                expressed[key].extend(head["exp_" + key])
            exp_head += [row] * len(head["exp_weights"])
            age.append(float(head["age_years"]))
            if source == ANNY:
                phenotypes.append(head["anny_phenotypes"])
                local_changes.append(json.loads(str(head["anny_local_changes"])))
    n_surface, n_near = settings["surface"], settings["near"]
    empty_shapes = {"weights": (0, 53), "canonical": (0, n_surface, 3), "observed": (0, n_surface, 3),
                    "near": (0, n_near, 3), "near_sdf": (0, n_near)}
    for key, values in expressed.items():
        data["exp_" + key] = np.stack(values) if values else np.zeros(empty_shapes[key], np.float32)
    data["exp_head"] = np.array(exp_head, np.int32)
    data["source"] = np.array([s for s, _ in rows], np.int8)
    data["source_names"] = np.array(SOURCE_NAMES)
    data["candidate"] = np.array([k for _, k in rows], np.int32)
    data["identity_weights"] = np.stack([ict_candidate(settings["seed"], k) for k in accepted[ICT]]) \
        if accepted[ICT] else np.zeros((0, N_IDENTITY), np.float32)
    data["age_years"] = np.array(age, np.float32)
    data["anny_phenotypes"] = np.array(phenotypes, np.float32).reshape(-1, len(ANNY_PHENOTYPES))
    data["anny_phenotype_names"] = np.array(ANNY_PHENOTYPES)
    data["anny_local_changes"] = np.array(json.dumps(local_changes))
    data["expression_names"] = np.array(_worker_data(ICT).expression_names)
    data["keypoint_names"] = np.array(_worker_data(ICT).keypoint_names)
    data["seed"] = np.int64(settings["seed"])
    return data


def _head_file(source, index):
    return f"{SOURCE_NAMES[source]}-{index:06d}.npz"


_worker_sources = {}


def _worker_data(source):
    """The source's head maker, loaded once per process (Anny's takes seconds and 1 GB)."""
    if source not in _worker_sources:
        if source == ICT:
            _worker_sources[source] = HeadData(flat_neck_cut=True)
        else:
            from .anny_heads import AnnyHeadData
            _worker_sources[source] = AnnyHeadData()
    return _worker_sources[source]


def _cached_head(job):
    """Make (or find) one candidate's cached samples; False when the neck cut refuses it."""
    folder, settings, source, index = job
    path = f"{folder}/{_head_file(source, index)}"
    refused = path + ".refused"
    if os.path.exists(path):
        return True
    if os.path.exists(refused):
        return False
    try:
        arrays = _all_ages_head(settings, source, index)
    except NeckCutError as error:
        with open(refused, "w") as f:
            f.write(str(error))
        return False
    partial = path + ".partial.npz"
    np.savez(partial, **arrays)
    os.replace(partial, path)
    return True


def _all_ages_head(settings, source, index):
    seed, n_surface, n_near, n_free = settings["seed"], settings["surface"], settings["near"], settings["free"]
    rng = _candidate_rng(seed, _CANDIDATE_SAMPLE_STREAM, source, index)
    data = _worker_data(source)
    expressions = []
    if source == ICT:
        identity = ict_candidate(seed, index)
        neutral = data.head(identity)
        result = identity_samples(neutral, n_surface, n_near, n_free, rng)
        result["keypoints"] = data.keypoints(data.vertices(identity))
        for _ in range(settings["expressions"]):
            for attempt in range(EXPRESSION_ATTEMPTS):
                weights = data.random_expression(rng)
                try:
                    pair = data.expression_pair(identity, weights)
                    break
                except NeckCutError:
                    if attempt == EXPRESSION_ATTEMPTS - 1:
                        raise
            sample = expression_samples(*pair, n_surface, n_near, rng)
            sample["weights"] = weights
            expressions.append(sample)
        result["age_years"] = np.float32(np.nan)
    else:
        identity = anny_candidate(data, seed, index)
        head, keypoints = data.head_and_keypoints(identity)
        result = identity_samples(head, n_surface, n_near, n_free, rng)
        result["keypoints"] = keypoints
        result["age_years"] = np.float32(identity.age_years)
        values = asdict(identity)
        result["anny_phenotypes"] = np.array([values[name] for name in ANNY_PHENOTYPES], np.float32)
        result["anny_local_changes"] = np.array(json.dumps(identity.local_changes))
    for key, shape in (("weights", (0, 53)), ("canonical", (0, n_surface, 3)), ("observed", (0, n_surface, 3)),
                       ("near", (0, n_near, 3)), ("near_sdf", (0, n_near))):
        result["exp_" + key] = np.stack([e[key] for e in expressions]) if expressions else np.zeros(shape, np.float32)
    return result


def dataset_path(data):
    """The cache file of the data set of these settings, made from this data_version()."""
    name = "heads_{heads}_s{seed}_{surface}_{near}_{free}_e{expressions}".format(**data)
    if data.get("flat_neck_cut") or data.get("anny_heads"):  # the all-ages data set
        name += "_anny{anny_heads}_flatneck".format(**data)
    return cache_dir() / f"{name}_v{data_version()}.npz"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="npz to write (default: the cache file model.training.train reads for these settings)")
    parser.add_argument("--heads", type=int, default=300, help="ICT heads")
    parser.add_argument("--anny-heads", type=int, default=0, help="Anny heads (needs --flat-neck-cut)")
    parser.add_argument("--flat-neck-cut", action="store_true", help="the all-ages data set's neck (model/data/neck.py)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--surface", type=int, default=16384)
    parser.add_argument("--near", type=int, default=16384)
    parser.add_argument("--free", type=int, default=4096)
    parser.add_argument("--expressions", type=int, default=2, help="expressed heads per ICT identity")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    settings = {"heads": args.heads, "anny_heads": args.anny_heads, "flat_neck_cut": args.flat_neck_cut,
                "seed": args.seed, "surface": args.surface, "near": args.near, "free": args.free,
                "expressions": args.expressions}
    out = args.out or str(dataset_path(settings))
    if os.path.exists(out) and args.out is None:
        print(f"{out} is already built for these settings")
        return
    start = time.perf_counter()
    partial = out.removesuffix(".npz") + ".partial.npz"
    build_dataset(partial, args.heads, args.seed, args.surface, args.near, args.free, args.expressions,
                  args.workers, progress_bar(args.heads + args.anny_heads, "heads"), args.anny_heads, args.flat_neck_cut)
    os.replace(partial, out)
    print(f"wrote {out} ({os.path.getsize(out) / 1e9:.2f} GB) in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
