"""Customer segments: features, k-means and RFM segments, profiles, personas, propensity, saved runs.

Modules, each usable on its own:

- ``features``: per-user features in DuckDB (RFM, sessions, funnel, campaigns, categories, devices, tenure)
- ``text``: review-text components from the packaged all-MiniLM-L6-v2 (optional)
- ``clustering``: robust scaling, k-means with k by silhouette, the 2-D map
- ``rfm``: the standard RFM segments and their rule table
- ``profiles`` / ``persona``: profile cards and personas grounded in their numbers
- ``propensity``: P(order in the next N days), evaluated on a time split
- ``runs``: ``run_segmentation`` and the saved runs (``segment_runs``, ``segments``, ``user_segments``)

Importing this package loads neither torch, transformers nor scikit-learn; they load on use.
"""

from core.segments.features import FEATURES, EventNames, UserFeatures, compute_features
from core.segments.runs import (
    FEATURE_SETS,
    RunSummary,
    Segment,
    SegmentRun,
    delete_run,
    export_segment_csv,
    list_runs,
    load_run,
    run_labels,
    run_segmentation,
    segment_user_ids,
)

__all__ = [
    "FEATURES", "FEATURE_SETS", "EventNames", "RunSummary", "Segment", "SegmentRun", "UserFeatures",
    "compute_features", "delete_run", "export_segment_csv", "list_runs", "load_run", "run_labels",
    "run_segmentation", "segment_user_ids",
]
