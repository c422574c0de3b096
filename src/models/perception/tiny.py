"""Randomly initialised, tiny perception checkpoints built offline from configs.

Each builder makes a model of the real architecture (Qwen2.5-VL, Qwen2-VL, LLaVA, Llama 3.2
Vision, InternVL, GroundingDINO, SAM, Florence-2) at a few hundred thousand parameters, with a processor whose tokenizer is built without any
download, and saves both with ``save_pretrained`` into one folder. The adapters then load that
folder through the very same ``from_pretrained`` code a real checkpoint takes. Outputs are
whatever random weights produce (byte soup from the VLMs, arbitrary boxes and masks): they
exercise every code path on a CPU, not the quality of the models.

The tokenizers:
- Qwen: ``Qwen2Tokenizer`` (byte-level BPE) with the 256 byte symbols and no merges, plus the
  chat and vision special tokens; the chat template is Qwen2-VL's own.
- LLaVA: the same byte-level tokenizer with an "<image>" token; LLaVA 1.5's chat template.
- Llama 3.2 Vision (Mllama) and InternVL: the same byte-level tokenizer with their own special
  tokens and chat templates.
- GroundingDINO: ``BertTokenizer`` (WordPiece) with single letters and digits as pieces, laid out
  so that [CLS] = 101, [SEP] = 102, "." = 1012 and "?" = 1029 as in bert-base-uncased: the
  GroundingDINO model hard-codes these ids to find the phrase boundaries.
"""

from __future__ import annotations

from pathlib import Path

from .vocabulary import VOCABULARIES

# Qwen2-VL / Qwen2.5-VL's chat template (the checkpoints' own, text and images only).
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_QWEN_SPECIALS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
)


def build_offline_qwen_tokenizer():
    """A ``Qwen2Tokenizer`` built without files: one token per UTF-8 byte plus Qwen's special
    tokens (ids 256..262), so that any text round-trips."""
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for token in _QWEN_SPECIALS:
        vocab[token] = len(vocab)
    return Qwen2Tokenizer(vocab=vocab, merges=[], extra_special_tokens=list(_QWEN_SPECIALS[1:]))


def _save_random_vlm(folder: Path, model_cls: type, config, processor, eos_id: int, pad_id: int, seed: int) -> Path:
    """Build ``model_cls(config)`` with seeded random weights (the global RNG untouched), set its
    generation end / padding ids, and save it with ``processor`` into ``folder``."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = pad_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _build_tiny_qwen(folder: str | Path, version: str, seed: int) -> Path:
    import transformers

    folder = Path(folder)
    tokenizer = build_offline_qwen_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _QWEN_SPECIALS}
    # Small images: 4..16 patches of 28 x 28 pixels after the 2 x 2 merge.
    image_processor = transformers.Qwen2VLImageProcessor(min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28)
    video_processor = transformers.Qwen2VLVideoProcessor()
    text = dict(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0},
        bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    if version == "2.5":
        config_cls, model_cls, processor_cls = (transformers.Qwen2_5_VLConfig,
                                                transformers.Qwen2_5_VLForConditionalGeneration,
                                                transformers.Qwen2_5_VLProcessor)
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1])
    else:
        config_cls, model_cls, processor_cls = (
            transformers.Qwen2VLConfig, transformers.Qwen2VLForConditionalGeneration, transformers.Qwen2VLProcessor)
        vision = dict(depth=2, embed_dim=32, hidden_size=32, mlp_ratio=2, num_heads=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2)
    config = config_cls(
        text_config=text, vision_config=vision,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    processor = processor_cls(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                              chat_template=QWEN_VL_CHAT_TEMPLATE)
    return _save_random_vlm(folder, model_cls, config, processor, ids["<|im_end|>"], ids["<|endoftext|>"], seed)


def build_tiny_qwen2_5_vl(folder: str | Path, seed: int = 0) -> Path:
    """Save a random tiny Qwen2.5-VL (model + processor + chat template) into ``folder``."""
    return _build_tiny_qwen(folder, "2.5", seed)


def build_tiny_qwen2_vl(folder: str | Path, seed: int = 0) -> Path:
    """Save a random tiny Qwen2-VL (model + processor + chat template) into ``folder``."""
    return _build_tiny_qwen(folder, "2", seed)


# LLaVA 1.5's chat template (the llava-hf checkpoints' own, text and images only).
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def build_tiny_llava(folder: str | Path, seed: int = 0) -> Path:
    """Save a random tiny LLaVA (CLIP vision tower at 32 px, Llama language model) with a
    byte-level tokenizer, a CLIP image processor and LLaVA 1.5's chat template into ``folder``.

    The real checkpoints use a SentencePiece Llama tokenizer; any tokenizer with an "<image>"
    token drives the same model and processor code.
    """
    import torch
    import transformers
    from tokenizers import pre_tokenizers

    folder = Path(folder)
    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    specials = ("<unk>", "<image>", "</s>")
    for token in specials:
        vocab[token] = len(vocab)
    tokenizer = transformers.Qwen2Tokenizer(vocab=vocab, merges=[], extra_special_tokens=list(specials[1:]),
                                            unk_token="<unk>", eos_token="</s>", pad_token="<unk>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    image_processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
            patch_size=8, projection_dim=32,
        ),
        text_config=transformers.LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=None,
            eos_token_id=ids["</s>"], pad_token_id=ids["<unk>"],
        ),
        image_token_id=ids["<image>"], vision_feature_layer=-1, vision_feature_select_strategy="default",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.LlavaForConditionalGeneration(config)
    processor = transformers.LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=LLAVA_CHAT_TEMPLATE,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# bert-base-uncased ids that GroundingDINO's text masks rely on.
_BERT_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}
_BERT_VOCAB_SIZE = 1030


def build_offline_bert_tokenizer():
    """A ``BertTokenizer`` built without files: letters, digits and a few signs as word pieces
    (each also as a "##" continuation), in a 1030-token vocabulary with bert-base-uncased's ids
    for [PAD], [UNK], [CLS], [SEP], [MASK], "." and "?"."""
    from transformers import BertTokenizer

    by_id = {i: f"[unused{i}]" for i in range(_BERT_VOCAB_SIZE)}
    for token, i in _BERT_IDS.items():
        by_id[i] = token
    free = iter(i for i in range(104, 1012))
    for char in "abcdefghijklmnopqrstuvwxyz0123456789-,'":
        for piece in (char, "##" + char):
            by_id[next(free)] = piece
    # Whole words of the COCO vocabulary, so that a category takes 1-3 tokens as with the real
    # tokenizer (and the full vocabulary needs two prompts, as with a real checkpoint).
    words = {w for name in VOCABULARIES["coco"] for w in name.replace("-", " ").split()}
    for word in sorted(words - set(by_id.values())):
        by_id[next(free)] = word
    return BertTokenizer(vocab={token: i for i, token in sorted(by_id.items())})


def build_tiny_grounding_dino(folder: str | Path, seed: int = 0) -> Path:
    """Save a random tiny GroundingDINO (Swin backbone, BERT text encoder, 2 decoder layers,
    30 queries) and its processor (the longer image side resized to 128 px) into ``folder``."""
    import torch
    import transformers

    folder = Path(folder)
    tokenizer = build_offline_bert_tokenizer()
    image_processor = transformers.GroundingDinoImageProcessor(size={"shortest_edge": 128, "longest_edge": 128})
    config = transformers.GroundingDinoConfig(
        backbone_config=transformers.SwinConfig(
            embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, image_size=128,
            out_features=["stage2", "stage3", "stage4"],
        ),
        text_config=transformers.BertConfig(
            vocab_size=_BERT_VOCAB_SIZE, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=256,
        ),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=30, num_feature_levels=4,
        encoder_n_points=2, decoder_n_points=2, max_text_len=256,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.GroundingDinoForObjectDetection(config)
    model.save_pretrained(folder)
    transformers.GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_tiny_sam(folder: str | Path, seed: int = 0) -> Path:
    """Save a random tiny SAM (64 px input, 8 px patches) and its processor into ``folder``."""
    import torch
    import transformers

    folder = Path(folder)
    image_processor = transformers.SamImageProcessor(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16},
    )
    config = transformers.SamConfig(
        vision_config=transformers.SamVisionConfig(
            hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2, image_size=64,
            patch_size=8, window_size=4, global_attn_indexes=[1], num_pos_feats=8, mlp_dim=64,
        ),
        prompt_encoder_config=transformers.SamPromptEncoderConfig(
            hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4,
        ),
        mask_decoder_config=transformers.SamMaskDecoderConfig(
            hidden_size=16, mlp_dim=32, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=16,
        ),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.SamModel(config)
    model.save_pretrained(folder)
    transformers.SamProcessor(image_processor=image_processor).save_pretrained(folder)
    return folder


def build_tiny_sam2(folder: str | Path, seed: int = 0) -> Path:
    """Save a random tiny SAM 2 (Hiera with 4 stages of 16-128 channels, 64 px input) and its
    processor into ``folder``. A global-attention block must not be a stage's first (pooling)
    block in transformers' Hiera, hence two blocks in stage 3."""
    import torch
    import transformers

    folder = Path(folder)
    hiera = transformers.Sam2HieraDetConfig(
        hidden_size=16, num_attention_heads=1, image_size=[64, 64], patch_kernel_size=[7, 7], patch_stride=[4, 4],
        patch_padding=[3, 3], query_stride=[2, 2], window_positional_embedding_background_size=[4, 4],
        num_query_pool_stages=3, blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2], window_size_per_stage=[4, 4, 4, 4], global_attention_blocks=[3],
    )
    config = transformers.Sam2Config(
        vision_config=transformers.Sam2VisionConfig(
            backbone_config=hiera, backbone_channel_list=[128, 64, 32, 16],
            backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]], fpn_hidden_size=32, fpn_top_down_levels=[2, 3],
        ),
        prompt_encoder_config=transformers.Sam2PromptEncoderConfig(hidden_size=32, image_size=64, patch_size=16,
                                                                   mask_input_channels=4),
        mask_decoder_config=transformers.Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=2,
                                                               num_attention_heads=2, iou_head_hidden_dim=32),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.Sam2Model(config)
    model.save_pretrained(folder)
    image_processor = transformers.Sam2ImageProcessor(size={"height": 64, "width": 64},
                                                      mask_size={"height": 16, "width": 16})
    transformers.Sam2Processor(image_processor=image_processor).save_pretrained(folder)
    return folder


# Llama 3.2 Vision Instruct's chat template, text and images only (no tools, no date header).
MLLAMA_CHAT_TEMPLATE = (
    "{{- bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|image|>{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def _byte_vocab(specials: tuple[str, ...]) -> dict[str, int]:
    """The 256 byte-level symbols, then ``specials`` (ids 256...)."""
    from tokenizers import pre_tokenizers

    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for token in specials:
        vocab[token] = len(vocab)
    return vocab


def build_tiny_mllama(folder: str | Path, seed: int = 0) -> Path:
    """Save a random tiny Llama 3.2 Vision (Mllama: a tiled ViT at 28 px tiles, a Llama text model
    with one cross-attention layer), a byte-level tokenizer with Llama 3's special tokens and the
    Instruct checkpoints' chat template (text and images) into ``folder``."""
    import transformers

    folder = Path(folder)
    specials = ("<|begin_of_text|>", "<|end_of_text|>", "<|image|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|eot_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>")
    tokenizer = transformers.Qwen2Tokenizer(vocab=_byte_vocab(specials), merges=[], extra_special_tokens=list(specials[2:]),
                                            bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                            unk_token="<|end_of_text|>", pad_token="<|finetune_right_pad_id|>")
    tokenizer.add_bos_token = False
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    image_processor = transformers.MllamaImageProcessor(size={"height": 28, "width": 28}, max_image_tiles=2)
    config = transformers.MllamaConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_global_layers=1, attention_heads=2,
                           intermediate_size=64, vision_output_dim=64, image_size=28, patch_size=14, max_num_tiles=2,
                           intermediate_layers_indices=[0], supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]]),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, cross_attention_layers=[1],
                         max_position_embeddings=2048, bos_token_id=ids["<|begin_of_text|>"], eos_token_id=ids["<|eot_id|>"],
                         pad_token_id=ids["<|finetune_right_pad_id|>"]),
        image_token_index=ids["<|image|>"],
    )
    processor = transformers.MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                             chat_template=MLLAMA_CHAT_TEMPLATE)
    return _save_random_vlm(folder, transformers.MllamaForConditionalGeneration, config, processor,
                            ids["<|eot_id|>"], ids["<|finetune_right_pad_id|>"], seed)


# InternVL (transformers port, "-hf" checkpoints): Qwen2-style chat template with images as <IMG_CONTEXT>.
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_internvl(folder: str | Path, seed: int = 0) -> Path:
    """Save a random tiny InternVL in its transformers port (InternViT at 28 px, pixel shuffle to
    one token per tile, a Qwen2 language model), a byte-level tokenizer with InternVL's image
    tokens and a Qwen-style chat template into ``folder``."""
    import transformers

    folder = Path(folder)
    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>")
    tokenizer = transformers.Qwen2Tokenizer(
        vocab=_byte_vocab(specials), merges=[], eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                              "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})
    tokenizer.add_tokens(["<|im_start|>", "<|im_end|>"], special_tokens=True)  # in the vocabulary already
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    image_processor = transformers.GotOcr2ImageProcessor(size={"height": 28, "width": 28}, crop_to_patches=False)
    # 28 px / 14 px patches = 2 x 2 patches, pixel shuffle 0.5 -> 1 token per image.
    config = transformers.InternVLConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           image_size=[28, 28], patch_size=[14, 14]),
        text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=64, max_position_embeddings=2048,
                         eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], bos_token_id=None,
                         tie_word_embeddings=False),
        image_token_id=ids["<IMG_CONTEXT>"], image_seq_length=1, downsample_ratio=0.5,
        # Untied: with tied random embeddings the last input token ("\n") wins every step.
        tie_word_embeddings=False,
    )
    processor = transformers.InternVLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                               video_processor=transformers.InternVLVideoProcessor(),
                                               image_seq_length=1, chat_template=INTERNVL_CHAT_TEMPLATE)
    return _save_random_vlm(folder, transformers.InternVLForConditionalGeneration, config, processor,
                            ids["<|im_end|>"], ids["<|endoftext|>"], seed)


# Florence-2's task tokens and its 1000 location bins, as in the microsoft/Florence-2 checkpoints.
_FLORENCE_TASK_TOKENS = ("<od>", "</od>", "<ocr>", "</ocr>", "<cap>", "</cap>", "<ncap>", "</ncap>", "<dcap>",
                         "</dcap>", "<grounding>", "</grounding>", "<seg>", "</seg>", "<sep>", "<region_cap>",
                         "</region_cap>", "<region_to_desciption>", "</region_to_desciption>", "<proposal>",
                         "</proposal>", "<poly>", "</poly>", "<and>")


def build_offline_florence2_tokenizer():
    """A ``BartTokenizer`` built without files: the 256 byte-level symbols, BART's specials, an
    "<image>" token, Florence-2's task tokens and its location tokens <loc_0> ... <loc_999>."""
    from tokenizers import pre_tokenizers
    from transformers import BartTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    tokenizer = BartTokenizer(vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"})
    tokenizer.add_tokens(list(_FLORENCE_TASK_TOKENS) + [f"<loc_{i}>" for i in range(1000)], special_tokens=True)
    return tokenizer


def build_tiny_florence2(folder: str | Path, seed: int = 0) -> Path:
    """Save a random tiny Florence-2 (DaViT vision tower at 64 px, a 1+1-layer BART) and its
    processor into ``folder``."""
    import torch
    import transformers

    folder = Path(folder)
    tokenizer = build_offline_florence2_tokenizer()
    image_processor = transformers.CLIPImageProcessor(
        size={"height": 64, "width": 64}, do_center_crop=False, image_seq_length=5,  # 2 x 2 + 1 pooled token
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    config = transformers.Florence2Config(
        vision_config=dict(depths=[1, 1, 1, 1], embed_dim=[8, 16, 32, 64], num_heads=[1, 2, 2, 4],
                           num_groups=[1, 2, 2, 4], window_size=2, projection_dim=32, drop_path_rate=0.0,
                           max_position_embeddings=16, max_temporal_embeddings=4),
        text_config=dict(model_type="bart", vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                         max_position_embeddings=128, bos_token_id=0, pad_token_id=1, eos_token_id=2,
                         decoder_start_token_id=2, forced_bos_token_id=0, forced_eos_token_id=2),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.Florence2ForConditionalGeneration(config)
    # The parse settings the real checkpoints' processor_config.json carries for these tasks.
    post = {"pure_text": {}, "description_with_bboxes": {}, "bboxes": {},
            "phrase_grounding": {"banned_grounding_tokens": ["the image"]}}
    processor = transformers.Florence2Processor(image_processor=image_processor, tokenizer=tokenizer,
                                                post_processor_config=post)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# Tiny checkpoint builders by architecture: the VLM registry names, plus the two grounding models.
TINY_BUILDERS = {
    "qwen2.5-vl": build_tiny_qwen2_5_vl,
    "qwen2-vl": build_tiny_qwen2_vl,
    "llava": build_tiny_llava,
    "llama-3.2-vision": build_tiny_mllama,
    "internvl": build_tiny_internvl,
    "grounding-dino": build_tiny_grounding_dino,
    "sam": build_tiny_sam,
    "sam2": build_tiny_sam2,
    "florence2": build_tiny_florence2,
}


def tiny_checkpoint(architecture: str, root: str | Path, seed: int = 0) -> Path:
    """The folder ``root/tiny-<architecture>``, built there first if it holds no config.json.

    Raises:
        ValueError: no tiny builder for ``architecture`` (the message lists the known ones).
    """
    if architecture not in TINY_BUILDERS:
        raise ValueError(f"no tiny builder for {architecture!r}; known: {sorted(TINY_BUILDERS)}")
    folder = Path(root) / f"tiny-{architecture}"
    if not (folder / "config.json").is_file():
        TINY_BUILDERS[architecture](folder, seed=seed)
    return folder
