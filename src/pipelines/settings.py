"""Kedro project settings for EditLens."""

from kedro.config import OmegaConfigLoader

from pipelines.hooks import DataGateHooks, NodeTimingHooks

# DataGateHooks runs the data quality gates (conf/<env>/gates.yml) between stages. pluggy calls
# the last registered hook first: registered first, the gates run after the node's timing is taken.
HOOKS = (DataGateHooks(), NodeTimingHooks())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"gates": ["gates*", "gates*/**"]},
    "merge_strategy": {"parameters": "soft", "globals": "soft", "gates": "soft"},
}
