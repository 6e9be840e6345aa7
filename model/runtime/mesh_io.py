"""Mesh and point files: meshes written as OBJ, PLY or glTF by their file's extension (meshing's
SurfaceMesh, with vertex normals; glTF also with morph targets), and scans read as points with optional
normals (.ply, .obj or .npy), for fitting. The coordinates are written as given (frame.model_to_file
turns the model frame into the files' frame)."""
import base64
import json
import struct
from pathlib import Path

import numpy as np

from .errors import ImHeadError
from .frame import model_directions_to_file, model_to_file
from .meshing import SurfaceMesh


def in_file_frame(mesh):
    """A model-frame SurfaceMesh in the frame mesh files are written in (frame.model_to_file)."""
    return SurfaceMesh(model_to_file(mesh.vertices), mesh.faces, model_directions_to_file(mesh.normals))


def mesh_writer(path):
    """The function that writes a mesh to `path`, chosen by its extension; ImHeadError for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in MESH_WRITERS:
        raise ImHeadError(f"{path}: cannot write {suffix or 'extension-less'} mesh files; use "
                          f"{', '.join(MESH_WRITERS)}")
    return MESH_WRITERS[suffix]


def write_mesh(path, mesh):
    """Writes the mesh as OBJ, PLY, glb or glTF, as the file's extension says."""
    mesh_writer(path)(path, mesh)


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


def write_gltf(path, mesh, targets=None, target_names=()):
    """Writes the mesh as glTF 2.0: binary (.glb) or JSON with the data inline (.gltf). targets: optional
    (T, N, 3) vertex positions of morph targets (shape keys), named by target_names (the mesh's
    extras.targetNames, which Blender's importer and most tools read)."""
    vertices = np.ascontiguousarray(mesh.vertices, "<f4")
    arrays = [(vertices, "VEC3", 5126, 34962), (np.ascontiguousarray(mesh.normals, "<f4"), "VEC3", 5126, 34962),
              (np.ascontiguousarray(mesh.faces, "<u4").reshape(-1), "SCALAR", 5125, 34963)]
    targets = [] if targets is None else list(targets)
    if len(targets) != len(target_names):
        raise ValueError(f"{len(targets)} morph targets, {len(target_names)} names")
    # A morph target holds displacements from the base positions.
    arrays += [(np.ascontiguousarray(np.asarray(t, np.float32) - vertices, "<f4"), "VEC3", 5126, 34962)
               for t in targets]
    blob, views, accessors = bytearray(), [], []
    for index, (array, kind, component, target) in enumerate(arrays):
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": array.nbytes, "target": target})
        accessor = {"bufferView": index, "componentType": component, "type": kind,
                    "count": len(array) if kind == "VEC3" else array.size}
        if index == 0 or index >= 3:  # positions (and their displacements) must say their bounds
            accessor["min"] = array.min(0).tolist() if len(array) else [0.0] * 3
            accessor["max"] = array.max(0).tolist() if len(array) else [0.0] * 3
        accessors.append(accessor)
        blob += array.tobytes()
        blob += bytes(-len(blob) % 4)
    primitive = {"attributes": {"POSITION": 0, "NORMAL": 1}, "indices": 2, "mode": 4}
    gltf_mesh = {"name": Path(path).stem, "primitives": [primitive]}
    if targets:
        primitive["targets"] = [{"POSITION": 3 + i} for i in range(len(targets))]
        gltf_mesh["weights"] = [0.0] * len(targets)
        gltf_mesh["extras"] = {"targetNames": list(target_names)}
    document = {"asset": {"version": "2.0", "generator": "imHead"}, "scene": 0, "scenes": [{"nodes": [0]}],
                "nodes": [{"name": Path(path).stem, "mesh": 0}], "meshes": [gltf_mesh],
                "buffers": [{"byteLength": len(blob)}], "bufferViews": views, "accessors": accessors}
    if Path(path).suffix.lower() == ".gltf":
        document["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
        Path(path).write_text(json.dumps(document))
        return
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    with open(path, "wb") as file:
        file.write(struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(text) + 8 + len(blob)))
        file.write(struct.pack("<I4s", len(text), b"JSON") + text)
        file.write(struct.pack("<I4s", len(blob), b"BIN\0") + bytes(blob))


MESH_WRITERS = {".obj": write_obj, ".ply": write_ply, ".glb": write_gltf, ".gltf": write_gltf}


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
