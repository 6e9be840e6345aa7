"""Mesh and point files: OBJ and PLY meshes written (meshing's SurfaceMesh, with vertex normals), and
scans read as points with optional normals (.ply, .obj or .npy), for fitting."""
from pathlib import Path

import numpy as np

from .errors import ImHeadError


def write_obj(path, mesh):
    """Writes the mesh as a Wavefront OBJ with vertex normals (1-based indices)."""
    vertex_lines = ("v %.6f %.6f %.6f\n" * len(mesh.vertices)) % tuple(mesh.vertices.reshape(-1).tolist())
    normal_lines = ("vn %.6f %.6f %.6f\n" * len(mesh.normals)) % tuple(mesh.normals.reshape(-1).tolist())
    face_lines = ("f %d//%d %d//%d %d//%d\n" * len(mesh.faces)) % tuple(
        np.repeat(mesh.faces.reshape(-1) + 1, 2).tolist())
    with open(path, "w", encoding="ascii") as file:
        file.write(vertex_lines)
        file.write(normal_lines)
        file.write(face_lines)


def write_ply(path, mesh):
    """Writes the mesh as a binary little-endian PLY with vertex normals."""
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(mesh.vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        f"element face {len(mesh.faces)}\n"
        "property list uchar int vertex_indices\nend_header\n"
    )
    vertex_rows = np.concatenate([mesh.vertices, mesh.normals], axis=1).astype("<f4")
    face_rows = np.zeros(len(mesh.faces), dtype=[("count", "u1"), ("index", "<i4", (3,))])
    face_rows["count"] = 3
    face_rows["index"] = mesh.faces
    with open(path, "wb") as file:
        file.write(header.encode("ascii"))
        file.write(vertex_rows.tobytes())
        file.write(face_rows.tobytes())


def read_points(path):
    """Points (N, 3) and normals (N, 3) or None from a .ply, .obj or .npy file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ImHeadError(f"{path}: no such file")
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.ndim != 2 or array.shape[1] not in (3, 6):
            raise ImHeadError(f"{path}: expected an array of shape (N, 3) or (N, 6), got {array.shape}")
        return array[:, :3], (array[:, 3:] if array.shape[1] == 6 else None)
    if suffix == ".obj":
        return read_obj_vertices(path), None
    if suffix == ".ply":
        return read_ply_vertices(path)
    raise ImHeadError(f"{path}: cannot read {suffix or 'extension-less'} files; use .ply, .obj or .npy")


def read_obj_vertices(path):
    """The `v` lines of a Wavefront OBJ as (N, 3) float64 (colours after x y z are ignored)."""
    with open(path, "r", encoding="utf-8", errors="replace") as file:
        rows = [line.split()[1:4] for line in file if line.startswith("v ")]
    try:
        return np.array(rows, dtype=np.float64).reshape(-1, 3)
    except ValueError as exc:
        raise ImHeadError(f"{path}: unreadable vertex line: {exc}") from exc


PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
             "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
             "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def read_ply_vertices(path):
    """Vertex positions (N, 3) and normals (N, 3) or None of an ASCII or binary PLY file."""
    with open(path, "rb") as file:
        if file.readline().strip() != b"ply":
            raise ImHeadError(f"{path}: not a PLY file")
        fmt, elements = None, []
        while True:
            line = file.readline()
            if not line:
                raise ImHeadError(f"{path}: the PLY header has no end_header")
            words = line.decode("ascii", errors="replace").split()
            if not words:
                continue
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append((words[1], int(words[2]), []))
            elif words[0] == "property" and elements:
                elements[-1][2].append(words[1:])
            elif words[0] == "end_header":
                break
        names = [name for name, _, _ in elements]
        if "vertex" not in names:
            raise ImHeadError(f"{path}: the PLY file has no vertex element")
        if names.index("vertex") != 0:
            raise ImHeadError(f"{path}: the PLY file's vertices must come first")
        _, count, properties = elements[0]
        if any(p[0] == "list" for p in properties):
            raise ImHeadError(f"{path}: PLY vertices with list properties are not supported")
        columns = [p[1] for p in properties]
        if not {"x", "y", "z"} <= set(columns):
            raise ImHeadError(f"{path}: the PLY vertices have no x, y, z")
        if fmt == "ascii":
            table = np.loadtxt(file, dtype=np.float64, max_rows=count, ndmin=2)
            if table.shape != (count, len(columns)):
                raise ImHeadError(f"{path}: expected {count} vertex rows of {len(columns)} values")
            column = {name: table[:, i] for i, name in enumerate(columns)}
        elif fmt in ("binary_little_endian", "binary_big_endian"):
            order = "<" if fmt == "binary_little_endian" else ">"
            try:
                dtype = np.dtype([(name, order + PLY_TYPES[kind]) for kind, name in properties])
            except KeyError as exc:
                raise ImHeadError(f"{path}: unknown PLY property type {exc}") from exc
            data = file.read(dtype.itemsize * count)
            if len(data) < dtype.itemsize * count:
                raise ImHeadError(f"{path}: the PLY file is truncated")
            table = np.frombuffer(data, dtype=dtype, count=count)
            column = {name: table[name].astype(np.float64) for name in columns}
        else:
            raise ImHeadError(f"{path}: unknown PLY format {fmt!r}")
    points = np.stack([column["x"], column["y"], column["z"]], axis=1)
    normals = None
    if {"nx", "ny", "nz"} <= set(columns):
        normals = np.stack([column["nx"], column["ny"], column["nz"]], axis=1)
    return points, normals
