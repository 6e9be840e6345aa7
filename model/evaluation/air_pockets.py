"""Air closed off inside the training heads themselves: where a model meshed at Final grows stray pieces.

A training head's inside and outside (the winding number of the union of its closed components, as
model.data.samples signs its distances) is taken on the Final lattice: 256 cells across the model's head
box (model.runtime.head_model.HEAD_BOUNDS), about 1.5 mm. Outside points that no path through outside
lattice points joins to the lattice's border are a pocket: air the lattice sees as enclosed, which a
model that learns this surface meshes as a piece of its own. Each pocket is placed by the region of the
head's keypoint nearest to its centre.

    python -m model.evaluation.air_pockets [--ict 20] [--anny 20]

Prints one markdown row per held-out head (its pockets by region, with their air in mm^3) and, per
source, the heads without a pocket and the pockets by region.
"""
import argparse
from collections import Counter

import igl
import numpy as np
from scipy import ndimage

from ..data.build_dataset import ANNY, ICT, held_out_heads
from ..data.heads import HeadData
from ..runtime.frame import MM
from ..runtime.head_model import HEAD_BOUNDS
from ..runtime.meshing import Grid

FINAL_RESOLUTION = 256


def pockets(head, keypoints, keypoint_regions):
    """[(air in mm^3, region of the nearest keypoint)] of the enclosed pockets of a head on the Final
    lattice, largest first; keypoint_regions: the region of each of the (K, 3) keypoints."""
    grid = Grid(FINAL_RESOLUTION, HEAD_BOUNDS)
    axes = [grid.origin[i] + grid.voxel * np.arange(grid.cells[i] + 1) for i in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    winding = igl.fast_winding_number(head.vertices.astype(np.float64), head.faces, points.reshape(-1, 3))
    labels, count = ndimage.label(winding.reshape(points.shape[:3]) < 0.5)
    border = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(),
                                       labels[:, :, [0, -1]].ravel()]))
    enclosed = np.setdiff1d(np.arange(1, count + 1), border)
    sizes = ndimage.sum_labels(np.ones(labels.shape), labels, enclosed)
    centres = np.reshape(ndimage.center_of_mass(np.ones(labels.shape), labels, enclosed), (-1, 3))
    centres = grid.origin + grid.voxel * centres
    nearest = np.linalg.norm(centres[:, None] - keypoints[None], axis=2).argmin(axis=1)
    voxel_mm3 = (grid.voxel / MM) ** 3
    found = [(float(size * voxel_mm3), keypoint_regions[k]) for size, k in zip(sizes, nearest)]
    return sorted(found, reverse=True)


def survey(n_ict, n_anny):
    """(source name, index, pockets) of the first held-out all-ages heads of each source."""
    ict = HeadData(flat_neck_cut=True)
    regions = keypoint_regions(ict)
    for index, (identity, head) in enumerate(held_out_heads(ICT, n_ict, ict_data=ict)):
        yield "ict", index, pockets(head, ict.keypoints(ict.vertices(identity)), regions)
    if n_anny:
        from ..data.anny_heads import AnnyHeadData
        anny = AnnyHeadData()
        for index, (identity, _) in enumerate(held_out_heads(ANNY, n_anny, anny_data=anny)):
            head, keypoints = anny.head_and_keypoints(identity)
            yield "anny", index, pockets(head, keypoints, regions)


def keypoint_regions(data):
    """The region of each keypoint, in the keypoints' order (the same 39 on every source)."""
    region_of = {index: region for region, members in data.regions.items() for index in members}
    return [region_of[index] for index in range(len(data.keypoint_names))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ict", type=int, default=20, help="held-out ICT heads (default 20)")
    parser.add_argument("--anny", type=int, default=20, help="held-out Anny heads (default 20)")
    args = parser.parse_args(argv)
    print("| head | pockets | air mm^3 | by region |\n|---|---|---|---|")
    heads, clean, by_region = Counter(), Counter(), {}
    for source, index, found in survey(args.ict, args.anny):
        regions = Counter(region for _, region in found)
        shown = ", ".join(f"{region} {n}" for region, n in regions.most_common())
        print(f"| {source} {index} | {len(found)} | {sum(air for air, _ in found):.0f} | {shown} |", flush=True)
        heads[source] += 1
        clean[source] += not found
        by_region.setdefault(source, Counter()).update(regions)
    for source in heads:
        shown = ", ".join(f"{region} {n}" for region, n in by_region[source].most_common()) or "none"
        print(f"{source}: {heads[source]} heads, {clean[source]} without a pocket; pockets by region: {shown}")


if __name__ == "__main__":
    main()
