"""AuditError, the texts of its messages and the audit's named constants."""

from __future__ import annotations

from segfair.errors import SegfairError

__all__ = [
    "BAD_BINS",
    "BAD_CAP",
    "BAD_CONFIDENCE",
    "BAD_ESTIMATOR",
    "BAD_MIN_GROUP_SIZE",
    "BAD_NEGLIGIBLE",
    "BAD_N_BOOT",
    "BAD_STATISTIC",
    "DUPLICATE_SCORES",
    "GROUP_COLUMNS",
    "JOIN",
    "NEGLIGIBLE_DISTANCE_GAP",
    "NEGLIGIBLE_GAP",
    "NOT_IN_COHORT",
    "NO_ATTRIBUTE_COLUMN",
    "NO_PROXY",
    "PPI_NEEDS_MEAN",
    "UNKNOWN_AGREEMENT",
    "UNKNOWN_ATTRIBUTE",
    "UNKNOWN_CLUSTER",
    "UNKNOWN_COVARIATE",
    "UNKNOWN_DESCRIPTOR",
    "UNKNOWN_GROUP",
    "UNKNOWN_LABEL",
    "UNKNOWN_METRIC",
    "UNKNOWN_MODEL",
    "UNKNOWN_PROXY",
    "UNKNOWN_RULER",
    "UNKNOWN_STRUCTURE",
    "WHICH_STRUCTURE",
    "AuditError",
]


UNKNOWN_MODEL = "unknown model {name!r}; valid models: {valid}"
UNKNOWN_RULER = "unknown ruler {name!r}; valid rulers: {valid}"
UNKNOWN_METRIC = (
    "unknown metric {name!r} for model {model!r} on ruler {ruler!r}; valid metrics: {valid}"
)
UNKNOWN_AGREEMENT = (
    "no agreement scores of metric {name!r} for ruler {ruler!r}; valid metrics: {valid}"
)
UNKNOWN_ATTRIBUTE = "unknown attribute {name!r}; valid attributes: {valid}"
UNKNOWN_GROUP = "unknown group {name!r} of {by}; valid groups: {valid}"
UNKNOWN_CLUSTER = "unknown cluster column {name!r}; valid columns: {valid}"
UNKNOWN_COVARIATE = (
    "cannot stratify by {name!r}: it is neither a metadata column nor a morphology descriptor of "
    "ruler {ruler!r}; valid: {valid}"
)
UNKNOWN_DESCRIPTOR = "unknown morphology descriptor {name!r} of ruler {ruler!r}; valid: {valid}"
BAD_STATISTIC = "statistic must be one of {valid}; got {value!r}"
BAD_ESTIMATOR = "estimator must be one of {valid}; got {value!r}"
PPI_NEEDS_MEAN = (
    "estimator 'ppi' estimates group means: it needs statistic = 'mean' (got {statistic!r}); "
    "use estimator = 'labelled' for medians"
)
NO_PROXY = (
    "estimator 'ppi' needs a proxy: a complete ruler other than the trusted ruler {trusted!r} "
    "that scores every case; {why}. Set proxy = one of: {valid}"
)
UNKNOWN_PROXY = "unknown proxy ruler {name!r}; valid: {valid} (a ruler other than the trusted one)"
BAD_CONFIDENCE = "confidence must be a number in (0.5, 1); got {value!r}"
BAD_N_BOOT = "n_boot must be an integer ≥ 100; got {value!r}"
BAD_CAP = "cap must be a positive, finite distance in mm; got {value!r}"
BAD_MIN_GROUP_SIZE = "min_group_size must be an integer ≥ 1; got {value!r}"
BAD_BINS = "bins must be an integer ≥ 2; got {value!r}"
BAD_NEGLIGIBLE = "negligible must be a number ≥ 0; got {value!r}"
NOT_IN_COHORT = (
    "{count} scored case(s) are not in the cohort's groups table, e.g. {examples}; every scored "
    "case needs its subgroup labels"
)
DUPLICATE_SCORES = (
    "the {table} table holds {count} duplicate row(s) for one case, e.g. {examples}; keep one "
    "value per case"
)
NO_ATTRIBUTE_COLUMN = (
    "attribute {name!r} has no metadata column behind it (scores.attribute_columns: {valid})"
)

#: Default of ``negligible`` (metric units) for ratio-type comparisons of gaps.
NEGLIGIBLE_GAP = 0.01
#: Default of ``negligible`` for distance metrics (mm).
NEGLIGIBLE_DISTANCE_GAP = 1.0
#: Label of a missing attribute value when the groups table has none of its own.
UNKNOWN_LABEL = "unknown"
#: Separator of intersectional group labels and of the index name.
JOIN = " × "

GROUP_COLUMNS = ("n", "estimate", "lower", "upper", "capped", "undefined")


class AuditError(SegfairError, ValueError):
    """A request the audit cannot answer: an unknown model, ruler, metric, group or setting."""


UNKNOWN_STRUCTURE = "unknown structure {name!r}; the structures are: {valid}"
WHICH_STRUCTURE = (
    "this audit holds {n} structures ({valid}): ask one structure's audit, "
    "audit.for_structure(name)"
)
