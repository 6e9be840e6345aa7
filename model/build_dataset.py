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
  keypoints (H, 39, 3)        the keypoints of model/keypoints.json on each head
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

    python -m model.build_dataset --out .cache/heads300.npz --heads 300
"""
import argparse
import multiprocessing
import time

import numpy as np

from .data_paths import cache_dir
from .heads import N_IDENTITY, HeadData
from .samples import expression_samples, identity_samples

_TRAIN_STREAM, _TEST_STREAM, _SAMPLE_STREAM = 0, 1, 2


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
                  workers=2, progress=None):
    """Build the data set and write it to out_path (npz, no pickled objects)."""
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(cache_dir() / "heads.npz"))
    parser.add_argument("--heads", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--surface", type=int, default=16384)
    parser.add_argument("--near", type=int, default=16384)
    parser.add_argument("--free", type=int, default=4096)
    parser.add_argument("--expressions", type=int, default=2, help="expressed heads per identity")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    start = time.perf_counter()

    def progress(fraction):
        print(f"\r{fraction:6.1%}  {time.perf_counter() - start:6.1f} s", end="", flush=True)

    build_dataset(args.out, args.heads, args.seed, args.surface, args.near, args.free,
                  args.expressions, args.workers, progress)
    print(f"\nwrote {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
