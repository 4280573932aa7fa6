"""Bearer-token authentication for mutating endpoints.

Tokens live in a file the platform mounts (rendered from Vault), one per line, so a rotation
can run with the old and the new token both valid. The file is re-read when it changes; no
token is ever in code, settings values, logs or error bodies.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

from fastapi import HTTPException, Request, status

__all__ = ["BearerAuth"]

log = logging.getLogger("agentops.auth")


class BearerAuth:
    """A FastAPI dependency: 401 unless the request carries one of the file's tokens."""

    def __init__(self, token_file: Path, realm: str) -> None:
        self.token_file = token_file
        self.realm = realm
        self._stamp: tuple[int, int] | None = None
        self._tokens: tuple[bytes, ...] = ()
        # Why the file could not be re-read (None: the tokens in use are the file's).
        self.problem: str | None = None
        self._load()  # a missing or empty file stops the service at start, not at first use
        self.problem = None

    def _load(self) -> None:
        """Re-read the file when it changed. A file that became unreadable, empty or invalid
        (a botched rotation) keeps the last good tokens in use and is reported by `problem`
        (the service turns unready and a metric says so): requests go on being served."""
        try:
            self._read()
        except RuntimeError as err:
            if not self._tokens:
                raise
            if self.problem != str(err):
                log.error("%s; keeping the last good tokens", err)
            self.problem = str(err)
        else:
            if self.problem is not None:
                log.warning("%s token file readable again", self.realm)
            self.problem = None

    def _read(self) -> None:
        try:
            stat = self.token_file.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            text = self.token_file.read_text()
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise RuntimeError(f"{self.realm} token file {self.token_file}: {reason}") from None
        tokens = tuple(line.strip().encode() for line in text.splitlines() if line.strip())
        if not tokens:
            raise RuntimeError(f"{self.realm} token file {self.token_file} holds no token")
        if any(len(t) < 16 for t in tokens):
            raise RuntimeError(f"{self.realm} tokens must be at least 16 characters long")
        self._tokens, self._stamp = tokens, stamp

    def check(self) -> tuple[bool, str]:
        """For /ready: whether the token file is readable and valid now."""
        self._load()
        return (self.problem is None, self.problem or "tokens loaded")

    def valid(self, presented: str) -> bool:
        self._load()
        candidate = presented.encode()
        # Compare against every token, always: the time taken says nothing about which matched.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched

    def _refuse(self, detail: str) -> HTTPException:
        return HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=detail,
            headers={"WWW-Authenticate": f'Bearer realm="{self.realm}"'},
        )

    async def __call__(self, request: Request) -> None:
        header = request.headers.get("authorization")
        if header is None:
            raise self._refuse("missing Authorization header (Bearer token)")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._refuse("Authorization must be 'Bearer <token>'")
        if not self.valid(token.strip()):
            raise self._refuse("invalid token")
