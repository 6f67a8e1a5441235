"""``llmbook serve`` (chapter 15): the service of :mod:`llmbook.deployment.serving.app`, from
the command line.

* ``llmbook serve --model runs/rt-onnx`` -- ``POST /v1/sentiment`` for a classifier directory
  with a sha256 manifest (``llmbook export``);
* ``llmbook serve --generate smollm2`` (or a directory from ``llmbook sft --export``) --
  ``POST /v1/generate``; both flags together serve both endpoints;
* ``/healthz``, ``/readyz`` and ``/metrics`` on the API's port and on ``--probe-port`` (9000).
"""

from __future__ import annotations

import argparse
import sys

from llmbook.deployment.serving.app import run_server
from llmbook.deployment.serving.config import ServeConfig
from llmbook.deployment.serving.generation import GenerateConfig
from llmbook.deployment.serving.probes import PROBE_PORT


def _serve(args) -> int:
    if args.model is None and args.generate is None:
        print("error: give --model DIR (the sentiment classifier), --generate smollm2|DIR "
              "(a text generator) or both", file=sys.stderr)
        return 2
    try:
        config = ServeConfig(max_batch=args.max_batch, queue_size=args.queue_size,
                             queue_texts=args.queue_texts, key_queue_texts=args.key_queue_texts,
                             rate_per_second=args.rate_limit,
                             rate_burst=max(1, int(2 * args.rate_limit)), docs=args.docs)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    generate_config = GenerateConfig(max_streams=args.max_streams)
    return run_server(args.model, backend=args.backend, host=args.host, port=args.port,
                      config=config, generate=args.generate, generate_config=generate_config,
                      probe_port=args.probe_port or None)


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``serve`` on the ``subparsers`` of ``llmbook``'s parser."""
    p = subparsers.add_parser("serve", help="serve a model over HTTP "
                                            "(see llmbook.deployment.serving)")
    p.add_argument("--model", help="classifier directory with a sha256 manifest "
                                    "(POST /v1/sentiment)")
    p.add_argument("--generate", metavar="smollm2|DIR",
                   help="causal LM for POST /v1/generate: 'smollm2' (packaged) or a directory "
                        "with a sha256 manifest")
    p.add_argument("--max-streams", type=int, default=4,
                   help="generations at once; beyond them /v1/generate answers 503")
    p.add_argument("--backend", choices=["onnx", "torch"], default=None,
                   help="default: onnx if the directory holds model.onnx, else torch")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--probe-port", type=int, default=PROBE_PORT,
                   help="/healthz, /readyz and /metrics also on this port, served apart from "
                        "the API so that they answer during overload (0: none)")
    p.add_argument("--max-batch", type=int, default=32,
                   help="texts per model call at most (1 switches micro-batching off)")
    p.add_argument("--queue-size", type=int, default=32,
                   help="requests waiting for the model; beyond it new requests get 503")
    p.add_argument("--queue-texts", type=int, default=256,
                   help="texts waiting for the model; beyond it new requests get 503")
    p.add_argument("--key-queue-texts", type=int, default=128,
                   help="texts one API key may have waiting; beyond it 429")
    p.add_argument("--rate-limit", type=float, default=200.0, metavar="PER_SECOND",
                   help="requests per second per API key (bursts of twice that); beyond it 429")
    p.add_argument("--docs", action="store_true",
                   help="serve /docs and /openapi.json (off by default)")
    p.set_defaults(func=_serve)
    return p
