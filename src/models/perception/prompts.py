"""Edit prompts for a chosen region, from templates and small word lists.

DiffSeg30k has its VLM write one prompt per mask of one of three edit types: attribute change,
object addition (the object is removed first, then a new one is painted in its place) and
object removal. BR-Gen rewrites stuff and background regions as scenes ("the blue sky" -> "the
starry sky"). Here templates play the VLM's part: the same rng gives the same prompt.

``plan_edit_types`` spends a sample's turn budget on edit types (an addition takes two turns:
removal, then addition at the same place); ``perturb_description`` is BR-Gen's probabilistic
semantic perturbation with word lists (``vlm.VisionLanguageModel.perturb_description`` is the
VLM version).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .region import Region

# "add" (OpenSDI): a new object painted in one turn into a mask sized on a grounded place
# (``additions``); appended last so that weights without it draw exactly as before.
EDIT_TYPES = ("attribute", "addition", "removal", "add")

# Thing regions -------------------------------------------------------------------------------
_THING_ATTRIBUTES = (
    "bright red",
    "deep blue",
    "emerald green",
    "golden",
    "glossy black",
    "snow white",
    "rusty and weathered",
    "covered in frost",
    "made of polished wood",
    "made of glass",
    "made of marble",
    "striped black and white",
    "polka-dotted",
    "covered in moss",
)
_THING_ATTRIBUTE_TEMPLATES = (
    "make {the_label} {attribute}",
    "change {the_label} so that it looks {attribute}",
    "{the_label}, now {attribute}",
)
_REPLACEMENT_OBJECTS = (
    "a potted plant",
    "a wooden chair",
    "a red bicycle",
    "a golden retriever",
    "a stack of books",
    "a vintage suitcase",
    "a teddy bear",
    "a basket of apples",
    "a street lamp",
    "a tabby cat",
    "a small fountain",
    "a blue umbrella",
)
_THING_ADDITION_TEMPLATES = (
    "replace {the_label} with {object}",
    "remove {the_label} and put {object} in its place",
    "{object} where {the_label} was",
)
_THING_REMOVAL_TEMPLATES = (
    "remove {the_label} and fill in the surrounding scene",
    "erase {the_label}, leaving only what is behind it",
    "the scene without {the_label}",
)

# Stuff and background regions: scene-like rewrites --------------------------------------------
# Known stuff names get rewrites of the same kind ("the sky" -> "a stormy sky"); any other
# region gets a generic scene.
_STUFF_REWRITES: dict[str, tuple[str, ...]] = {
    "sky": ("a stormy sky", "a starry night sky", "a pink sunset sky", "a clear blue sky"),
    "grass": ("dry yellow grass", "snow-covered grass", "a field of wildflowers", "lush green grass"),
    "water": ("a frozen lake", "choppy grey water", "calm turquoise water"),
    "sea": ("a stormy sea", "a calm turquoise sea", "a frozen sea"),
    "river": ("a frozen river", "a muddy river", "a clear mountain stream"),
    "wall": (
        "a red brick wall",
        "an ivy-covered wall",
        "a wall covered in graffiti",
        "a white plaster wall",
    ),
    "floor": ("a marble floor", "a checkered tile floor", "a worn wooden floor"),
    "road": ("a wet cobblestone road", "a snowy road", "a dusty dirt road"),
    "pavement": ("wet cobblestones", "a pavement covered in autumn leaves", "a snowy sidewalk"),
    "sand": ("wet dark sand", "sand covered in seashells", "red desert sand"),
    "snow": ("fresh powder snow", "melting slushy snow", "snow-covered rocks"),
    "tree": ("trees in autumn colours", "bare winter trees", "blossoming cherry trees"),
    "mountain": ("snow-capped mountains", "red rocky mountains", "misty green hills"),
    "ceiling": ("a wooden beam ceiling", "a glass ceiling", "a painted ornate ceiling"),
    "table": ("a marble tabletop", "a rustic wooden table", "a glass table"),
}
_SCENES = (
    "a snowy landscape",
    "a sunlit meadow",
    "a foggy forest",
    "a sandy beach at sunset",
    "a city street at night",
    "a rocky desert",
    "a cosy library interior",
    "a misty mountain valley",
)
_PLAIN_FILLS = ("plain", "empty", "uncluttered")
_STUFF_ATTRIBUTE_TEMPLATES = (
    "turn {the_label} into {scene}",
    "replace {the_label} with {scene}",
)
_STUFF_ADDITION_TEMPLATES = (
    "replace {the_label} with {scene} and add {object}",
    "{object} in {scene}, in place of {the_label}",
)
_STUFF_REMOVAL_TEMPLATES = (
    "remove everything from {the_label}, leaving it {plain}",
    "clear {the_label} so that it is {plain}",
)
_BACKGROUND_ATTRIBUTE_TEMPLATES = (
    "change {the_label} to {scene}",
    "place the subject in front of {scene} instead of the current {label}",
)
_BACKGROUND_ADDITION_TEMPLATES = ("change {the_label} to {scene} with {object}",)
_BACKGROUND_REMOVAL_TEMPLATES = (
    "replace {the_label} with {a_plain} studio backdrop",
    "remove everything from {the_label}, leaving {a_plain} wall",
)

# OpenSDI's one-turn addition, the region being the place the new object goes
_ADD_TEMPLATES = {"thing": ("{object} next to {the_label}",), "stuff": ("{object} on {the_label}",),
                  "background": ("{object} in {the_label}",)}

_TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    **{(kind, "add"): templates for kind, templates in _ADD_TEMPLATES.items()},
    ("thing", "attribute"): _THING_ATTRIBUTE_TEMPLATES,
    ("thing", "addition"): _THING_ADDITION_TEMPLATES,
    ("thing", "removal"): _THING_REMOVAL_TEMPLATES,
    ("stuff", "attribute"): _STUFF_ATTRIBUTE_TEMPLATES,
    ("stuff", "addition"): _STUFF_ADDITION_TEMPLATES,
    ("stuff", "removal"): _STUFF_REMOVAL_TEMPLATES,
    ("background", "attribute"): _BACKGROUND_ATTRIBUTE_TEMPLATES,
    ("background", "addition"): _BACKGROUND_ADDITION_TEMPLATES,
    ("background", "removal"): _BACKGROUND_REMOVAL_TEMPLATES,
}


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _definite(label: str) -> str:
    """'sky' -> 'the sky'; a label that already has an article is kept."""
    label = label.strip()
    if label.lower().startswith(("the ", "a ", "an ")):
        return label
    return f"the {label}"


def _scene_rewrites(label: str) -> tuple[str, ...]:
    words = label.lower().replace("-", " ").split()
    for word in reversed(words):  # the head noun comes last: "brick wall" -> "wall"
        if word in _STUFF_REWRITES:
            return _STUFF_REWRITES[word]
    return _SCENES


def choose_edit_type(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    """Draw an edit type with the given relative weights.

    ``weights`` maps edit types (a subset of ``EDIT_TYPES``) to weights >= 0; missing types
    have weight 0.

    Raises:
        ValueError: an unknown edit type, a negative or non-finite weight, or all weights zero.
    """
    unknown = set(weights) - set(EDIT_TYPES)
    if unknown:
        raise ValueError(f"unknown edit type(s) {sorted(unknown)}; known: {list(EDIT_TYPES)}")
    w = np.array([float(weights.get(t, 0.0)) for t in EDIT_TYPES])
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"edit type weights must be finite and >= 0, got {dict(weights)}")
    if w.sum() <= 0:
        raise ValueError(f"edit type weights must not all be zero, got {dict(weights)}")
    return EDIT_TYPES[int(rng.choice(len(EDIT_TYPES), p=w / w.sum()))]


def make_edit_prompt(region: Region, edit_type: str, rng: np.random.Generator) -> str:
    """An edit prompt for ``region`` of kind thing / stuff / background.

    The prompt names the region by its label and says what to do with it: attribute change
    ("make the car golden"; stuff and background get a scene: "turn the sky into a stormy
    sky"), addition ("replace the car with a red bicycle") or removal ("remove the car and fill
    in the surrounding scene"). The same rng state gives the same prompt.

    Raises:
        ValueError: ``edit_type`` is not one of ``EDIT_TYPES``.
    """
    if edit_type not in EDIT_TYPES:
        raise ValueError(f"unknown edit type {edit_type!r}; known: {list(EDIT_TYPES)}")
    template = _pick(rng, _TEMPLATES[(region.kind, edit_type)])
    # Always draw every word so that one rng advances the same way whatever the template uses.
    words = {
        "label": region.label,
        "the_label": _definite(region.label),
        "attribute": _pick(rng, _THING_ATTRIBUTES),
        "object": _pick(rng, _REPLACEMENT_OBJECTS),
        "scene": _pick(rng, _scene_rewrites(region.label) if region.kind == "stuff" else _SCENES),
        "plain": _pick(rng, _PLAIN_FILLS),
    }
    words["a_plain"] = ("an " if words["plain"][0] in "aeiou" else "a ") + words["plain"]
    return template.format(**words)


def definite_description(region: Region) -> str:
    """The noun phrase a prompt uses for ``region`` when nothing better is known: its label with
    a definite article ("sky" -> "the sky", "the dark blue area" kept)."""
    return _definite(region.label)


def plan_edit_types(
    rng: np.random.Generator, n_regions: int, turn_budget: int, weights: Mapping[str, float]
) -> list[str]:
    """Edit types for up to ``n_regions`` regions (in order) within ``turn_budget`` turns.

    Attribute changes, removals and adds (OpenSDI) take one turn; an addition takes two (DiffSeg30k, after
    SEED-Data-Edit: the object is removed first, then a new one is painted in the same place), so
    it is drawn only while at least two turns are left; otherwise the draw is among the other
    types with their relative weights. Planning stops when the regions or the turns run out, or
    when only additions have weight and one turn is left.

    Returns:
        One edit type per planned region (possibly fewer than ``n_regions``; empty only when
        ``turn_budget`` is 1 and only "addition" has weight). The turns used never exceed
        ``turn_budget``.

    Raises:
        ValueError: bad weights (see ``choose_edit_type``), or ``turn_budget`` / ``n_regions`` < 0.
    """
    if int(turn_budget) < 0 or int(n_regions) < 0:
        raise ValueError(f"turn_budget and n_regions must be >= 0, got {turn_budget}, {n_regions}")
    without_addition = {t: w for t, w in weights.items() if t != "addition"}
    can_skip_addition = any(float(w) > 0 for w in without_addition.values())
    plan: list[str] = []
    turns_left = int(turn_budget)
    for _ in range(int(n_regions)):
        if turns_left >= 2:
            edit_type = choose_edit_type(rng, weights)
        elif turns_left == 1 and can_skip_addition:
            edit_type = choose_edit_type(rng, without_addition)
        else:
            break
        plan.append(edit_type)
        turns_left -= 2 if edit_type == "addition" else 1
    return plan


# BR-Gen's probabilistic semantic perturbation, word-list version -------------------------------
_COLOUR_WORDS = frozenset({
    "red", "orange", "yellow", "olive", "green", "teal", "blue", "purple", "pink", "magenta",
    "brown", "beige", "black", "white", "grey", "gray", "golden", "silver",
})
_NEW_COLOURS = ("crimson", "emerald", "amber", "violet", "turquoise", "silver", "golden", "rust-coloured")
_STUFF_MODIFIERS = (
    "snow-covered", "sunlit", "rain-soaked", "weathered", "moss-covered", "misty", "frost-covered",
    "autumn-coloured",
)
_ARTICLES = ("the ", "a ", "an ")


def _split_article(text: str) -> tuple[str, str]:
    for article in _ARTICLES:
        if text.lower().startswith(article):
            return text[: len(article)], text[len(article):]
    return "", text


def perturb_description(description: str, kind: str, rng: np.random.Generator) -> str:
    """Rewrite a stuff or background description so its semantics change but stay plausible for
    the region (BR-Gen: "the blue sky" -> "the starry sky"). Always rewrites; the caller draws
    whether to (BR-Gen: probability 0.5).

    stuff: a known head noun ("sky", "brick wall", "grass" ...) gets another rewrite of the same
    kind ("a starry night sky"); otherwise colour words are swapped ("the dark blue area" ->
    "the dark amber area"), and failing that an appearance word is added ("the misty field").
    background: the text outside a ``$subject$`` part is replaced by a scene ("$a dog$ on a
    lawn" -> "a dog in a snowy landscape"); without a marked subject the whole description
    becomes a scene.

    Raises:
        ValueError: ``kind`` is not "stuff" or "background", or ``description`` is empty.
    """
    description = " ".join(str(description).split())
    if not description:
        raise ValueError("description must not be empty")
    if kind == "background":
        scene = _pick(rng, _SCENES)
        subject = description.split("$")[1].strip() if description.count("$") >= 2 else ""
        return f"{subject} in {scene}" if subject else scene
    if kind != "stuff":
        raise ValueError(f"semantic perturbation applies to stuff and background regions, got kind {kind!r}")
    text = description.replace("#", "").strip()
    words = text.split()
    head = words[-1].lower().strip(",.")
    if head in _STUFF_REWRITES:
        options = [o for o in _STUFF_REWRITES[head] if o.lower() != text.lower()]
        return _pick(rng, options)
    # "sky blue" is one colour (the superpixel perceiver's names), not the noun "sky".
    words = " ".join(words).replace("sky blue", "blue").split()
    colours = [i for i, w in enumerate(words) if w.lower().strip(",.") in _COLOUR_WORDS]
    if colours:
        new = _pick(rng, [c for c in _NEW_COLOURS if c not in {w.lower() for w in words}])
        words[colours[0]] = new
        return " ".join(w for i, w in enumerate(words) if i not in colours[1:])
    article, rest = _split_article(text)
    return f"{article or 'the '}{_pick(rng, _STUFF_MODIFIERS)} {rest}"
