"""Alerts: Alertmanager's webhook switches emergency mode on and off."""

from __future__ import annotations

from fastapi import APIRouter

from contracts import endpoints
from runtime.manager.deps import AlertmanagerCaller, State
from runtime.manager.emergency import AlertmanagerWebhook
from runtime.manager.schemas import EmergencyView

__all__ = ["router"]

router = APIRouter(tags=["alerts"])


@router.post(
    endpoints.ALERT_WEBHOOK, response_model=EmergencyView, dependencies=[AlertmanagerCaller]
)
async def alerts(body: AlertmanagerWebhook, state: State) -> EmergencyView:
    current = await state.emergency.apply(body)
    state.emergency_active = current.active
    state.metrics.emergency.set(int(current.active))
    return EmergencyView(
        active=current.active, since=current.since, firing_alerts=current.firing_alerts
    )
