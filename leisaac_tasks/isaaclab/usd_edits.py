"""Edits to the spawned USD stage that Newton's importer reads: MuJoCo contact attributes and robot colliders.

Only ``pxr`` is needed (``usd-core`` gives it on any Python), so these run without Isaac Lab.
"""

from __future__ import annotations


def author_contact(stage, root_path: str, condim: int, solref: tuple | None, solimp: tuple | None) -> None:
    """MuJoCo contact attributes on every collider under ``root_path`` (Newton's MJWarp solver reads ``mjc:condim``,
    ``mjc:solref`` and ``mjc:solimp``; an authored solref is used as is)."""
    from pxr import Sdf, Usd, UsdPhysics, Vt

    root = stage.GetPrimAtPath(root_path)
    if not root:
        return
    for prim in Usd.PrimRange(root):
        if not prim.HasAPI(UsdPhysics.CollisionAPI):
            continue
        if condim != 3:
            prim.CreateAttribute("mjc:condim", Sdf.ValueTypeNames.Int).Set(int(condim))
        if solref is not None:
            prim.CreateAttribute("mjc:solref", Sdf.ValueTypeNames.DoubleArray).Set(Vt.DoubleArray(list(solref)))
        if solimp is not None:
            prim.CreateAttribute("mjc:solimp", Sdf.ValueTypeNames.DoubleArray).Set(Vt.DoubleArray(list(solimp)))


def author_hull_colliders(stage, root_path: str, parts: tuple[tuple[str, str], ...]) -> int:
    """Make each (link, part) mesh of the robot a convex-hull collider, as the MJCF's mesh geoms are in MuJoCo.

    The USD puts CollisionAPI on each link's instanced ``collisions`` Xform; UsdPhysics only accepts it on a
    geometry prim, so Newton skips them all. Every such Xform is de-instanced (its meshes become editable) and
    loses the API; the listed meshes get it with a convexHull approximation. Returns how many meshes collide.
    """
    from pxr import Usd, UsdGeom, UsdPhysics

    wanted: dict[str, set[str]] = {}
    for link, part in parts:
        wanted.setdefault(link, set()).add(part)
    made = 0
    for link in stage.GetPrimAtPath(root_path).GetChildren():
        group = link.GetChild("collisions")
        if not group or not group.HasAPI(UsdPhysics.CollisionAPI):
            continue
        group.SetInstanceable(False)
        group.RemoveAPI(UsdPhysics.MeshCollisionAPI)
        group.RemoveAPI(UsdPhysics.CollisionAPI)
        for part in group.GetChildren():
            if part.GetName() not in wanted.get(link.GetName(), ()):
                continue
            for prim in Usd.PrimRange(part):
                if prim.IsA(UsdGeom.Mesh):
                    UsdPhysics.CollisionAPI.Apply(prim)
                    UsdPhysics.MeshCollisionAPI.Apply(prim).CreateApproximationAttr().Set("convexHull")
                    made += 1
    return made
