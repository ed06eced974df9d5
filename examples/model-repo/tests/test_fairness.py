"""Release gates on subgroup fairness, checked by segfair on every pull request.

The fixtures come from the segfair pytest plugin; the cohort is declared in pyproject.toml.
"""

MODEL = "candidate"


def test_the_age_gap_in_dice_on_expert_labels_is_below_ten_points(segfair_audit):
    segfair_audit.assert_gap("dice", by="age_group", model=MODEL, ruler="expert", max=0.10)


def test_automated_labels_do_not_hide_more_than_a_quarter_of_the_age_gap(segfair_audit):
    segfair_audit.assert_ruler_shrinkage(
        "dice", by="age_group", model=MODEL, automated="automated", max=0.25
    )


def test_the_candidate_does_not_amplify_the_age_gap_of_the_previous_release(segfair_audit):
    segfair_audit.assert_no_amplification(
        "dice", by="age_group", model=MODEL, baseline="previous_release", max=0.5
    )


def test_every_age_group_keeps_its_predictions(segfair_audit):
    segfair_audit.assert_coverage(by="age_group", min=0.95)
