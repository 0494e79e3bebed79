"""`serve`: the configured reranker over HTTP (vLLM-compatible /v1/score and /v1/rerank), optionally the embedder."""

from __future__ import annotations

import argparse
import os

from newsrec.cli.common import add_model_flags, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="serve the reranker over HTTP (vLLM-compatible score/rerank API)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when present)")
    parser.add_argument("--max-batch-pairs", type=int, default=512, help="pairs per engine turn across requests")
    parser.add_argument("--max-documents", type=int, default=1000, help="documents per request")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0 = torch's default; 1 on a busy shared CPU)"
    )
    parser.add_argument(
        "--serve-embedder",
        action="store_true",
        help="also serve the configured embedder (--embedder) at POST /v1/embeddings (OpenAI/vLLM shape)",
    )
    parser.add_argument(
        "--served-model-name",
        action="append",
        default=[],
        metavar="NAME",
        help="a model name requests may send (repeatable, as in vLLM); default: the configured reranker name "
        "(e.g. qwen3-vl-reranker-2b) and its checkpoint (the hub id or --reranker-model as given)",
    )
    add_model_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from newsrec.serving import ServeLimits, build_scorer, create_app
    from newsrec.serving.scorers import served_model_names

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    settings = settings_from_args(args)
    scorer = build_scorer(settings, device=args.device)
    limits = ServeLimits(max_batch_pairs=args.max_batch_pairs, max_documents=args.max_documents)
    embedder = None
    if args.serve_embedder:
        from newsrec.embedders import get_embedder
        from newsrec.errors import InputError

        if settings.resolved_embedder == "remote":
            raise InputError("`newsrec serve --serve-embedder` serves a local embedder: unset NEWSREC_EMBEDDER_URL")
        options = {"settings": settings, **({"model": settings.embedder_model} if settings.embedder_model else {})}
        embedder = get_embedder(settings.resolved_embedder, **options)
    served = served_model_names(settings, args.served_model_name)
    token = os.environ.get("NEWSREC_API_TOKEN", "")
    app = create_app(scorer, limits, api_token=token, embedder=embedder, served_names=served)
    routes = "POST /v1/score, /v1/rerank" + (f", /v1/embeddings ({embedder.name})" if embedder else "")
    print(f"serving {', '.join(served)} on http://{args.host}:{args.port} ({routes})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
