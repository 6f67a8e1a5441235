"""The sentiment service of chapter 15: the FastAPI app, micro-batching, API keys and rate
limits, masking personal data in logs."""

from llmbook.deployment.serving.app import (
    create_app,
    parse_texts,
    read_body,
    run_server,
)
from llmbook.deployment.serving.batching import MicroBatcher
from llmbook.deployment.serving.config import (
    RequestError,
    ServeConfig,
    StartupError,
)
from llmbook.deployment.serving.metrics import Metrics
from llmbook.deployment.serving.predictor import Predictor
from llmbook.deployment.serving.privacy import mask_pii
from llmbook.deployment.serving.security import (
    KEYS_FILE_VARIABLE,
    KEYS_VARIABLE,
    RateLimiter,
    key_id,
    load_api_keys,
    match_key,
)

__all__ = [
    "KEYS_FILE_VARIABLE",
    "KEYS_VARIABLE",
    "Metrics",
    "MicroBatcher",
    "Predictor",
    "RateLimiter",
    "RequestError",
    "ServeConfig",
    "StartupError",
    "create_app",
    "key_id",
    "load_api_keys",
    "mask_pii",
    "match_key",
    "parse_texts",
    "read_body",
    "run_server",
]
