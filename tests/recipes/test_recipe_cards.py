"""Each recipe card (docs/recipes/<recipe>.md) is held against its conf env (conf/<recipe>/).

A card's checked tables are the markdown tables whose header has the columns ``conf key`` and
``value``. A ``conf key`` is ``globals:<path>`` or ``parameters:<path>``: dot-separated keys, a list
element as ``[3]`` or ``[name=sdxl]``; the ``value`` cell is YAML. The env is loaded as
``kedro run --env <recipe>`` loads it (base, then the recipe; never its tiny layer), so a card
cannot claim a value the recipe does not run with.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.config_loader import CachedOmegaConfigLoader, clear_cache
from pipelines.settings import CONFIG_LOADER_ARGS

REPO = Path(__file__).resolve().parents[2]
CARDS = sorted(p for p in (REPO / "docs" / "recipes").glob("*.md") if not p.stem.endswith("_models"))
MIN_CHECKED_ROWS = 15  # a paper's design is more than a handful of values
_STEP = re.compile(r"\[(?:name=(?P<name>[^\]]+)|(?P<index>\d+))\]|(?P<key>[^.\[\]]+)")


def card_rows(text: str) -> list[tuple[str, str, int]]:
    """(conf key, value text, line number) of every row of every checked table in a card."""
    rows, columns = [], None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped.startswith("|"):
            columns = None
            continue
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if columns is None:
            names = [c.strip("` ").lower() for c in cells]
            columns = (names.index("conf key"), names.index("value")) if {"conf key", "value"} <= set(names) else ()
            continue
        if not columns or set(stripped) <= set("|-: "):
            continue
        key, value = (cells[i].strip().strip("`").strip() for i in columns)
        if key and key != "-":
            rows.append((key, value, number))
    return rows


def lookup(config: dict[str, Any], path: str) -> Any:
    """The value at ``path`` (dots, ``[i]``, ``[name=x]``). Raises KeyError naming the missing step."""
    node: Any = config
    for match in _STEP.finditer(path):
        name, index, key = match.group("name"), match.group("index"), match.group("key")
        if name is not None:
            found = [item for item in node if isinstance(item, dict) and str(item.get("name")) == name]
            if not found:
                raise KeyError(f"no list item with name={name}")
            node = found[0]
        elif index is not None:
            node = node[int(index)]
        else:
            if not isinstance(node, dict) or key not in node:
                raise KeyError(f"no key {key!r}")
            node = node[key]
    return node


@pytest.fixture(scope="module")
def conf(tmp_path_factory) -> Path:
    clear_cache()
    target = tmp_path_factory.mktemp("cards") / "conf"
    shutil.copytree(REPO / "conf", target, ignore=shutil.ignore_patterns("local"))  # never a user's local conf
    (target / "local").mkdir()
    yield target
    clear_cache()


def _loaded(conf: Path, env: str) -> dict[str, dict[str, Any]]:
    loader = CachedOmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS, env=env)
    return {"globals": loader["globals"], "parameters": loader["parameters"]}


@pytest.mark.parametrize("card", CARDS, ids=[p.stem for p in CARDS])
def test_every_value_a_recipe_card_states_is_the_recipes_conf(card: Path, conf: Path):
    assert (REPO / "conf" / card.stem).is_dir(), f"{card.name}: no conf env conf/{card.stem}/"
    rows = card_rows(card.read_text())
    assert len(rows) >= MIN_CHECKED_ROWS, f"{card.name}: {len(rows)} checked rows (a table with `conf key` | `value`)"
    loaded = _loaded(conf, card.stem)
    wrong = []
    for key, value, line in rows:
        source, _, path = key.partition(":")
        if source not in loaded:
            wrong.append(f"{card.name}:{line}: {key!r} must start with globals: or parameters:")
            continue
        try:
            actual = lookup(loaded[source], path)
        except (KeyError, IndexError, TypeError) as error:
            wrong.append(f"{card.name}:{line}: {key}: {error}")
            continue
        expected = yaml.safe_load(value) if value else None
        if actual != expected:
            wrong.append(f"{card.name}:{line}: {key} is {actual!r} in conf/{card.stem}, the card says {expected!r}")
    assert not wrong, "\n".join(wrong)


def test_the_card_checker_reads_tables_paths_and_yaml_values():
    """The checker itself: only tables with both columns count, selectors reach list items."""
    text = ("| choice | paper | conf key | value |\n|---|---|---|---|\n"
            "| size | 4.1 | `globals:image_size` | `1024` |\n"
            "| steps | 3 | parameters:inpaint.generators[name=sd2].kwargs.steps | 50 |\n"
            "| none | - | - | |\n\n| other | table |\n|---|---|\n| a | b |\n")
    rows = card_rows(text)
    assert [(k, v) for k, v, _ in rows] == [("globals:image_size", "1024"),
                                           ("parameters:inpaint.generators[name=sd2].kwargs.steps", "50")]
    config = {"inpaint": {"generators": [{"name": "sd1.5"}, {"name": "sd2", "kwargs": {"steps": 50}}]}}
    assert lookup(config, "inpaint.generators[name=sd2].kwargs.steps") == 50
    assert lookup(config, "inpaint.generators[0].name") == "sd1.5"
    with pytest.raises(KeyError, match="name=sd3"):
        lookup(config, "inpaint.generators[name=sd3].kwargs")
    with pytest.raises(KeyError, match="'steps'"):
        lookup(config, "inpaint.steps")
