"""Health, Prometheus metrics, model-call accounting."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from ...store.models import LLMCall
from ..deps import AppDep, Reader

router = APIRouter(tags=["system"])


@router.get("/health")
def health(sw: AppDep) -> dict[str, Any]:
    sw.db.check_schema()
    return {"status": "ok", "database": sw.db.dialect}


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/llm/usage")
def llm_usage(sw: AppDep, _: Reader) -> list[dict[str, Any]]:
    """Calls, tokens, seconds and cost per role and model."""
    sw.recorder.flush()
    stmt = select(LLMCall.role, LLMCall.model, func.count(), func.sum(LLMCall.input_tokens),
                  func.sum(LLMCall.output_tokens), func.sum(LLMCall.latency_ms), func.sum(LLMCall.cost_usd)
                  ).group_by(LLMCall.role, LLMCall.model)
    with sw.db.session() as s:
        return [{"role": r, "model": m, "calls": n, "input_tokens": i or 0, "output_tokens": o or 0,
                 "seconds": (ms or 0) / 1000, "cost_usd": c or 0.0} for r, m, n, i, o, ms, c in s.execute(stmt)]
