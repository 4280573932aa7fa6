"""One logged-in connection to Vault: keeps its token alive and turns every call into either
a result or a `SecretsError`, with an audit record either way.

Token life: a lease is known from lookup-self after each login. Before each call, once the
lease is within the renew margin of its end, the token is renewed (renew-self) when Vault
says it is renewable and its explicit max TTL is not about to cut it short; otherwise, or
when a renewal comes back shorter than the margin (Vault caps it at the max TTL), the
client logs in again. A 403 on a token Vault no longer knows (revoked, expired early)
triggers one fresh login and one retry; a 403 on a valid token is a permission denial.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests

from contracts.settings.vault import VaultSettings
from runtime.secrets.audit import Actor, AuditRecord, AuditTrail
from runtime.secrets.auth import Login
from runtime.secrets.clock import Clock, utc_now
from runtime.secrets.errors import LoginFailed, MalformedResponse, SecretsError, translate

__all__ = ["TokenLease", "VaultSession"]

T = TypeVar("T")

_CLIENT_ERRORS = (hvac.exceptions.VaultError, requests.exceptions.RequestException)


@dataclass(frozen=True)
class TokenLease:
    obtained_at: datetime
    ttl: timedelta | None  # None: the token never expires (a root token)
    renewable: bool
    increment: timedelta | None  # what to ask for on renewal: the TTL the login granted
    max_end: datetime | None  # from an explicit max TTL, when the token has one

    @property
    def ends_at(self) -> datetime | None:
        return None if self.ttl is None else self.obtained_at + self.ttl


def _seconds(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedResponse("lookup-self", "auth/token", f"{what} is not an integer")
    return value


def _actor(data: dict[str, Any], fallback_role: str | None) -> Actor:
    meta = data.get("meta") or {}
    namespace, name = meta.get("service_account_namespace"), meta.get("service_account_name")
    return Actor(
        role=meta.get("role") or fallback_role,
        service_account=f"{namespace}/{name}" if namespace and name else None,
        entity_id=data.get("entity_id") or None,
        display_name=data.get("display_name") or None,
        policies=tuple(sorted(data.get("policies") or ())),
    )


class VaultSession:
    def __init__(
        self,
        settings: VaultSettings,
        login: Login,
        *,
        clock: Clock = utc_now,
        audit: AuditTrail | None = None,
        client: hvac.Client | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.audit = audit if audit is not None else AuditTrail()
        self._login = login
        self._margin = timedelta(seconds=settings.renew_margin_s)
        self._client = client or hvac.Client(
            url=settings.url, verify=settings.verify(), timeout=settings.timeout_s
        )
        self.actor = Actor(role=login.role)
        self.lease: TokenLease | None = None
        # Threads share one session (async services call it through to_thread): one of them
        # renews or logs in while the others wait for its token instead of logging in too.
        self._token_lock = threading.RLock()

    # -- audit -------------------------------------------------------------------------

    def _record(
        self, operation: str, path: str, outcome: str, version: int | None, error: str | None
    ) -> None:
        self.audit.emit(
            AuditRecord(
                at=self.clock(),
                actor=self.actor,
                pod=self.settings.pod_name,
                operation=operation,
                path=path,
                outcome=outcome,
                version=version,
                error=error,
            )
        )

    # -- token life --------------------------------------------------------------------

    def _lookup_self(self) -> dict[str, Any]:
        response = self._client.auth.token.lookup_self()
        data = response.get("data") if isinstance(response, dict) else None
        if not isinstance(data, dict):
            raise MalformedResponse("lookup-self", "auth/token", "no data in the answer")
        return data

    def _lease_from(self, data: dict[str, Any], now: datetime) -> TokenLease:
        ttl = _seconds(data.get("ttl"), "ttl")
        if ttl == 0:
            return TokenLease(now, None, False, None, None)
        creation_ttl = _seconds(data.get("creation_ttl", ttl), "creation_ttl")
        explicit_max = _seconds(data.get("explicit_max_ttl", 0), "explicit_max_ttl")
        # Vault counts the explicit max from the token's creation; how long ago that was is
        # what the token has used of its TTL. Our clock, not Vault's, measures from here on.
        used = timedelta(seconds=max(creation_ttl - ttl, 0))
        return TokenLease(
            obtained_at=now,
            ttl=timedelta(seconds=ttl),
            renewable=bool(data.get("renewable")),
            increment=timedelta(seconds=creation_ttl),
            max_end=now - used + timedelta(seconds=explicit_max) if explicit_max else None,
        )

    def login(self) -> None:
        """Log in (again) and learn who Vault takes us for and how long the token lives."""
        with self._token_lock:
            self._login_locked()

    def _login_locked(self) -> None:
        path = f"auth/{self.settings.auth_mount}/login" if self._login.repeatable else "auth/token"
        try:
            try:
                self._login.login(self._client)
            except OSError as err:
                # The token file itself never reaches the message, only why it was unreadable.
                raise LoginFailed(
                    "login", path, f"cannot read the service-account token: {err}"
                ) from None
            except hvac.exceptions.VaultError as err:
                mapped = translate(err, "login", path)
                # A refused login is a 400 (unknown role) or 403 (token rejected): Vault's
                # reason says which, and names no secret.
                if isinstance(err, hvac.exceptions.Forbidden | hvac.exceptions.InvalidRequest):
                    detail = "; ".join(str(e) for e in (err.errors or [])) or "refused"
                    mapped = LoginFailed("login", path, f"Vault refused the login: {detail}")
                raise mapped from err
            try:
                data = self._lookup_self()
            except hvac.exceptions.Forbidden as err:
                raise LoginFailed("login", path, "Vault does not accept the token") from err
            self.lease = self._lease_from(data, self.clock())
            self.actor = _actor(data, self._login.role)
        except _CLIENT_ERRORS as err:
            mapped = translate(err, "login", path)
            self._record("login", path, mapped.outcome, None, str(mapped))
            raise mapped from err
        except SecretsError as err:
            self._record("login", path, err.outcome, None, str(err))
            raise
        self._record("login", path, "ok", None, None)

    def _renew(self, lease: TokenLease) -> bool:
        """Renew-self; False when the renewal would not outlast the margin (max TTL near)."""
        assert lease.increment is not None
        path = "auth/token/renew-self"
        try:
            response = self._client.auth.token.renew_self(
                increment=int(lease.increment.total_seconds())
            )
        except _CLIENT_ERRORS as err:
            mapped = translate(err, "renew", path)
            self._record("renew", path, mapped.outcome, None, str(mapped))
            if isinstance(mapped, LoginFailed) or isinstance(err, hvac.exceptions.Forbidden):
                return False  # the token is gone already: a fresh login replaces it
            raise mapped from err
        auth = response.get("auth") if isinstance(response, dict) else None
        if not isinstance(auth, dict):
            raise MalformedResponse("renew", path, "no auth block in the answer")
        granted = timedelta(seconds=_seconds(auth.get("lease_duration"), "lease_duration"))
        now = self.clock()
        self._record("renew", path, "ok", None, None)
        if granted <= self._margin:
            return False
        self.lease = TokenLease(
            obtained_at=now,
            ttl=granted,
            renewable=bool(auth.get("renewable")),
            increment=lease.increment,
            max_end=lease.max_end,
        )
        return True

    def ensure_token(self) -> None:
        with self._token_lock:
            self._ensure_token_locked()

    def _ensure_token_locked(self) -> None:
        lease = self.lease
        if lease is None:
            self._login_locked()
            return
        ends_at = lease.ends_at
        if ends_at is None:
            return
        now = self.clock()
        if now < ends_at - self._margin:
            return
        max_near = lease.max_end is not None and lease.max_end - now <= self._margin
        if lease.renewable and not max_near and self._renew(lease):
            return
        if self._login.repeatable:
            self._login_locked()
            return
        if now >= ends_at:
            raise LoginFailed(
                "renew", "auth/token", "the token has expired and cannot be renewed or replaced"
            )

    def _token_valid(self) -> bool:
        try:
            self._client.auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            return False
        return True

    # -- calls -------------------------------------------------------------------------

    def call(
        self,
        operation: str,
        path: str,
        request: Callable[[hvac.Client], T],
        *,
        version: Callable[[T], int | None] | None = None,
    ) -> T:
        """Run `request` with a live token; audit it; raise only SecretsError subclasses."""
        try:
            self.ensure_token()
        except SecretsError as err:
            self._record(operation, path, err.outcome, None, str(err))
            raise
        try:
            try:
                result = request(self._client)
            except hvac.exceptions.Forbidden:
                if self._token_valid():
                    raise
                if not self._login.repeatable:
                    raise LoginFailed(
                        operation, path, "Vault no longer accepts the client token"
                    ) from None
                self.login()
                result = request(self._client)
        except _CLIENT_ERRORS as err:
            mapped = translate(err, operation, path)
            self._record(operation, path, mapped.outcome, None, str(mapped))
            raise mapped from err
        except SecretsError as err:
            self._record(operation, path, err.outcome, None, str(err))
            raise
        self._record(operation, path, "ok", version(result) if version else None, None)
        return result
