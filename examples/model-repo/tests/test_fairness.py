"""Release gates on subgroup fairness, checked by segfair on every pull request.

The fixtures come from the segfair pytest plugin; the cohort is declared in pyproject.toml.
"""

MODEL = "candidate"


def test_the_age_gap_in_dice_on_expert_labels_is_below_ten_points(segfair_audit):
    segfair_audit.assert_gap("dice", by="age_group", model=MODEL, ruler="expert", max=0.10)


def test_automated_labels_do_not_hide_more_than_a_quarter_of_the_age_gap(segfair_audit):
    # a share of the expert age gap needs an expert gap to share: when none is shown, decide on
    # the gap the automated labels hide, in Dice units, declared here (else: inconclusive)
    segfair_audit.assert_ruler_shrinkage(
        "dice", by="age_group", model=MODEL, automated="automated", max=0.25,
        max_difference=0.03,
    )


def test_every_age_group_keeps_a_mean_dice_of_at_least_0_7_on_expert_labels(segfair_audit):
    segfair_audit.assert_gate(
        kind="min_group_metric", metric="dice", by="age_group", model=MODEL, ruler="expert",
        min=0.7,
    )


def test_every_age_group_keeps_its_predictions(segfair_audit):
    segfair_audit.assert_coverage(by="age_group", min=0.95)
