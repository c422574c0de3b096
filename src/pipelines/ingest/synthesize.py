"""AI-generated bases (DiffSeg30k): images made from captions by a random text-to-image model.

DiffSeg30k edits real photos AND images generated from COCO captions, so a detector cannot
learn "edited = looks generated". Here a fraction ``ingest.ai_bases.ratio`` of the real bases
gets a companion base generated from its caption (or ``ingest.ai_bases.prompt`` when it has
none) by one of the configured ``task: text-to-image`` generator entries, drawn per base. The
companion:

- has ``base_id`` ``<real base_id>-ai``, ``kind = "ai"`` and ``source = "t2i:<entry name>"``;
- shares the real photo's ``group_id`` (it was made from that photo's caption), so the split
  keeps the two on the same side;
- is never used as an authentic negative (the split takes only ``kind == "real"`` bases);
- carries no annotations: the perceiver proposes its regions (VLM + grounding, or superpixels).

Every draw depends only on (seed, base_id), so shards and reruns give the same bases.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.generators import create_text_to_image
from pipelines.contract.ids import sample_rng
from pipelines.contract.labels import generator_entries
from pipelines.contract.params import AiBases, params_of

logger = logging.getLogger(__name__)

AI_SUFFIX = "-ai"


def text_to_image_entries(generators: list[dict[str, Any] | str]) -> list[dict[str, Any]]:
    """The ``task: text-to-image`` entries of a generator list, with every key filled."""
    return [e for e in generator_entries(generators) if e["task"] == "text-to-image"]


def plan_ai_bases(manifest: pd.DataFrame, cfg: AiBases | dict[str, Any], seed: int) -> list[tuple[str, str, str, int]]:
    """Which real bases get an AI companion: [(base_id, entry name, prompt, generation seed)].

    Raises:
        ValueError: ratio outside [0, 1], or ratio > 0 without a text-to-image entry.
    """
    cfg = params_of(AiBases, cfg)
    ratio = cfg.ratio
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ingest.ai_bases.ratio must be in [0, 1], got {ratio}")
    if ratio == 0.0:
        return []
    entries = text_to_image_entries(cfg.generators or [])
    if not entries:
        raise ValueError("ingest.ai_bases.ratio > 0 needs a generator entry with task: text-to-image "
                         "in ingest.ai_bases.generators (conf/gpu/globals.yml has examples)")
    names = [e["name"] for e in entries]
    fallback = cfg.prompt
    plan = []
    for row in manifest.itertuples():
        if row.kind != "real":
            continue
        rng = sample_rng(seed, f"ai-base:{row.base_id}")
        if rng.random() >= ratio:
            continue
        name = names[int(rng.integers(0, len(names)))]
        caption = row.caption if isinstance(row.caption, str) and row.caption.strip() else fallback
        plan.append((row.base_id, name, caption, int(rng.integers(0, 2**31 - 1))))
    return plan


def add_ai_bases(images: dict[str, np.ndarray], manifest: pd.DataFrame, cfg: AiBases | dict[str, Any], seed: int,
                 image_size: int) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Generate the planned AI bases and append them to ``images`` / ``manifest`` (new objects).
    Each text-to-image model is built once and runs its bases in batches."""
    cfg = params_of(AiBases, cfg)
    plan = plan_ai_bases(manifest, cfg, seed)
    if not plan:
        return images, manifest
    entries = {e["name"]: e for e in text_to_image_entries(cfg.generators)}
    by_entry: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for base_id, name, prompt, gen_seed in plan:
        by_entry[name].append((base_id, prompt, gen_seed))
    batch = cfg.batch_size
    images = dict(images)
    rows = []
    real = manifest.set_index("base_id")
    with tqdm(total=len(plan), desc="ai bases", unit="image") as bar:
        for name, jobs in by_entry.items():
            entry = entries[name]
            generator = create_text_to_image(entry["generator"], **entry["kwargs"])
            for start in range(0, len(jobs), batch):
                chunk = jobs[start:start + batch]
                outputs = generator.generate_batch([p for _, p, _ in chunk], image_size, image_size, [s for _, _, s in chunk])
                for (base_id, prompt, gen_seed), image in zip(chunk, outputs):
                    ai_id = f"{base_id}{AI_SUFFIX}"
                    image = np.ascontiguousarray(image)
                    images[ai_id] = image
                    source = real.loc[base_id]
                    rows.append({
                        "base_id": ai_id, "group_id": source["group_id"], "source": f"t2i:{name}", "kind": "ai",
                        "source_path": "", "category": source["category"], "caption": prompt,
                        "orig_height": image_size, "orig_width": image_size, "height": image_size, "width": image_size,
                        "crop": json.dumps({"generator": name, "label": entry["label"], "seed": gen_seed}),
                        "sha256": hashlib.sha256(image.tobytes()).hexdigest(),
                    })
                bar.update(len(chunk))
    logger.info("generated %d AI bases with %s", len(rows), sorted(by_entry))
    extra = pd.DataFrame(rows, columns=manifest.columns)
    return images, pd.concat([manifest, extra], ignore_index=True)
