"""Reference data sets: configurations sampled by dynamics and labelled by a real
reference (``mtt-nc reference``), resumable and parallel, provenance in every frame.

- :func:`build_reference_set`: the whole build (plan, sample, label, split);
- :class:`ReferencePlan`: its settings, ``plan.json`` of the work folder;
- :func:`label_frame`, :func:`frame_strain`: one frame's strain and labels.
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "build_reference_set": "build",
    "make_plan": "build",
    "BuildSummary": "build",
    "ReferencePlan": "plan",
    "TrajectorySpec": "plan",
    "label_frame": "labelling",
    "frame_strain": "labelling",
    "LabelFailure": "labelling",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
