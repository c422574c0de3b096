"""Quality scorers on a real photo and on degraded copies of it."""

from __future__ import annotations

import socket

import cv2
import numpy as np
import pytest
from skimage import data

from models.quality import (
    DIFFSEG30K_QUALITY_PROMPT,
    QUALITY_SCORERS,
    create_quality_scorer,
    list_quality_scorers,
    parse_quality_answer,
)
from models.registry import UnknownNameError


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    clean = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0.0, 25.0, clean.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(clean, (0, 0), sigmaX=4.0)
    return {"clean": clean, "noisy": noisy, "blurred": blurred}


@pytest.fixture(scope="module")
def brisque():
    return create_quality_scorer("brisque")


def test_registry_lists_scorers():
    assert {"brisque", "sharpness", "clip", "perceptual", "vlm"} <= set(list_quality_scorers())
    with pytest.raises(UnknownNameError, match="brisque.*sharpness"):
        create_quality_scorer("niqe")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> str:
    """A random tiny CLIP with its processor, saved with save_pretrained (the path a real
    checkpoint takes); the tokenizer is byte-level and built offline."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from models.generators.tiny import build_offline_clip_tokenizer

    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    config = CLIPConfig(
        text_config=dict(vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=77, bos_token_id=512, eos_token_id=513, pad_token_id=513),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=build_offline_clip_tokenizer())
    processor.save_pretrained(folder)
    return str(folder)


def fake_vlm(image, prompt):
    """A stand-in VLM answering in DiffSeg30k's format: brighter images look 'more natural'."""
    return f"{int(image.mean() // 52)}(score), the reason is that the lighting is plausible."


@pytest.mark.parametrize("name", QUALITY_SCORERS.names())
def test_every_scorer_honours_the_interface(name, photos, tiny_clip):
    if name == "dreamsim":  # optional packages + release files: tests/models/test_dreamsim.py checks the same
        pytest.skip("dreamsim runs only with its optional packages and local release files")
    kwargs = {"clip": {"model": tiny_clip}, "vlm": {"model": fake_vlm}}.get(name, {})  # tiny local models
    scorer = create_quality_scorer(name, **kwargs)
    assert scorer.name == name
    assert isinstance(scorer.higher_is_better, bool)
    assert set(scorer.needs) <= {"prompt", "reference"}
    context = {"prompt": ["make the sky starry"], "reference": photos["blurred"]}
    low, high = scorer.valid_range
    value = scorer.score(photos["clean"], **{k: context[k] for k in scorer.needs})
    assert isinstance(value, float) and np.isfinite(value)
    assert low <= value <= high


def test_brisque_prefers_the_clean_photo(brisque, photos):
    scores = {k: brisque.score(v) for k, v in photos.items()}
    assert all(np.isfinite(s) for s in scores.values()), scores
    assert brisque.higher_is_better is False
    assert scores["clean"] < scores["noisy"], scores
    assert scores["clean"] < scores["blurred"], scores
    # The seed's filter (BR-Gen drops BRISQUE > 60) keeps the clean photo and drops the blur.
    assert scores["clean"] < 60 < scores["blurred"], scores


def test_brisque_matches_the_brisque_package(brisque, photos):
    """Same features and model as brisque 0.2.0's own code path (with its numpy-2 bug bypassed)."""
    package = pytest.importorskip("brisque")

    class PackageBrisque(package.BRISQUE):
        # brisque 0.2.0 leaves 1-element arrays among its features; numpy 2 refuses float() on them.
        def calculate_brisque_features(self, image, kernel_size=7, sigma=7 / 6):
            features = super().calculate_brisque_features(image, kernel_size, sigma)
            return np.array([float(np.asarray(f).reshape(-1)[0]) for f in features])

    reference = PackageBrisque(url=False)
    for image in photos.values():
        assert brisque.score(image) == pytest.approx(reference.score(image), abs=0.05)


def test_brisque_needs_no_network(monkeypatch, photos):
    def refuse(*args, **kwargs):
        raise AssertionError("BRISQUE tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert np.isfinite(create_quality_scorer("brisque").score(photos["clean"]))


def test_sharpness_drops_with_blur(photos):
    sharpness = create_quality_scorer("sharpness")
    assert sharpness.higher_is_better is True
    assert sharpness.score(photos["blurred"]) < sharpness.score(photos["clean"])
    assert sharpness.score(np.full((16, 16, 3), 90, dtype=np.uint8)) == 0.0


@pytest.mark.parametrize("name", ["brisque", "sharpness"])
@pytest.mark.parametrize(
    ("image", "problem"),
    [
        (np.zeros((64, 64, 3), dtype=np.float32), "uint8"),
        (np.zeros((64, 64), dtype=np.uint8), "3 channels"),
        (np.zeros((64, 64, 4), dtype=np.uint8), "3 channels"),
        (np.zeros((2, 2, 3), dtype=np.uint8), "too small"),
    ],
)
def test_bad_input_raises(name, image, problem):
    with pytest.raises(ValueError, match=problem):
        create_quality_scorer(name).score(image)


def test_brisque_rejects_small_and_flat_images(brisque):
    with pytest.raises(ValueError, match="too small"):
        brisque.score(np.zeros((16, 300, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="flat"):
        brisque.score(np.full((64, 64, 3), 128, dtype=np.uint8))


# --------------------------------------------------------------------------- CLIP score
def test_clip_score_loads_a_local_checkpoint_and_scores_prompts(tiny_clip, photos):
    clip = create_quality_scorer("clip", model=tiny_clip)
    one = clip.score(photos["clean"], prompt="an astronaut")
    again = clip.score(photos["clean"], prompt="an astronaut")
    both = clip.score(photos["clean"], prompt=["an astronaut", "a red rocket"])
    other = clip.score(photos["clean"], prompt="a red rocket")
    assert one == pytest.approx(again)
    assert both == pytest.approx((one + other) / 2, abs=1e-4)  # mean over the sample's prompts
    with pytest.raises(ValueError, match="prompt"):
        clip.score(photos["clean"], prompt=["", "  "])


def test_clip_score_never_downloads(tmp_path):
    with pytest.raises(OSError):
        create_quality_scorer("clip", model=str(tmp_path / "no-such-checkpoint"))


# --------------------------------------------------------------------------- perceptual distance
def test_perceptual_distance_is_zero_for_identical_and_grows_with_the_edit(photos):
    scorer = create_quality_scorer("perceptual")
    base = photos["clean"]
    small, large = base.copy(), base.copy()
    small[100:120, 100:120] = 0
    large[40:200, 40:200] = 0
    assert scorer.score(base, reference=base) == 0.0
    assert 0 < scorer.score(small, reference=base) < scorer.score(large, reference=base)
    assert scorer.perceptual is False  # random init: documented as a stand-in
    with pytest.raises(ValueError, match="reference"):
        scorer.score(base)
    with pytest.raises(ValueError, match="differ in size"):
        scorer.score(base, reference=base[:128])


def test_perceptual_loads_backbone_and_lpips_linear_weights_from_files(tmp_path, photos):
    import torch
    import torchvision

    backbone = tmp_path / "alexnet.pth"  # torchvision's layout, convolutional part only (LPIPS uses no more)
    torch.save({f"features.{k}": v for k, v in torchvision.models.alexnet(weights=None).features.state_dict().items()},
               backbone)
    lin = tmp_path / "alex_lin.pth"  # the LPIPS v0.1 file layout
    torch.save({f"lin{k}.model.1.weight": torch.full((1, c, 1, 1), 0.5) for k, c in enumerate([64, 192, 384, 256, 256])}, lin)
    uniform = create_quality_scorer("perceptual", weights=str(backbone))
    weighted = create_quality_scorer("perceptual", weights=str(backbone), lin_weights=str(lin))
    assert uniform.perceptual is True
    edited = photos["noisy"]
    assert weighted.score(edited, reference=photos["clean"]) == pytest.approx(
        0.5 * uniform.score(edited, reference=photos["clean"]), rel=1e-5)
    with pytest.raises(FileNotFoundError):
        create_quality_scorer("perceptual", weights=str(tmp_path / "missing.pth"))


# --------------------------------------------------------------------------- VLM 0-5 score
@pytest.mark.parametrize(("answer", "score"), [
    ("4, the reason is that the man's pose is slightly unnatural but overall scene appears reasonable and natural.", 4),
    ("1, the reason is that the red-haired woman's face completely mismatches the context.", 1),
    ("3(score), the reason is that the table edge is blurred.", 3),
    ("**2**, the reason is that the dog has five legs.", 2),
    ("Assistant: 5(score), the reason is that nothing looks off.", 5),
    ('"0, the reason is that the face is melted."', 0),
    ("Score: 4/5. The reason is that the lighting matches.", 4),
    ("I would rate it 3 out of 5 because the shadow is missing.", 3),
    ("four, the reason is that it is mostly fine", 4),
    ("2.5, the reason is that the texture repeats.", 2.5),
])
def test_vlm_answers_in_the_wild_parse(answer, score):
    parsed = parse_quality_answer(answer)
    assert parsed.error is None and parsed.score == score
    assert parsed.reason


@pytest.mark.parametrize("answer", [
    "X(score), the reason is that [brief explanation in one sentence].",  # the template echoed back
    "7, the reason is that it is great.",
    "I'm sorry, I can't rate images of people.",
    "",
    None,
])
def test_vlm_malformed_answers_are_parse_failures_not_crashes(answer):
    parsed = parse_quality_answer(answer)
    assert parsed.score is None and parsed.error


def test_vlm_scorer_uses_the_diffseg30k_prompt_and_reports_parse_failures(photos):
    seen = []

    def model(image, prompt):
        seen.append(prompt)
        return "4(score), the reason is that it looks fine." if len(seen) == 1 else "no idea"

    scorer = create_quality_scorer("vlm", model=model)
    assert scorer.score(photos["clean"]) == 4.0
    assert seen[0] == DIFFSEG30K_QUALITY_PROMPT and "X(score), the reason is that" in seen[0]
    with pytest.raises(ValueError, match="not parseable"):
        scorer.score(photos["clean"])
    assert scorer.last_answer.raw == "no idea"


def test_vlm_scorer_takes_a_factory_path(photos):
    scorer = create_quality_scorer("vlm", model="tests.models.test_quality:fake_vlm_factory")
    assert 0 <= scorer.score(photos["clean"]) <= 5


def fake_vlm_factory():
    return fake_vlm


def test_vlm_scorer_loads_a_checkpoint_through_the_perception_adapter(photos, tmp_path):
    """A checkpoint folder goes through models.perception.vlm (the tiny random Qwen2.5-VL here):
    random weights answer byte soup, which must end as a parse failure or a 0-5 score."""
    from models.perception.tiny import tiny_checkpoint
    from models.quality.vlm_score import DIFFSEG30K_DEMONSTRATIONS, with_demonstrations

    folder = tiny_checkpoint("qwen2.5-vl", tmp_path)
    scorer = create_quality_scorer("vlm", model=str(folder), vlm="qwen2.5-vl", vlm_kwargs={"max_new_tokens": 8})
    try:
        assert 0 <= scorer.score(photos["clean"]) <= 5
    except ValueError as err:
        assert "not parseable" in str(err)
    assert isinstance(scorer.last_answer.raw, str)
    question = with_demonstrations(DIFFSEG30K_QUALITY_PROMPT)
    assert question.startswith(DIFFSEG30K_QUALITY_PROMPT) and all(d in question for d in DIFFSEG30K_DEMONSTRATIONS)
    with pytest.raises(UnknownNameError, match="qwen2.5-vl"):  # lists the known VLMs
        create_quality_scorer("vlm", model=str(folder), vlm="no-such-vlm")
