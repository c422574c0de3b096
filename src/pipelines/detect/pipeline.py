"""Detect pipeline: the semantic detector checkpoint + ``detect.input`` (folder, S3 prefix or one
file) -> per image an overlay PNG coloured by generator and a JSON of its image score and
per-generator pixel shares, plus an index of every file (skipped ones with their reason).

    kedro run --pipeline detect --params detect.input=path/to/photos     (make detect IN=...)
"""

from kedro.pipeline import Node, Pipeline

from pipelines.detect.nodes import detect_edits


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(detect_edits, ["detector_semantic", "params:detect"], ["detect_overlays", "detect_results", "detect_index"],
             name="detect_edits", tags=["detect"]),
    ])
