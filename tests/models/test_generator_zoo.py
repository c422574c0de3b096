"""The generator zoo, entry by entry, on tiny random models (offline, CPU).

For every registry entry: a tiny random model of that architecture is built from a config and
saved with ``save_pretrained`` (a TorchScript file for LaMa / MAT), then the entry is built by
the registry and run through the same loading code a real checkpoint takes. Each run checks
the output size, the label map values, that pixels outside the edited region are unchanged and
that provenance names the entry and its model. Unsupported entries must fail with their reason.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import yaml

from models.generators import (
    GENERATORS,
    TEXT_TO_IMAGE,
    EditSpec,
    GeneratorNotSupportedError,
    apply_edits,
    cached_pipelines,
    clear_pipeline_cache,
    create_generator,
    create_text_to_image,
    generator_table,
    list_generators,
    list_text_to_image,
    load_pipeline,
    set_max_loaded,
)
from models.generators import tiny_zoo
from models.tiny_brgen import script_tiny_inpainter

SIZE = 64
HAS_SENTENCEPIECE = importlib.util.find_spec("sentencepiece") is not None
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def image():
    return cv2.resize(skimage.data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def mask():
    region = np.zeros((SIZE, SIZE), bool)
    region[16:48, 20:44] = True
    return region


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Tiny checkpoints (``models.generators.tiny_zoo.TinyZoo``), built lazily (only what the
    selected tests need) and once per module."""
    return tiny_zoo.TinyZoo(tmp_path_factory.mktemp("zoo"), extra={
        "lama": lambda root, zoo: script_tiny_inpainter(root / "tiny-lama.pt", with_noise=False),
        "mat": lambda root, zoo: script_tiny_inpainter(root / "tiny-mat.pt", with_noise=True)})


# entry -> kwargs for the tiny model (a callable of the `zoo` fixture), or the error it must raise.
TINY = dict(steps=2, resolution=None)
ENTRIES = {
    "telea": lambda z: {},
    "navier_stokes": lambda z: {},
    "copy_move": lambda z: {},
    "splicing": lambda z: {},
    "tiny-sd": lambda z: {"model": str(z("sd-inpaint")), "steps": 2},
    "sd-inpaint": lambda z: {"model": str(z("sd-inpaint")), "steps": 2},
    "sdxl-inpaint": lambda z: {"model": str(z("sdxl-inpaint")), **TINY},
    "sdxl-inpaint-lora": lambda z: {"model": str(z("sdxl-inpaint")), "lora": str(z("lora")), **TINY},
    "sd3-inpaint": lambda z: {"model": str(z("sd3")), **TINY},
    "flux-fill": lambda z: {"model": str(z("flux-fill")), **TINY},
    "flux-inpaint": lambda z: {"model": str(z("flux-guided")), **TINY},
    "flux-kontext-inpaint": lambda z: {"model": str(z("flux-guided")), **TINY},
    "qwen-image-inpaint": lambda z: {"model": str(z("qwen-image")), **TINY},
    "qwen-image-edit-inpaint": lambda z: {"model": str(z("qwen-image-edit")), "steps": 2},  # runs at 1 MP, always
    "z-image-inpaint": lambda z: {"model": str(z("z-image")), **TINY},
    "chroma-inpaint": lambda z: {"model": str(z("chroma")), **TINY},
    "amused-inpaint": lambda z: {"model": str(z("amused")), **TINY},  # runs at 256 px (sides multiples of 16**2)
    # 64 Qwen3 tokens hold the chat-templated prompt; the default 512 only pads (and costs seconds on CPU).
    "flux2-klein-inpaint": lambda z: {"model": str(z("flux2-klein")), "max_sequence_length": 64, **TINY},
    "kandinsky22-inpaint": lambda z: {"model": str(z("kandinsky")[0]), "prior_model": str(z("kandinsky")[1]),
                                      "prior_steps": 2, **TINY},
    "hunyuandit-blend": lambda z: {"model": str(z("hunyuandit")), **TINY},
    "kolors-blend": lambda z: {"model": str(z("kolors")), **TINY},
    "if-inpaint": lambda z: {"model": str(z("if")[0]), "sr_model": str(z("if")[1]), "steps": 2, "sr_steps": 2},
    "lama": lambda z: {"model": str(z("lama"))},
    "mat": lambda z: {"model": str(z("mat")), "resolution": 32},
    "glide": GeneratorNotSupportedError,
    "glide-inpaint": lambda z: {**z("glide"), "size": 64, "base_respacing": "2", "upsample_respacing": "2"},
    "brushnet": lambda z: {"model": str(z("brushnet")[0]), "brushnet": str(z("brushnet")[1]), **TINY},
    "powerpaint": lambda z: {"model": str(z("powerpaint")[0]), "powerpaint": str(z("powerpaint")[1]), **TINY},
    "brushnet-sdxl": lambda z: {"model": str(z("brushnet-sdxl")[0]), "brushnet": str(z("brushnet-sdxl")[1]), **TINY},
}


def test_every_registered_generator_is_covered_here():
    assert set(ENTRIES) == set(list_generators())
    rows = {row["name"]: row for row in generator_table()}
    for name, how in ENTRIES.items():
        assert (rows[name]["supported"] is False) == (how is GeneratorNotSupportedError), name


# Entries whose pipeline runs at a fixed megapixel whatever the input size: tens of seconds on CPU.
SLOW = {"qwen-image-edit-inpaint"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(ENTRIES)])
def test_every_entry_on_its_tiny_model(name, zoo, image, mask):
    how = ENTRIES[name]
    if how is GeneratorNotSupportedError:
        with pytest.raises(GeneratorNotSupportedError, match=name):
            create_generator(name, model="anything")
        assert GENERATORS.meta(name)["reason"].startswith(name)
        return
    if name == "kolors-blend" and not HAS_SENTENCEPIECE:
        with pytest.raises(GeneratorNotSupportedError, match="sentencepiece"):
            create_generator(name, model="anything")
        return
    generator = create_generator(name, **how(zoo))
    if name == "splicing":
        donor = np.full_like(image, 200)
        generator.use_donors({"base": lambda: image, "donor": lambda: donor}, exclude="base")
    edits = [EditSpec(name, mask, "a red balloon", "attribute", seed=3, region_id="r1")]
    edited, label_map, provenance = apply_edits(image, edits, {name: generator}, {name: 7})
    assert edited.shape == image.shape and edited.dtype == np.uint8
    assert np.array_equal(edited[~mask], image[~mask])  # nothing outside the region moved
    assert set(np.unique(label_map)) == {0, 7} and (label_map[mask] == 7).all()
    assert provenance[0]["changed_pixel_ratio"] > 0.3  # the region really carries the generator's output
    record = provenance[0]
    assert record["generator"] == name and record["label"] == 7 and record["seed"] == 3
    assert record["registry"] == generator.describe()["registry"]
    if "model" in how(zoo):
        assert record["model"] == how(zoo)["model"]
    if name == "splicing":
        assert record["details"]["donor_id"] == "donor" and (edited[mask] == 200).all()
    if name == "copy_move":
        dy, dx = record["details"]["source_offset"]
        ys, xs = np.nonzero(mask)
        assert np.array_equal(edited[ys, xs], image[(ys + dy) % SIZE, (xs + dx) % SIZE])


@pytest.mark.parametrize("name", ["sdxl-inpaint", "sd3-inpaint", "flux-fill", "hunyuandit-blend", "qwen-image-inpaint",
                                  "flux-kontext-inpaint", "z-image-inpaint", "chroma-inpaint", "flux2-klein-inpaint"])
def test_diffusion_entries_batch_several_seeds_in_one_call(name, zoo, image, mask):
    generator = create_generator(name, **ENTRIES[name](zoo))
    first, second = generator.inpaint_candidates(image, mask, "a cat", [1, 2])
    assert not np.array_equal(first, second)
    assert np.array_equal(first[~mask], image[~mask]) and np.array_equal(second[~mask], image[~mask])
    again = generator.inpaint_candidates(image, mask, "a cat", [1, 2])
    assert np.array_equal(first, again[0])  # deterministic per seed


def test_a_non_square_image_keeps_its_size(zoo):
    photo = cv2.resize(skimage.data.chelsea(), (80, 48), interpolation=cv2.INTER_AREA)
    region = np.zeros(photo.shape[:2], bool)
    region[10:30, 20:60] = True
    for name in ("flux-fill", "kandinsky22-inpaint", "if-inpaint"):
        out = create_generator(name, **ENTRIES[name](zoo)).inpaint(photo, region, "a hat", seed=0)
        assert out.shape == photo.shape and np.array_equal(out[~region], photo[~region]), name


def test_sd_inpaint_runs_a_base_checkpoint_by_latent_blending(zoo, image, mask):
    # OpenSDI's SD2.1 / SDXL: AutoPipelineForInpainting on the 4-channel base model.
    generator = create_generator("sd-inpaint", model=str(zoo("sd")), steps=2)
    out = generator.inpaint(image, mask, "a dog", seed=0)
    assert np.array_equal(out[~mask], image[~mask]) and (out[mask] != image[mask]).any()


def test_qwen_image_guidance_is_true_cfg_and_needs_a_negative_prompt(zoo, image, mask):
    model = str(zoo("qwen-image"))
    guided = create_generator("qwen-image-inpaint", model=model, **TINY)  # 4.0 with " " (the model card)
    unguided = create_generator("qwen-image-inpaint", model=model, guidance_scale=1.0, negative_prompt=None, **TINY)
    assert guided.guidance_kwargs() == {"true_cfg_scale": 4.0} and guided.negative_prompt == " "
    assert not np.array_equal(guided.inpaint(image, mask, "a cat", 0), unguided.inpaint(image, mask, "a cat", 0))
    with pytest.raises(ValueError, match="negative prompt"):
        create_generator("qwen-image-inpaint", model=model, negative_prompt=None)


def test_chroma_pipeline_gets_the_config_field_diffusers_reads(zoo):
    # diffusers 0.42.1's ChromaInpaintPipeline reads transformer.config.guidance_embeds, which the
    # Chroma transformer lacks; the adapter records False (the zoo test above runs the call).
    from diffusers import ChromaTransformer2DModel

    assert "guidance_embeds" not in ChromaTransformer2DModel.from_pretrained(zoo("chroma") / "transformer").config
    pipe = create_generator("chroma-inpaint", model=str(zoo("chroma")), **TINY).load()
    assert pipe.transformer.config.guidance_embeds is False


@pytest.mark.slow
def test_qwen_image_edit_runs_at_the_pipelines_megapixel_batched_and_seeded(zoo, image, mask):
    generator = create_generator("qwen-image-edit-inpaint", **ENTRIES["qwen-image-edit-inpaint"](zoo))
    assert generator.negative_prompt == " " and generator.guidance_kwargs() == {"true_cfg_scale": 4.0}
    # The pipeline's own size (calculate_dimensions(1024 * 1024, ratio), sides rounded to 32), whatever the input's.
    assert generator.run_size(SIZE, SIZE) == (1024, 1024) and generator.run_size(48, 80) == (800, 1312)
    first, second = generator.inpaint_candidates(image, mask, "make it red", [1, 2])
    assert first.shape == image.shape and first.dtype == np.uint8 and not np.array_equal(first, second)
    assert np.array_equal(first[~mask], image[~mask]) and np.array_equal(second[~mask], image[~mask])
    again = generator.inpaint_candidates(image, mask, "make it red", [1, 2])  # same batch shape: float-exact
    assert np.array_equal(first, again[0]) and np.array_equal(second, again[1])  # deterministic per seed
    with pytest.raises(TypeError, match="resolution"):
        create_generator("qwen-image-edit-inpaint", model=str(zoo("qwen-image-edit")), resolution=512)
    with pytest.raises(ValueError, match="1024"):
        create_generator("qwen-image-edit-inpaint", model=str(zoo("qwen-image-edit")), max_sequence_length=2048)


def test_amused_masks_every_token_the_region_touches_at_a_size_the_pipeline_keeps(zoo, image, mask):
    from models.generators.amused import token_mask

    region = np.zeros((256, 256), bool)
    region[5, 5] = region[40:48, 20:40] = True  # one pixel of patch (0, 0); parts of patches (2, 1) and (2, 2)
    assert set(zip(*np.nonzero(token_mask(region, 16)))) == {(0, 0), (2, 1), (2, 2)}
    with pytest.raises(ValueError, match="multiples"):
        token_mask(region[:250], 16)
    generator = create_generator("amused-inpaint", **ENTRIES["amused-inpaint"](zoo))
    pipe = generator.load()
    # The pipeline floors the token grid's sides to multiples of 16: sides must be multiples of 16 * 16.
    assert pipe.vae_scale_factor == 16 and generator.run_multiple(pipe) == 256
    assert generator._run_size(48, 80, 256) == (256, 256) and generator._run_size(300, 500, 256) == (256, 512)
    first, second = generator.inpaint_candidates(image, mask, "a cat", [1, 2])  # one pipeline call per seed
    assert not np.array_equal(first, second) and np.array_equal(first[~mask], image[~mask])
    assert np.array_equal(generator.inpaint(image, mask, "a cat", 1), first)


def test_z_image_refuses_float16(zoo):
    with pytest.raises(ValueError, match="float16"):
        create_generator("z-image-inpaint", model=str(zoo("z-image")), dtype="float16")


def test_flux_kontext_and_dev_take_no_negative_prompt(zoo):
    for name in ("flux-kontext-inpaint", "flux-inpaint"):
        with pytest.raises(TypeError, match="negative_prompt"):
            create_generator(name, model=str(zoo("flux-guided")), negative_prompt="blurry")
    kontext = create_generator("flux-kontext-inpaint", model=str(zoo("flux-guided")))
    assert kontext.describe()["auto_resize"] is False and kontext.extra_call_kwargs()["_auto_resize"] is False


def test_flux2_klein_guidance_is_cfg_on_the_base_model_only(zoo, image, mask):
    # FLUX.2 [klein] 4B is distilled: guidance > 1 would be ignored by the pipeline, so it is refused;
    # the undistilled base runs CFG against the empty prompt (the pipeline's own negative).
    kwargs = dict(max_sequence_length=64, **TINY)
    with pytest.raises(ValueError, match="distilled"):
        create_generator("flux2-klein-inpaint", model=str(zoo("flux2-klein")), guidance_scale=4.0, **kwargs).load()
    base = str(zoo("flux2-klein-base"))
    guided = create_generator("flux2-klein-inpaint", model=base, guidance_scale=4.0, **kwargs)
    unguided = create_generator("flux2-klein-inpaint", model=base, **kwargs)
    assert guided.load().config.is_distilled is False and unguided.guidance_scale == 1.0
    first = guided.inpaint(image, mask, "a cat", 0)
    assert np.array_equal(first[~mask], image[~mask])
    assert not np.array_equal(first, unguided.inpaint(image, mask, "a cat", 0))
    with pytest.raises(TypeError, match="negative_prompt"):
        create_generator("flux2-klein-inpaint", model=base, negative_prompt="blurry")


# --------------------------------------------------------------------------- LoRA variant
def test_lora_variant_fuses_its_file_into_its_own_pipeline(zoo, image, mask):
    import safetensors.torch
    import torch

    clear_pipeline_cache()
    parent = create_generator("sdxl-inpaint", **ENTRIES["sdxl-inpaint"](zoo))
    variant = create_generator("sdxl-inpaint-lora", **ENTRIES["sdxl-inpaint-lora"](zoo), lora_scale=0.5)
    base_pipe, lora_pipe = parent.load(), variant.load()
    assert base_pipe is not lora_pipe and len(cached_pipelines()) == 2
    assert type(lora_pipe.scheduler).__name__ == "DDIMScheduler"
    assert lora_pipe.scheduler.config.timestep_spacing == "trailing"
    assert variant.steps == 2 and variant.guidance_scale == 0.0  # Hyper-SD: no CFG
    assert variant.fused_layers["unet"] > 0
    raw = safetensors.torch.load_file(str(zoo("lora")))
    name = next(n for n, _ in base_pipe.unet.named_modules() if n.endswith("attn1.to_q"))
    key = "lora_unet_" + name.replace(".", "_")
    down, up = raw[f"{key}.lora_down.weight"], raw[f"{key}.lora_up.weight"]
    expected = base_pipe.unet.get_submodule(name).weight + 0.5 * (2.0 / 4) * (up @ down)  # scale * alpha / rank
    assert torch.allclose(lora_pipe.unet.get_submodule(name).weight, expected, atol=1e-5)
    assert variant.describe()["lora"] == str(zoo("lora"))
    assert not np.array_equal(variant.inpaint(image, mask, "x", 0), parent.inpaint(image, mask, "x", 0))


def test_lora_errors_are_clear(zoo, tmp_path):
    with pytest.raises(FileNotFoundError, match="LoRA file"):
        create_generator("sdxl-inpaint-lora", model=str(zoo("sdxl-inpaint")), lora=str(tmp_path / "absent.safetensors"))
    with pytest.raises(ValueError, match="pickled"):
        create_generator("sdxl-inpaint-lora", model=str(zoo("sdxl-inpaint")), lora=str(tmp_path / "weights.bin"))
    with pytest.raises(ValueError, match="lora_weight_name"):
        create_generator("sdxl-inpaint-lora", model=str(zoo("sdxl-inpaint")), lora="ByteDance/Hyper-SD")


# --------------------------------------------------------------------------- loading once
def test_each_checkpoint_is_loaded_once_per_process_and_the_cache_can_be_capped(zoo):
    clear_pipeline_cache()
    a = create_generator("sd3-inpaint", **ENTRIES["sd3-inpaint"](zoo))
    b = create_generator("sd3-inpaint", **{**ENTRIES["sd3-inpaint"](zoo), "steps": 5})
    assert a.load() is b.load() and len(cached_pipelines()) == 1
    try:
        set_max_loaded(1)
        flux = create_generator("flux-fill", **ENTRIES["flux-fill"](zoo))
        flux.load()
        assert [key[0] for key in cached_pipelines()] == ["FluxFillPipeline"]  # sd3 dropped
    finally:
        set_max_loaded(None)
    with pytest.raises(ValueError, match="dtype"):
        load_pipeline("FluxFillPipeline", str(zoo("flux-fill")), dtype="float64")


def test_torchscript_entries_need_their_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="big-lama.pt"):
        create_generator("lama", model=str(tmp_path / "big-lama.pt"))
    with pytest.raises(FileNotFoundError, match="MAT"):
        create_generator("mat", model=str(tmp_path / "mat.pt"))


def test_mat_style_noise_follows_the_seed(zoo, image, mask):
    mat = create_generator("mat", **ENTRIES["mat"](zoo))
    assert mat.uses_seed
    assert not np.array_equal(mat.inpaint(image, mask, "", 1), mat.inpaint(image, mask, "", 2))
    lama = create_generator("lama", **ENTRIES["lama"](zoo))
    assert not lama.uses_seed and np.array_equal(lama.inpaint(image, mask, "", 1), lama.inpaint(image, mask, "", 2))


def test_splicing_without_donors_is_a_clear_error(image, mask):
    with pytest.raises(RuntimeError, match="donor"):
        create_generator("splicing").inpaint(image, mask, "", 0)


# --------------------------------------------------------------------------- text-to-image
T2I = {
    "sd-txt2img": lambda z: {"model": str(z("sd"))},
    "sdxl-txt2img": lambda z: {"model": str(z("sdxl"))},
    "sd3-txt2img": lambda z: {"model": str(z("sd3"))},
    "flux-txt2img": lambda z: {"model": str(z("flux"))},
    "hunyuandit-txt2img": lambda z: {"model": str(z("hunyuandit"))},
    "kolors-txt2img": lambda z: {"model": str(z("kolors"))},
}


def test_every_text_to_image_entry_is_covered_here():
    assert set(T2I) == set(list_text_to_image())


@pytest.mark.parametrize("name", sorted(T2I))
def test_every_text_to_image_entry_on_its_tiny_model(name, zoo):
    if name == "kolors-txt2img" and not HAS_SENTENCEPIECE:
        with pytest.raises(GeneratorNotSupportedError, match="sentencepiece"):
            create_text_to_image(name, model="anything")
        return
    generator = create_text_to_image(name, **T2I[name](zoo), steps=2, resolution=None)
    first = generator.generate("a red balloon", height=48, width=64, seed=0)
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8 and first.std() > 1.0
    assert np.array_equal(first, generator.generate("a red balloon", 48, 64, 0))
    assert generator.describe()["model"] == T2I[name](zoo)["model"]


# --------------------------------------------------------------------------- conf/gpu
def test_the_gpu_generator_list_names_real_entries_with_accepted_arguments():
    config = yaml.safe_load((REPO / "conf" / "gpu" / "globals.yml").read_text())
    from pipelines.contract.labels import generator_entries, generator_names

    entries = generator_entries(config["generators"])
    for entry in entries:
        registry = GENERATORS if entry["task"] == "inpaint" else TEXT_TO_IMAGE
        builder = registry.get(entry["generator"])
        assert registry.meta(entry["generator"]).get("supported", True) is not False, entry["name"]
        accepted = inspect.signature(builder).parameters
        assert set(entry["kwargs"]) <= set(accepted), (entry["name"], set(entry["kwargs"]) - set(accepted))
        if "device" in accepted:
            # Diffusion models run in half precision; the TorchScript GANs (LaMa's FFT layers) stay float32.
            precisions = ("float32",) if registry.meta(entry["generator"]).get("pipeline") == "torch.jit" else ("float16", "bfloat16")
            assert entry["kwargs"].get("device") == "cuda" and entry["kwargs"].get("dtype") in precisions, entry["name"]
    names = generator_names(config["generators"])
    assert names[:8] == ["sd2", "sd3.5", "sdxl", "flux", "glide", "kolors", "hunyuan", "kandinsky2.2"]
    assert {"sd1.5", "sd2.1", "sd3", "lama", "mat", "copy_move", "splicing"} <= set(names)
    lora = next(e for e in entries if e["generator"] == "sdxl-inpaint-lora")
    assert lora["label"] == "sdxl" and lora["kwargs"]["steps"] == 8 and lora["kwargs"]["scheduler"] == "DDIMScheduler"
