"""Kedro project settings for EditLens."""

from pipelines.config_loader import CachedOmegaConfigLoader
from pipelines.hooks import DataGateHooks, FilesystemHooks, NodeTimingHooks, QuarantineHooks, TableSchemaHooks

# DataGateHooks runs the data quality gates (conf/<env>/gates.yml) between stages. pluggy calls
# the last registered hook first: registered first, the gates run after the node's timing is taken.
# FilesystemHooks registers the all-or-nothing filesystems before the catalog exists;
# TableSchemaHooks checks the contract's tables on every save and load.
HOOKS = (FilesystemHooks(), TableSchemaHooks(), DataGateHooks(), NodeTimingHooks(), QuarantineHooks())

# OmegaConfigLoader plus a per-process cache keyed by the conf files' bytes, env and runtime
# params: the Prefect flows open one session per task, all in one worker process.
CONFIG_LOADER_CLASS = CachedOmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"gates": ["gates*", "gates*/**"]},
    "merge_strategy": {"parameters": "soft", "globals": "soft", "gates": "soft"},
}
