"""Cut a registered Kedro pipeline into node groups, the units a flow runs as Prefect tasks.

A group is one stage of ``pipelines.pipeline_registry`` (``ingest``, ``perceive``, ...) or, when a
stage's nodes carry a Kedro namespace, one top-level namespace within that stage. Groups run in the
order of the stages and, within a stage, in the pipeline's topological order.

Tasks share nothing in memory: every dataset that one group writes and a later group reads must be
a persisted catalog entry. ``check_handoffs`` enforces that before anything runs.
No Prefect imports here, so the grouping is testable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

# User-facing names of composite pipelines; ``full`` is Kedro's ``__default__``.
ALIASES = {"full": "__default__"}


@dataclass(frozen=True)
class NodeGroup:
    """One Prefect task's worth of a Kedro pipeline.

    ``name`` is ``<stage>`` or ``<stage>.<namespace>``; ``node_names`` are empty when the group is a
    whole stage (run as ``--pipeline <stage>``), else the exact nodes to run.
    """

    name: str
    stage: str
    node_names: tuple[str, ...] = ()
    inputs: frozenset[str] = field(default_factory=frozenset)
    outputs: frozenset[str] = field(default_factory=frozenset)

    def run_args(self) -> dict[str, Any]:
        """Keyword arguments for ``KedroSession.run`` that run exactly this group."""
        args: dict[str, Any] = {"pipeline_name": self.stage}
        if self.node_names:
            args["node_names"] = list(self.node_names)
        return args


def canonical_pipeline(name: str) -> str:
    """``full`` -> ``__default__``; other names unchanged."""
    return ALIASES.get(name, name)


def node_groups(pipeline_name: str, registered: dict[str, Any] | None = None) -> list[NodeGroup]:
    """The node groups of ``pipeline_name`` (a stage, a composite, or ``full``), in run order.

    Raises ``KeyError`` naming the known pipelines for an unknown name, and ``ValueError`` if a
    group would need the output of a group that runs after it.
    """
    from pipelines.pipeline_registry import register_pipelines, stages_of

    name = canonical_pipeline(pipeline_name)
    stages = stages_of(name)
    registered = registered if registered is not None else register_pipelines()
    groups: list[NodeGroup] = []
    for stage in stages:
        pipeline = registered[stage]
        ordered = list(pipeline.nodes)  # Kedro returns nodes topologically sorted
        by_namespace: dict[str | None, list[Any]] = {}
        for node in ordered:
            top = node.namespace.split(".")[0] if node.namespace else None
            by_namespace.setdefault(top, []).append(node)
        if set(by_namespace) == {None}:
            groups.append(_group(stage, stage, ordered, whole_stage=True))
            continue
        for namespace, nodes in sorted(by_namespace.items(), key=lambda kv: ordered.index(kv[1][0])):
            label = f"{stage}.{namespace}" if namespace else f"{stage}.main"
            groups.append(_group(label, stage, nodes, whole_stage=False))
    _check_order(groups)
    return groups


def _group(name: str, stage: str, nodes: list[Any], whole_stage: bool) -> NodeGroup:
    outputs = {o for n in nodes for o in n.outputs}
    inputs = {i for n in nodes for i in n.inputs if not i.startswith("params:") and i != "parameters"}
    return NodeGroup(
        name=name,
        stage=stage,
        node_names=() if whole_stage else tuple(n.name for n in nodes),
        inputs=frozenset(inputs - outputs),
        outputs=frozenset(outputs),
    )


def _check_order(groups: list[NodeGroup]) -> None:
    for i, group in enumerate(groups):
        for later in groups[i + 1:]:
            needed = group.inputs & later.outputs
            if needed:
                raise ValueError(
                    f"node group {group.name!r} reads {sorted(needed)} written by {later.name!r}, which runs "
                    "after it: reorder the stages, or keep mutually dependent namespaces in one namespace"
                )


def handoffs(groups: Iterable[NodeGroup]) -> dict[str, tuple[str, str]]:
    """Datasets that cross tasks: {dataset: (writing group, first reading group)}."""
    writer: dict[str, str] = {}
    crossing: dict[str, tuple[str, str]] = {}
    for group in groups:
        for name in sorted(group.inputs):
            if name in writer and name not in crossing:
                crossing[name] = (writer[name], group.name)
        for name in group.outputs:
            writer[name] = group.name
    return crossing


def check_handoffs(groups: Iterable[NodeGroup], catalog: Any) -> None:
    """Raise ``ValueError`` if a dataset that crosses tasks is not persisted by ``catalog``.

    A dataset missing from the catalog would be a ``MemoryDataset`` inside the writing task's
    KedroSession and gone by the time the next task opens its own session.
    """
    missing = []
    for name, (writer, reader) in sorted(handoffs(groups).items()):
        if name not in catalog:
            missing.append(f"{name} (written by {writer}, read by {reader}): not in the catalog")
            continue
        dataset_type = catalog.get_type(name) or ""
        if dataset_type.endswith(("MemoryDataset", "SharedMemoryDataset")):
            missing.append(f"{name} (written by {writer}, read by {reader}): {dataset_type} is not persisted")
    if missing:
        raise ValueError("datasets that cross Prefect tasks must be saved through the catalog:\n  "
                         + "\n  ".join(missing))
