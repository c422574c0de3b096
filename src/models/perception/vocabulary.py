"""Category names a grounding detector is asked for, and what kind of region each one is.

BR-Gen queries GroundingDINO with COCO's "thing" and "stuff" categories; DiffSeg30k asks its VLM
for the objects in the image and grounds those names. Both need the same two answers about a name:
is it stuff (sky, grass, wall ...) or a thing, and is it a person (DiffSeg30k steers towards
humans, which VLMs under-select).

The names below are COCO's 80 thing categories and the COCO-Stuff stuff categories (ids 92-182)
written as prompt-ready phrases ("wall-brick" -> "brick wall"). COCO-Stuff's catch-all classes
("solid-other", "structural-other", "textile-other", "food-other", "furniture-other",
"plant-other", "ground-other", "building-other") are dropped or reduced to their head noun: a
detector cannot ground "solid other".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

COCO_THING_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)

COCO_STUFF_NAMES: tuple[str, ...] = (
    "banner", "blanket", "branch", "bridge", "building", "bush", "cabinet", "cage", "cardboard",
    "carpet", "ceiling", "tiled ceiling", "cloth", "clothes", "clouds", "counter", "cupboard",
    "curtain", "desk", "dirt", "door", "fence", "marble floor", "floor", "stone floor",
    "tiled floor", "wooden floor", "flower", "fog", "fruit", "grass", "gravel", "ground", "hill",
    "house", "leaves", "light", "mat", "metal", "mirror", "moss", "mountain", "mud", "napkin",
    "net", "paper", "pavement", "pillow", "plant", "plastic", "platform", "playing field",
    "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf",
    "sky", "skyscraper", "snow", "stairs", "stone", "straw", "table", "tent", "towel", "tree",
    "vegetable", "brick wall", "concrete wall", "wall", "wall panel", "stone wall", "tiled wall",
    "wooden wall", "water", "water drops", "window blind", "window", "wood",
)

# Head nouns that make a free-form name (a VLM's "clear blue sky") stuff rather than a thing.
_STUFF_HEADS = frozenset(name.split()[-1] for name in COCO_STUFF_NAMES) | {
    "background", "beach", "field", "forest", "lake", "lawn", "meadow", "ocean", "path",
    "sidewalk", "street", "sunset", "valley", "walls", "waves", "woods",
}
# "dining table", "potted plant" are COCO things although their head nouns are stuff words.
_THING_PHRASES = frozenset(COCO_THING_NAMES)

HUMAN_WORDS = frozenset({
    "person", "people", "man", "men", "woman", "women", "boy", "boys", "girl", "girls", "child",
    "children", "kid", "kids", "baby", "toddler", "player", "players", "rider", "skier", "surfer",
    "skateboarder", "snowboarder", "lady", "gentleman", "pedestrian", "pedestrians", "human",
    "humans", "crowd", "athlete", "worker", "chef", "officer", "student", "teenager", "couple",
})

VOCABULARIES: dict[str, tuple[str, ...]] = {
    "coco": COCO_THING_NAMES + COCO_STUFF_NAMES,
    "coco_things": COCO_THING_NAMES,
    "coco_stuff": COCO_STUFF_NAMES,
    "none": (),
}


def _words(name: str) -> list[str]:
    return name.strip().lower().replace("-", " ").replace("_", " ").split()


def name_kind(name: str) -> str:
    """"stuff" when ``name``'s head noun (its last word) is a stuff word, else "thing".

    >>> name_kind("sky"), name_kind("clear blue sky"), name_kind("dining table"), name_kind("dog")
    ('stuff', 'stuff', 'thing', 'thing')
    """
    normalised = " ".join(_words(name))
    if normalised in _THING_PHRASES:
        return "thing"
    words = normalised.split()
    return "stuff" if words and words[-1] in _STUFF_HEADS else "thing"


def is_human(name: str) -> bool:
    """True when any word of ``name`` names a person ("man", "two children", "tennis player")."""
    return any(word in HUMAN_WORDS for word in _words(name))


def resolve_vocabulary(vocabulary: str | Sequence[str]) -> tuple[str, ...]:
    """A vocabulary by name ("coco", "coco_things", "coco_stuff", "none") or an explicit list.

    Names are lower-cased and stripped; duplicates are dropped (first one kept).

    Raises:
        ValueError: an unknown vocabulary name, or a list holding a non-string or empty name.
    """
    if isinstance(vocabulary, str):
        if vocabulary not in VOCABULARIES:
            raise ValueError(f"unknown vocabulary {vocabulary!r}; known: {sorted(VOCABULARIES)} or a list of names")
        return VOCABULARIES[vocabulary]
    return merge_names(vocabulary)


def merge_names(*lists: Iterable[str]) -> tuple[str, ...]:
    """Concatenate name lists, lower-cased, stripped, first occurrence kept.

    Raises:
        ValueError: a name is not a non-empty string.
    """
    seen: dict[str, None] = {}
    for names in lists:
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"category names must be non-empty strings, got {name!r}")
            seen.setdefault(" ".join(_words(name)), None)
    return tuple(seen)
