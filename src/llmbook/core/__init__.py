"""Core services every chapter uses: run profiles (``LLMBOOK_PROFILE``), the ``runs/`` cache,
packaged assets and their checksums, and the environment set-up."""

from llmbook.core.profiles import (
    PROFILE_VARIABLE,
    PROFILES,
    Profile,
    default_profile_name,
    get_profile,
)
from llmbook.core.runs import (
    CACHE_VERSION,
    config_key,
    drop_unset,
    finished_metrics,
    project_root,
    run_dir,
    runs_root,
)
from llmbook.core.utils import (
    Timer,
    configure_environment,
    get_device,
    is_offline,
)

__all__ = [
    "CACHE_VERSION",
    "PROFILES",
    "PROFILE_VARIABLE",
    "Profile",
    "Timer",
    "config_key",
    "configure_environment",
    "default_profile_name",
    "drop_unset",
    "finished_metrics",
    "get_device",
    "get_profile",
    "is_offline",
    "project_root",
    "run_dir",
    "runs_root",
]
