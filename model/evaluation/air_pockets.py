"""Air closed off inside the training heads themselves: where a model meshed at Final grows stray pieces.

The exact signed distance of a training head (model.data.samples.signed_distance) is taken on the Final
lattice (256 cells across the model's head box, about 1.5 mm) in a box around each eyeball and one
around the mouth and the whole mouth socket behind it. Outside points (positive distance) that no path
through outside lattice points joins to the box's border are a pocket: air the lattice sees as
enclosed, which a model that learns this surface meshes as a piece of its own.

    python -m model.evaluation.air_pockets [--ict 20] [--anny 20]

Prints one markdown row per head (pockets and their volume in mm^3 at the eyes and at the mouth) and
the totals per source.
"""
import argparse

import numpy as np
from scipy import ndimage

from ..data.build_dataset import ANNY, ICT, held_out_heads
from ..data.heads import SKIN, HeadData, fit_sphere
from ..data.samples import signed_distance
from ..runtime.frame import MM
from ..runtime.head_model import HEAD_BOUNDS
from ..runtime.meshing import Grid

FINAL_RESOLUTION = 256
EYE_BOX_HALF = 25 * MM
# Around the lips' midpoint: ICT's mouth socket reaches 108 mm behind the lips (+Y: the face looks toward
# -Y), 35 mm to either side, 24 mm down and 30 mm up; the box stays below the eye boxes.
MOUTH_BOX = (np.array([-45, -20, -35]) * MM, np.array([45, 120, 35]) * MM)


def pockets(head, lo, hi, grid=None):
    """Volumes (mm^3, largest first) of the enclosed air pockets of head's exact surface among the
    lattice points of grid (default: the Final lattice) in the box from corner lo to corner hi."""
    grid = grid or Grid(FINAL_RESOLUTION, HEAD_BOUNDS)
    first = np.ceil((np.asarray(lo) - grid.origin) / grid.voxel).astype(int)
    last = np.floor((np.asarray(hi) - grid.origin) / grid.voxel).astype(int)
    axes = [grid.origin[i] + grid.voxel * np.arange(first[i], last[i] + 1) for i in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    outside = signed_distance(head, points.reshape(-1, 3)).reshape(points.shape[:3]) > 0
    labels, count = ndimage.label(outside)
    border = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(),
                                       labels[:, :, [0, -1]].ravel()]))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    enclosed = np.setdiff1d(np.arange(1, count + 1), border)
    voxel_mm3 = (grid.voxel / MM) ** 3
    return sorted((float(sizes[label] * voxel_mm3) for label in enclosed), reverse=True)


def eye_centres(head):
    """The fitted centre of each eyeball shell of a head."""
    return [fit_sphere(head.vertices[np.unique(head.faces[head.face_component == shell])].astype(np.float64))[0]
            for shell in np.unique(head.face_component[head.face_component != SKIN])]


def head_pockets(head, keypoints, keypoint_names):
    """{"eyes": volumes, "mouth": volumes} of one head (pockets)."""
    eyes = [volume for centre in eye_centres(head)
            for volume in pockets(head, centre - EYE_BOX_HALF, centre + EYE_BOX_HALF)]
    lips = keypoints[[keypoint_names.index("lip_upper"), keypoint_names.index("lip_lower")]].mean(axis=0)
    return {"eyes": sorted(eyes, reverse=True), "mouth": pockets(head, lips + MOUTH_BOX[0], lips + MOUTH_BOX[1])}


def survey(n_ict, n_anny):
    """(source name, index, head_pockets) of the first held-out all-ages heads of each source."""
    ict = HeadData(flat_neck_cut=True)
    for index, (identity, head) in enumerate(held_out_heads(ICT, n_ict, ict_data=ict)):
        yield "ict", index, head_pockets(head, ict.keypoints(ict.vertices(identity)), ict.keypoint_names)
    if n_anny:
        from ..data.anny_heads import AnnyHeadData
        anny = AnnyHeadData()
        for index, (identity, _) in enumerate(held_out_heads(ANNY, n_anny, anny_data=anny)):
            head, keypoints = anny.head_and_keypoints(identity)
            yield "anny", index, head_pockets(head, keypoints, anny.keypoint_names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ict", type=int, default=20, help="held-out ICT heads (default 20)")
    parser.add_argument("--anny", type=int, default=20, help="held-out Anny heads (default 20)")
    args = parser.parse_args(argv)
    print("| head | eye pockets | eye air mm^3 | mouth pockets | mouth air mm^3 |\n|---|---|---|---|---|")
    totals = {}
    for source, index, found in survey(args.ict, args.anny):
        eyes, mouth = found["eyes"], found["mouth"]
        print(f"| {source} {index} | {len(eyes)} | {sum(eyes):.0f} | {len(mouth)} | {sum(mouth):.0f} |", flush=True)
        total = totals.setdefault(source, [0, 0, 0, 0])
        total[0] += 1
        total[1] += not eyes and not mouth
        total[2] += bool(eyes)
        total[3] += bool(mouth)
    for source, (heads, clean, with_eye, with_mouth) in totals.items():
        print(f"{source}: {heads} heads, {clean} without a pocket, {with_eye} with eye pockets, "
              f"{with_mouth} with a mouth pocket")


if __name__ == "__main__":
    main()
