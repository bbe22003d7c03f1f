import numpy as np
import pytest

from leisaac_tasks.outcomes import EpisodeOutcome, IngredientTrack, Outcome, PlateRegion, classify, episode_outcome

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
