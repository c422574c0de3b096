"""Kedro project settings for EditLens."""

from kedro.config import OmegaConfigLoader

from pipelines.hooks import NodeTimingHooks

HOOKS = (NodeTimingHooks(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
}
