"""Core services every chapter uses: run profiles (``LLMBOOK_PROFILE``), the ``runs/`` cache,
each chapter's opening box (what it costs to run), packaged assets and their checksums, and the
environment set-up."""

from llmbook.core.assets import (
    AssetUnavailableError,
    file_sha256,
    package_dir,
)
from llmbook.core.chapters import (
    ChapterCard,
    chapter_card,
    chapter_timings,
    record_run_use,
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
    RunConflictError,
    RunProvenanceWarning,
    cached_json,
    cached_run,
    config_key,
    drop_unset,
    finished_metrics,
    model_key,
    project_root,
    run_dir,
    runs_root,
)
from llmbook.core.utils import (
    Timer,
    configure_environment,
    is_offline,
    options_given,
)

__all__ = [
    "AssetUnavailableError",
    "ChapterCard",
    "CACHE_VERSION",
    "METRICS_FILE",
    "PROFILES",
    "PROFILE_VARIABLE",
    "Profile",
    "Run",
    "RunConflictError",
    "RunProvenanceWarning",
    "Timer",
    "cached_json",
    "chapter_card",
    "chapter_timings",
    "cached_run",
    "config_key",
    "configure_environment",
    "default_profile_name",
    "drop_unset",
    "file_sha256",
    "finished_metrics",
    "get_profile",
    "is_offline",
    "model_key",
    "options_given",
    "package_dir",
    "project_root",
    "record_run_use",
    "run_dir",
    "runs_root",
]
