"""``GET /metrics``: Prometheus text (runs and cases by status, model calls and latency, queue depth).

Unauthenticated, like ``/health``, so that Prometheus can scrape it: counts only, no case data. Expose it
on the private network only (docs/deployment.md, "Scaling out").
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from socflow.api.deps import Services, services
from socflow.metrics import SocflowCollector, broker_queues, render

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(svc: Services = Depends(services)) -> Response:
    collector = SocflowCollector(
        svc.factory,
        broker_url=svc.settings.broker.url,
        queues=broker_queues(svc.settings.worker.model_queue, (s.queue for s in svc.registry.specs())),
    )
    body = await run_in_threadpool(render, collector)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
