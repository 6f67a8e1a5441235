"""The service of chapter 15: the FastAPI app (``/v1/sentiment`` and ``/v1/generate`` with
server-sent events), micro-batching, API keys and rate limits, masking personal data in logs,
probes and metrics on a port of their own."""

from llmbook.deployment.serving.app import create_app, parse_texts, run_server
from llmbook.deployment.serving.batching import MicroBatcher
from llmbook.deployment.serving.config import (
    RequestError,
    ServeConfig,
    StartupError,
    read_body,
)
from llmbook.deployment.serving.generation import (
    GenerateConfig,
    GenerateRequest,
    Generation,
    TextGenerator,
    parse_generate_request,
)
from llmbook.deployment.serving.metrics import Metrics
from llmbook.deployment.serving.predictor import Predictor
from llmbook.deployment.serving.privacy import mask_pii
from llmbook.deployment.serving.probes import PROBE_PORT, ProbeServer, probe_app
from llmbook.deployment.serving.security import (
    KEYS_FILE_VARIABLE,
    KEYS_VARIABLE,
    RateLimiter,
    key_id,
    load_api_keys,
    match_key,
)
from llmbook.deployment.serving.streaming import (
    GenerationSlots,
    add_generate_route,
    sse,
    sse_events,
)

__all__ = [
    "GenerateConfig",
    "GenerateRequest",
    "Generation",
    "GenerationSlots",
    "KEYS_FILE_VARIABLE",
    "KEYS_VARIABLE",
    "Metrics",
    "MicroBatcher",
    "PROBE_PORT",
    "ProbeServer",
    "Predictor",
    "RateLimiter",
    "RequestError",
    "ServeConfig",
    "StartupError",
    "TextGenerator",
    "add_generate_route",
    "create_app",
    "key_id",
    "load_api_keys",
    "mask_pii",
    "match_key",
    "parse_generate_request",
    "parse_texts",
    "probe_app",
    "read_body",
    "run_server",
    "sse",
    "sse_events",
]
