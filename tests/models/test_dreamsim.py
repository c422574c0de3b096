"""The DreamSim scorer: local release files only, never the package's downloader.

The run test needs the packages dreamsim / peft / open_clip (pinned in requirements.lock; the
test for a clear error without them runs only where they are absent). Its weights are
random, written in the release layout of the ``clip_vitb32`` variant.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from models.quality import create_quality_scorer, list_quality_scorers
from models.quality.dreamsim_scorer import DREAMSIM_FILES, check_dreamsim_folder

HAVE_PACKAGES = all(importlib.util.find_spec(n) is not None for n in ("dreamsim", "peft", "open_clip"))


def test_missing_release_files_are_named_before_anything_is_imported(tmp_path):
    assert "dreamsim" in list_quality_scorers()
    with pytest.raises(FileNotFoundError, match="clip_vitb32_pretrain.pth.tar"):
        create_quality_scorer("dreamsim", cache_dir=str(tmp_path), dreamsim_type="clip_vitb32")
    with pytest.raises(FileNotFoundError, match="facebookresearch_dino_main"):
        check_dreamsim_folder(tmp_path, "ensemble")  # the DINO backbone comes through torch.hub
    with pytest.raises(ValueError, match="clip_vitb32"):
        check_dreamsim_folder(tmp_path, "synclr_vitb16")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        check_dreamsim_folder(tmp_path / "absent", "clip_vitb32")


@pytest.mark.skipif(HAVE_PACKAGES, reason="the packages are installed here")
def test_without_the_packages_the_scorer_says_what_is_missing(tmp_path):
    for name in DREAMSIM_FILES["clip_vitb32"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    with pytest.raises(ImportError, match="perceptual"):
        create_quality_scorer("dreamsim", cache_dir=str(tmp_path), dreamsim_type="clip_vitb32")


def _release_layout(folder):
    """Random ``clip_vitb32`` files as DreamSim's release zip lays them out."""
    import torch
    from dreamsim.config import dreamsim_args
    from dreamsim.feature_extraction.vision_transformer import vit_base
    from dreamsim.model import PerceptualModel
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    vit = vit_base(patch_size=32)
    vit.pos_drop = torch.nn.LayerNorm(768)  # the CLIP-as-DINO layout has a pre-norm here
    state = {**vit.state_dict(), "proj": torch.randn(768, 512) * 0.03}
    torch.save({"state_dict": state}, folder / "clip_vitb32_pretrain.pth.tar")
    model = PerceptualModel(**dreamsim_args["model_config"]["clip_vitb32"], device="cpu", load_dir=str(folder),
                            normalize_embeds=True)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, bias="none",
                                            target_modules=["qkv", "fc1", "fc2"]))
    lora.save_pretrained(folder / "clip_vitb32_single_lora")


@pytest.mark.skipif(not HAVE_PACKAGES, reason="dreamsim / peft / open_clip are not in the pinned environment")
def test_dreamsim_scores_from_local_files_without_downloading(tmp_path, monkeypatch):
    import torch.hub

    _release_layout(tmp_path)

    def no_download(*args, **kwargs):
        raise AssertionError(f"download attempted: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    scorer = create_quality_scorer("dreamsim", cache_dir=str(tmp_path), dreamsim_type="clip_vitb32")
    rng = np.random.default_rng(0)
    base = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    edited = base.copy()
    edited[20:80, 30:100] = (rng.random((60, 70, 3)) * 255).astype(np.uint8)
    same = scorer.score(base, reference=base)
    changed = scorer.score(edited, reference=base)
    assert abs(same) < 1e-5 and 0 < changed <= 2
    assert isinstance(changed, float) and scorer.valid_range[0] <= changed <= scorer.valid_range[1]
    assert scorer.higher_is_better is False and scorer.needs == ("reference",) and scorer.name == "dreamsim"
    with pytest.raises(ValueError, match="base image"):
        scorer.score(base)
