import numpy as np
import pytest

from leisaac_tasks.outcomes import (PICKED, EpisodeOutcome, IngredientTrack, Outcome, OutcomeThresholds, PlateRegion,
                                    classify, episode_outcome)

PLATE = PlateRegion((0.2, -0.1), radius=0.075, top_z=0.008)
UPRIGHT = np.array([0.16, 0.11, 0.036, 1, 0, 0, 0], dtype=float)
FLAT_ON_PLATE = np.array([0.21, -0.09, 0.013, np.cos(np.pi / 4), 0, np.sin(np.pi / 4), 0])


def track(*poses):
    t = IngredientTrack.begin(poses[0], rest_half_height=0.0275)
    for p in poses[1:]:
        t.update(np.asarray(p, float))
    return t


def lifted(pose, dz=0.06):
    p = np.array(pose, float)
    p[2] += dz
    return p


def test_untouched_and_small_jiggle():
    assert classify(track(UPRIGHT, UPRIGHT + [0.002, 0, 0, 0, 0, 0, 0]), PLATE) == Outcome.UNTOUCHED


def test_pushed_or_tipped_is_moved():
    assert classify(track(UPRIGHT, UPRIGHT + [0.03, 0, 0, 0, 0, 0, 0]), PLATE) == Outcome.MOVED
    tipped = np.array([*UPRIGHT[:3], np.cos(0.3), np.sin(0.3), 0, 0])
    assert classify(track(UPRIGHT, tipped), PLATE) == Outcome.MOVED


def test_lifted_then_placed_on_plate():
    assert classify(track(UPRIGHT, lifted(UPRIGHT), lifted(FLAT_ON_PLATE, 0.05), FLAT_ON_PLATE), PLATE) == Outcome.ON_PLATE


def test_lifted_and_still_held():
    assert classify(track(UPRIGHT, lifted(UPRIGHT)), PLATE) == Outcome.LIFTED


def test_lifted_and_dropped_on_table():
    on_table = np.array([0.3, 0.2, 0.007, *FLAT_ON_PLATE[3:]])
    assert classify(track(UPRIGHT, lifted(UPRIGHT), on_table), PLATE) == Outcome.DROPPED


def test_slice_already_on_plate_left_alone_is_untouched():
    assert classify(track(FLAT_ON_PLATE, FLAT_ON_PLATE), PLATE) == Outcome.UNTOUCHED


def test_episode_behaviour_labels():
    placed = track(UPRIGHT, lifted(UPRIGHT), FLAT_ON_PLATE)
    still = track(UPRIGHT, UPRIGHT)
    assert episode_outcome({"cheese": placed, "bread": still}, PLATE).behaviour == "picked_cheese"
    assert episode_outcome({"cheese": None, "bread": placed}, PLATE).behaviour == "picked_bread"
    assert episode_outcome({"cheese": None, "bread": None}, PLATE).behaviour == "none"
    out = episode_outcome({"cheese": still, "bread": None}, PLATE)
    assert out.per_ingredient == {"cheese": Outcome.UNTOUCHED, "bread": Outcome.ABSENT}
    assert out.label == "cheese=untouched,bread=absent"
    assert EpisodeOutcome({"cheese": Outcome.MOVED, "bread": Outcome.ABSENT}).behaviour == "disturbed"
    assert EpisodeOutcome({"cheese": Outcome.DROPPED, "bread": Outcome.ON_PLATE}).behaviour == "picked_both"


@pytest.mark.parametrize("bad", ["grab cheese", "place", "none cheese"])
def test_intent_parse_rejects_bad_text(bad):
    from leisaac_tasks.intent import Intent

    with pytest.raises(ValueError, match="cannot read intent"):
        Intent.parse(bad)


# --- every threshold, from just below and just above ----------------------------------------------------------
TH = OutcomeThresholds()
# written out, not read from TH, so that a changed default fails the pairs below too
LIFT_M, MOVE_M, TILT_RAD, REST_SLACK_M = 0.03, 0.01, 0.26, 0.008
HALF = 0.0275  # the cheese: half its largest extent (0.055 m), the rest_half_height track() uses
EPS = 1e-4  # 0.1 mm / 0.1 mrad: far above float error, far below any real motion


def at(pose, x=None, y=None, z=None):
    p = np.array(pose, float)
    for i, v in enumerate((x, y, z)):
        if v is not None:
            p[i] = v
    return p


def turned(pose, angle, axis=(1.0, 0.0, 0.0)):
    """``pose`` with its orientation replaced by a rotation of ``angle`` about ``axis`` (from identity)."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.array([*pose[:3], np.cos(angle / 2), *(np.sin(angle / 2) * axis)])


def test_threshold_values_are_the_documented_ones():
    assert (TH.lift_m, TH.move_m, TH.tilt_rad, TH.rest_slack_m) == (LIFT_M, MOVE_M, TILT_RAD, REST_SLACK_M)


@pytest.mark.parametrize("rise,expected", [(LIFT_M - EPS, Outcome.UNTOUCHED), (LIFT_M + EPS, Outcome.DROPPED)])
def test_lift_threshold(rise, expected):
    # Up and back down to exactly where it stood: only the highest point decides whether it was picked.
    assert classify(track(UPRIGHT, lifted(UPRIGHT, rise), UPRIGHT), PLATE) == expected


@pytest.mark.parametrize("scale,expected", [(1 - EPS / MOVE_M, Outcome.UNTOUCHED),
                                            (1 + EPS / MOVE_M, Outcome.MOVED)])
@pytest.mark.parametrize("direction", [(1, 0, 0), (0, -1, 0), (0, 0, 1), (0.6, 0.8, 0)], ids=["x", "-y", "up", "xy"])
def test_move_threshold_is_a_3d_distance(direction, scale, expected):
    shift = MOVE_M * scale * np.array(direction)  # |direction| = 1: the xy case is 6 mm + 8 mm, 10 mm in all
    assert classify(track(UPRIGHT, UPRIGHT + [*shift, 0, 0, 0, 0]), PLATE) == expected


@pytest.mark.parametrize("angle,expected", [(TILT_RAD - EPS, Outcome.UNTOUCHED),
                                            (TILT_RAD + EPS, Outcome.MOVED)])
@pytest.mark.parametrize("axis", [(1, 0, 0), (0, 0, 1), (1, 1, 1)], ids=["tip", "spin", "skew"])
def test_tilt_threshold(axis, angle, expected):
    assert classify(track(UPRIGHT, turned(UPRIGHT, angle, axis)), PLATE) == expected
    # from any starting orientation: the angle between the two, not to identity
    start = turned(UPRIGHT, 1.0, (0, 1, 0))
    w0, v0 = start[3], start[4:]
    dq = turned(UPRIGHT, angle, axis)[3:]
    w1, v1 = dq[0], dq[1:]
    product = np.array([*start[:3], w1 * w0 - v1 @ v0, *(w1 * v0 + w0 * v1 + np.cross(v1, v0))])  # dq * q0
    assert classify(track(start, product), PLATE) == expected


@pytest.mark.parametrize("above,expected", [(-EPS, Outcome.ON_PLATE), (EPS, Outcome.DROPPED)])
def test_rest_slack_threshold_on_the_plate(above, expected):
    # Its centre just under / just over the highest resting height (its half extent) plus the slack.
    final = at(FLAT_ON_PLATE, z=PLATE.top_z + HALF + REST_SLACK_M + above)
    assert classify(track(UPRIGHT, lifted(UPRIGHT), final), PLATE) == expected


@pytest.mark.parametrize("above,expected", [(-EPS, Outcome.DROPPED), (EPS, Outcome.LIFTED)])
def test_still_held_threshold_off_the_plate(above, expected):
    # Off the plate, it counts as still held only while its centre is more than lift_m above where it started.
    final = at(UPRIGHT, x=0.3, y=0.2, z=UPRIGHT[2] + LIFT_M + above)
    assert classify(track(UPRIGHT, lifted(UPRIGHT), final), PLATE) == expected


@pytest.mark.parametrize("r,expected", [(PLATE.radius - EPS, Outcome.ON_PLATE), (PLATE.radius + EPS, Outcome.DROPPED)])
def test_plate_rim(r, expected):
    final = at(FLAT_ON_PLATE, x=PLATE.center_xy[0] + r * 0.6, y=PLATE.center_xy[1] - r * 0.8)
    assert classify(track(UPRIGHT, lifted(UPRIGHT), final), PLATE) == expected


def test_exactly_at_each_threshold():
    """The comparisons' strictness, at values where the float arithmetic is exact: a rise, shift or tilt equal to
    its threshold is not enough; a centre exactly at rest height + slack still rests."""
    zero = OutcomeThresholds(lift_m=0.0, move_m=0.0, tilt_rad=0.0)
    assert classify(track(UPRIGHT, UPRIGHT), PLATE, zero) == Outcome.UNTOUCHED  # rise, shift and tilt all exactly 0
    start = at(UPRIGHT, z=0.035)
    peak = at(start, z=0.035 + LIFT_M)
    assert peak[2] - start[2] == LIFT_M  # exact in binary
    assert classify(track(start, peak, start), PLATE) == Outcome.UNTOUCHED
    resting = at(FLAT_ON_PLATE, z=PLATE.top_z + HALF + REST_SLACK_M)  # the classifier's own sum, same order
    assert classify(track(UPRIGHT, lifted(UPRIGHT), resting), PLATE) == Outcome.ON_PLATE
    hanging = at(UPRIGHT, x=0.3, y=0.2, z=UPRIGHT[2] + LIFT_M)
    assert classify(track(UPRIGHT, lifted(UPRIGHT), hanging), PLATE) == Outcome.DROPPED


# --- the cases in between ---------------------------------------------------------------------------------------
def test_lifted_then_put_back_in_its_slot_is_dropped():
    """A pick that ends where it began is still a pick: lifted, now at rest, and not on the plate -> dropped."""
    back = track(UPRIGHT, lifted(UPRIGHT), UPRIGHT)
    assert classify(back, PLATE) == Outcome.DROPPED
    out = episode_outcome({"cheese": back, "bread": track(UPRIGHT, UPRIGHT)}, PLATE)
    assert out.per_ingredient["cheese"] in PICKED and out.behaviour == "picked_cheese"
    assert out.label == "cheese=dropped,bread=untouched"


def test_standing_on_its_edge_on_the_plate_rests_there_but_not_balanced_on_a_corner():
    # Upright (as in the holder) on the plate: its centre is half its height above the plate, which is exactly the
    # highest resting height the classifier allows for, so it is on the plate.
    on_edge = at(UPRIGHT, x=PLATE.center_xy[0], y=PLATE.center_xy[1], z=PLATE.top_z + HALF)
    assert classify(track(UPRIGHT, lifted(UPRIGHT), on_edge), PLATE) == Outcome.ON_PLATE
    # Balanced on a corner its centre is half the face diagonal up, 0.039 m > 0.0275 + 0.008 slack: not resting
    # on the plate, and too low to be held, so dropped.
    on_corner = at(turned(UPRIGHT, np.pi / 4), x=PLATE.center_xy[0], y=PLATE.center_xy[1],
                   z=PLATE.top_z + HALF * np.sqrt(2))
    assert on_corner[2] > PLATE.top_z + HALF + REST_SLACK_M
    assert classify(track(UPRIGHT, lifted(UPRIGHT), on_corner), PLATE) == Outcome.DROPPED
    # Held just above it (higher than rest + slack and than start + lift): lifted, not on the plate.
    above = at(on_edge, z=UPRIGHT[2] + LIFT_M + 0.005)
    assert classify(track(UPRIGHT, lifted(UPRIGHT), above), PLATE) == Outcome.LIFTED


@pytest.mark.parametrize("angle,expected", [(0.0, Outcome.UNTOUCHED), (TILT_RAD - EPS, Outcome.UNTOUCHED),
                                            (TILT_RAD + EPS, Outcome.MOVED)])
def test_a_quaternion_and_its_negation_are_one_rotation(angle, expected):
    """q and -q describe the same orientation, and a simulator may report either: a slice that never turned must
    not read as tipped over because its quaternion's sign flipped (the tilt takes |q0 . q1|)."""
    final = turned(UPRIGHT, angle, (1, 0, 0))
    flipped = np.array([*final[:3], *(-final[3:])])
    assert classify(track(UPRIGHT, flipped), PLATE) == expected
