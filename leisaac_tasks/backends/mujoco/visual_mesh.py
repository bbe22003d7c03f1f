"""Light copies of the robot's visual meshes, for software rendering on a CPU.

The SO-101 STLs carry ~320k triangles, detail finer than a pixel of a 224² camera; drawing them is most of
the cost of a frame under Mesa's llvmpipe. Vertex clustering on a grid of ``cell`` metres merges that detail
away. Only visual geoms get the light copies: collision geoms keep the shipped meshes, so physics is unchanged.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import mujoco
import numpy as np

DEFAULT_CELL_M = 0.001  # about half a pixel of the front camera at 224² (~1.9 mm/px on the table)


def read_binary_stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (n, 3) and triangle indices (m, 3) of a binary STL, vertices deduplicated."""
    raw = path.read_bytes()
    count = int(np.frombuffer(raw, dtype="<u4", count=1, offset=80)[0])
    record = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    tris = np.frombuffer(raw, dtype=record, count=count, offset=84)["v"].reshape(-1, 3).astype(np.float64)
    verts, index = np.unique(tris, axis=0, return_inverse=True)
    return verts, index.reshape(-1, 3)


def cluster(verts: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Snap vertices to a grid, merge each cell to its mean, drop triangles that collapse."""
    keys = np.floor(verts / cell).astype(np.int64)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    counts = np.bincount(group)
    merged = np.stack([np.bincount(group, weights=verts[:, k]) for k in range(3)], axis=1) / counts[:, None]
    tri = group[faces]
    tri = tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])]
    _, first = np.unique(np.sort(tri, axis=1), axis=0, return_index=True)  # one copy of each merged triangle
    return merged, tri[np.sort(first)]


@lru_cache(maxsize=64)
def light_mesh(path: Path, scale: tuple[float, float, float], cell: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The clustered copy of one STL (vertices, faces, the STL's own face count), made once per process: every
    env of a worker builds the same robot, and reading and merging the STLs (~0.6 s a robot) was most of an
    env's build time."""
    verts, faces = read_binary_stl(path)
    v, f = cluster(verts * np.asarray(scale), faces, cell)
    v.setflags(write=False)
    f.setflags(write=False)
    return v, f, len(faces)


def lighten_visual_meshes(world: mujoco.MjSpec, mjcf_dir: Path, cell: float = DEFAULT_CELL_M) -> int:
    """Point every non-colliding mesh geom at a clustered copy of its mesh; returns triangles saved."""
    # An unnamed mesh takes its file's stem at compile time; MuJoCo 3.12's spec still holds the empty name.
    meshes = {m.name or Path(m.file).stem: m for m in world.meshes}
    light: dict[str, str] = {}
    saved = 0
    for geom in world.geoms:
        if geom.type != mujoco.mjtGeom.mjGEOM_MESH or geom.contype or geom.conaffinity or geom.meshname not in meshes:
            continue
        if geom.meshname not in light:
            mesh = meshes[geom.meshname]
            path = mjcf_dir / world.meshdir / mesh.file
            if path.suffix.lower() != ".stl":
                continue
            v, f, shipped = light_mesh(path, tuple(float(x) for x in mesh.scale), cell)
            name = f"{geom.meshname}_light"
            world.add_mesh(name=name, uservert=v.ravel().tolist(), userface=f.ravel().tolist())
            light[geom.meshname] = name
            saved += shipped - len(f)
        geom.meshname = light[geom.meshname]
    return saved
