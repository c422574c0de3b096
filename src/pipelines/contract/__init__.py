"""The contract between stages: what one stage hands the next, owned by no stage.

Every stage package (``pipelines.<stage>``) imports only this package, the shared I/O layer
(``pipelines.io``, ``pipelines.datasets``) and ``models``; never another stage.

- ``schemas``: columns and dtypes of every table passed between stages (checked on save and
  load by ``pipelines.hooks.TableSchemaHooks``; the gates' column expectations come from here).
- ``labels``: generator entries -> class names -> class indices (``generator_entries`` is the
  only reader of ``generators`` lists).
- ``ids``: sample / region / group ids and the per-item random stream ``sample_rng``.
- ``rle``: masks in tables (COCO RLE as JSON).
- ``items``: reading the image and label map a split row names.
- ``summary``: ``MetricsSummary``, the evaluation's metrics document.
- ``params``: one pydantic model per parameter section, validated before any node runs.
"""
