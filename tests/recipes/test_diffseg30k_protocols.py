"""The stage options the DiffSeg30k recipe adds, on small in-memory data: Table 3's absolute-size
input (evaluate.input_size, robustness resize_to), Table 4's re-edit twins (inpaint.study_only /
reedit) scored apart (evaluate lora_as_parent.study_apart)."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from pipelines.evaluate.nodes import RESIZE_TO, _fed, condition_name, robustness_conditions
from pipelines.inpaint.nodes import plan_edits
from tests.pipelines.test_evaluate import SIZE, evaluate_params, run_evaluate


def _metrics(tmp_path, task="semantic"):
    return json.loads((tmp_path / f"metrics_{task}.json").read_text())


def test_resize_to_feeds_an_absolute_side_and_input_size_is_every_protocols_side(tmp_path):
    # Table 3 at toy size: "trained at" 16 (input_size), fed at 16, at the images' own 32 and at 64
    params = evaluate_params(run="robustness", n_overlays=1, input_size=16)
    params["protocols"]["robustness"] = {RESIZE_TO: [16, SIZE, 64]}
    run_evaluate(tmp_path, params)
    plt.close("all")
    for task in ("binary", "semantic"):
        metrics = _metrics(tmp_path, task)
        conditions = {c["name"]: c for c in metrics["protocols"]["robustness"]["conditions"]}
        assert list(conditions) == ["resize 16", f"resize {SIZE}", "resize 64"]
        # scored against the untouched label maps at their own size: every pixel of the 8 images counts
        assert all(np.sum(c["confusion_matrix"]) == 8 * SIZE * SIZE for c in conditions.values())
        assert np.sum(metrics["confusion_matrix"]) == 8 * SIZE * SIZE
        # the clean pass feeds input_size; the conditions feed their own side
        clean = metrics["protocols"]["in_domain"]["confusion_matrix"]
        assert conditions["resize 16"]["confusion_matrix"] == clean
        assert conditions[f"resize {SIZE}"]["confusion_matrix"] != clean


def test_fed_resizes_and_condition_names_read_as_the_paper_prints_them():
    image = np.zeros((48, 40, 3), np.uint8)
    assert _fed(image, 16).shape == (16, 16, 3) and _fed(image, None) is image
    assert condition_name(RESIZE_TO, 256.0) == "resize 256" and condition_name("jpeg", 60.0) == "JPEG 60"
    assert robustness_conditions({"jpeg": [60, 80], RESIZE_TO: [256, 1024], "blur": []}) == [
        ("jpeg", 60.0), ("jpeg", 80.0), (RESIZE_TO, 256.0), (RESIZE_TO, 1024.0)]
    with pytest.raises(KeyError, match="resize_to"):
        robustness_conditions({"resize_too": [1]})


def test_re_edit_twins_are_scored_apart_from_every_other_protocol(tmp_path):
    # the synthetic set: s4 and s5 were edited by the variant sdxl-lora; s2, s3, s5, s6 by sdxl
    params = evaluate_params(run="in_domain+breakdowns+lora_as_parent", n_overlays=1)
    params["protocols"]["lora_as_parent"] = {"membership": "any", "study_apart": True}
    run_evaluate(tmp_path, params)
    plt.close("all")
    for task in ("binary", "semantic"):
        metrics = _metrics(tmp_path, task)
        assert metrics["n_images"] == 6 and metrics["n_edited"] == 4  # s4, s5 left out of the main protocols
        assert "sdxl-lora" not in metrics["protocols"]["breakdowns"]["generator"]
        (pair,) = metrics["protocols"]["lora_as_parent"]["pairs"]
        assert pair["variant_as_parent"]["n_fake"] == 2      # the twins: s4, s5
        assert pair["parent_edits"]["n_fake"] == 4           # every item with an sdxl turn: s2, s3, s5, s6
        assert metrics["protocols"]["lora_as_parent"]["items"].startswith("re-edit twins")


def _regions(generator_count: int = 3) -> pd.DataFrame:
    rows = []
    for sample in range(12):
        for turn in range(1, 1 + (sample % generator_count) + 1):
            rows.append({"sample_id": f"b{sample}-v0", "base_id": f"b{sample}", "turn": turn,
                         "region_id": f"b{sample}-v0-t{turn}", "prompt": "p", "edit_type": "attribute"})
    return pd.DataFrame(rows)


GENERATORS = ["telea", "navier_stokes", "copy_move", {"name": "telea-variant", "generator": "telea", "label": "telea"}]


def test_study_only_entries_are_never_drawn_and_reedit_makes_twins():
    plan = plan_edits(_regions(), {"generators": GENERATORS, "study_only": ["telea-variant"],
                                   "reedit": {"telea-variant": "telea"}})
    originals = [p for p in plan if "reedit_of" not in p]
    twins = {p["reedit_of"]: p for p in plan if "reedit_of" in p}
    assert len(originals) == 12 and all("telea-variant" not in p["generators"] for p in originals)
    with_parent = [p for p in originals if "telea" in p["generators"]]
    assert with_parent and set(twins) == {p["sample_id"] for p in with_parent}
    for original in with_parent:
        twin = twins[original["sample_id"]]
        assert twin["sample_id"] == f"{original['sample_id']}+telea-variant"
        assert twin["generators"] == ["telea-variant" if g == "telea" else g for g in original["generators"]]
        assert twin["seeds"] == original["seeds"] and twin["turns"] == original["turns"]
    # without the study the draws are the ones every other run makes (the variant only left out)
    plain = plan_edits(_regions(), {"generators": GENERATORS[:3]})
    assert [p["generators"] for p in plain] == [p["generators"] for p in originals]


def test_study_settings_name_inpainting_entries_and_keep_variants_undrawn():
    with pytest.raises(ValueError, match="not inpainting entries"):
        plan_edits(_regions(), {"generators": GENERATORS, "study_only": ["sdxl-lora"]})
    with pytest.raises(ValueError, match="must also be in inpaint.study_only"):
        plan_edits(_regions(), {"generators": GENERATORS, "reedit": {"telea-variant": "telea"}})
