"""Core services every chapter uses: run profiles (``LLMBOOK_PROFILE``), the ``runs/`` cache,
packaged assets and their checksums, and the environment set-up."""

from llmbook.core.assets import (
    AssetUnavailableError,
    file_sha256,
    package_dir,
)
from llmbook.core.profiles import (
    PROFILE_VARIABLE,
    PROFILES,
    Profile,
    default_profile_name,
    get_profile,
)
from llmbook.core.runs import (
    CACHE_VERSION,
    METRICS_FILE,
    Run,
    cached_json,
    cached_run,
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
    is_offline,
)

__all__ = [
    "AssetUnavailableError",
    "CACHE_VERSION",
    "METRICS_FILE",
    "PROFILES",
    "PROFILE_VARIABLE",
    "Profile",
    "Run",
    "Timer",
    "cached_json",
    "cached_run",
    "config_key",
    "configure_environment",
    "default_profile_name",
    "drop_unset",
    "file_sha256",
    "finished_metrics",
    "get_profile",
    "is_offline",
    "package_dir",
    "project_root",
    "run_dir",
    "runs_root",
]
