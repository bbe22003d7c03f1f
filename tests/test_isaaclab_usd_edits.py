"""The USD edits Newton's importer depends on, checked with UsdPhysics' own parser on a stage shaped like the
``isaaclab-so101`` asset: each link's colliders sit in an instanced ``collisions`` Xform that carries the
CollisionAPI, which UsdPhysics ignores ("CollisionAPI applied to an unknown UsdGeomGPrim type")."""

from __future__ import annotations

import pytest

pxr = pytest.importorskip("pxr", reason="usd-core is not installed")
from pxr import Sdf, Usd, UsdGeom, UsdPhysics  # noqa: E402

from leisaac_tasks.isaaclab.usd_edits import author_contact, author_hull_colliders  # noqa: E402

ROOT = "/World/Robot"
PARTS = {"wrist": ("motor", "bracket"), "jaw": ("moving_jaw",), "base": ("plate",)}


def _so101_like_stage() -> Usd.Stage:
    stage = Usd.Stage.CreateInMemory()
    UsdPhysics.Scene.Define(stage, "/physicsScene")
    for link, parts in PARTS.items():
        proto = f"/colliders/{link}"
        group = UsdGeom.Xform.Define(stage, proto).GetPrim()
        UsdPhysics.CollisionAPI.Apply(group)
        UsdPhysics.MeshCollisionAPI.Apply(group).CreateApproximationAttr().Set("sdf")
        for part in parts:
            mesh = UsdGeom.Mesh.Define(stage, f"{proto}/{part}/mesh")
            mesh.CreatePointsAttr([(0, 0, 0), (0.01, 0, 0), (0, 0.01, 0), (0, 0, 0.01)])
            mesh.CreateFaceVertexCountsAttr([3, 3, 3, 3])
            mesh.CreateFaceVertexIndicesAttr([0, 2, 1, 0, 1, 3, 0, 3, 2, 1, 2, 3])
        body = UsdGeom.Xform.Define(stage, f"{ROOT}/{link}").GetPrim()
        UsdPhysics.RigidBodyAPI.Apply(body)
        inst = UsdGeom.Xform.Define(stage, f"{ROOT}/{link}/collisions").GetPrim()
        inst.GetReferences().AddInternalReference(proto)
        inst.SetInstanceable(True)
    stage.GetPrimAtPath("/colliders").SetActive(False)  # prototypes only, as in the asset
    return stage


def _parsed_mesh_colliders(stage: Usd.Stage) -> set[str]:
    load = getattr(UsdPhysics, "UsdPhysicsLoadStageFromPrimRange", None) or UsdPhysics.LoadUsdPhysicsFromRange
    parsed = load(stage, [ROOT])
    shapes = set()
    for kind, (paths, _) in parsed.items():
        if kind == UsdPhysics.ObjectType.MeshShape:
            shapes.update(str(p) for p in paths)
    return shapes


def test_the_unedited_asset_has_no_colliders_newton_can_read():
    assert _parsed_mesh_colliders(_so101_like_stage()) == set()


def test_listed_parts_become_convex_hull_mesh_colliders_and_nothing_else():
    stage = _so101_like_stage()
    made = author_hull_colliders(stage, ROOT, (("wrist", "motor"), ("wrist", "bracket"), ("jaw", "moving_jaw")))
    assert made == 3
    expected = {f"{ROOT}/wrist/collisions/motor/mesh", f"{ROOT}/wrist/collisions/bracket/mesh",
                f"{ROOT}/jaw/collisions/moving_jaw/mesh"}
    assert _parsed_mesh_colliders(stage) == expected
    for path in expected:
        assert UsdPhysics.MeshCollisionAPI(stage.GetPrimAtPath(path)).GetApproximationAttr().Get() == "convexHull"
    for link in PARTS:  # no group keeps the API, so the importer warns about none
        assert not stage.GetPrimAtPath(f"{ROOT}/{link}/collisions").HasAPI(UsdPhysics.CollisionAPI)


def test_contact_attributes_land_on_the_new_colliders():
    stage = _so101_like_stage()
    author_hull_colliders(stage, ROOT, (("jaw", "moving_jaw"),))
    author_contact(stage, f"{ROOT}/jaw", 4, (0.005, 1.0), (0.95, 0.99, 0.001, 0.5, 2.0))
    mesh = stage.GetPrimAtPath(f"{ROOT}/jaw/collisions/moving_jaw/mesh")
    assert mesh.GetAttribute("mjc:condim").Get() == 4
    assert list(mesh.GetAttribute("mjc:solref").Get()) == [0.005, 1.0]
    assert stage.GetPrimAtPath(f"{ROOT}/wrist/collisions/motor/mesh").GetAttribute("mjc:solref").Get() is None
