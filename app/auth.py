"""API tokens: made once (the secret is shown once), stored as SHA-256, checked in constant time.

A token is `ptj_` and 32 random bytes (urlsafe base64). Such a secret has full entropy, so
a plain SHA-256 of it is as hard to reverse as the secret is to guess: no salt or slow hash
is needed, and a stolen database reveals no usable token. A presented token is hashed and
compared with every live token's hash by `hmac.compare_digest`, without stopping at the
first match, so the time taken says nothing about how close a guess came.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from app.core.files import as_utc
from app.errors import Conflict, NotFound, RequestInvalid
from app.models import LOCAL_CALLER, ApiToken, utcnow

TOKEN_PREFIX = "ptj_"
MAX_TOKEN_CHARS = 256
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most this often


@dataclass(frozen=True)
class NewToken:
    """A token just made: `secret` exists nowhere else and is never shown again."""

    id: int
    name: str
    secret: str


def hash_secret(secret: str) -> str:
    """The stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8", errors="surrogatepass")).hexdigest()


def create_token(*, session: Session, name: str) -> NewToken:
    """Make a token called `name` (unique among live tokens) and store its hash."""
    if not NAME_PATTERN.fullmatch(name) or name == LOCAL_CALLER:
        msg = f"a token name is 1-64 letters, digits, _ . @ - (and not {LOCAL_CALLER!r})"
        raise RequestInvalid.at(["name"], msg, "value_error")
    if _live(session, name) is not None:
        raise Conflict(f"a live token is already called {name!r}; revoke it first")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, token_hash=hash_secret(secret))
    session.add(token)
    session.commit()
    assert token.id is not None
    return NewToken(id=token.id, name=name, secret=secret)


def list_tokens(*, session: Session) -> list[ApiToken]:
    """Every token, live and revoked, oldest first (hashes stay in the database)."""
    return list(session.exec(select(ApiToken).order_by(col(ApiToken.id))))


def revoke_token(*, session: Session, name: str) -> ApiToken:
    """Revoke the live token called `name`; it stops working at once."""
    token = _live(session, name)
    if token is None:
        raise NotFound("token", name, f"no live token is called {name!r}")
    token.revoked_at = utcnow()
    session.add(token)
    session.commit()
    return token


def count_live_tokens(*, session: Session) -> int:
    """How many tokens can be used now."""
    return len(session.exec(select(ApiToken.id).where(col(ApiToken.revoked_at).is_(None))).all())


def find_token(*, session: Session, presented: str) -> ApiToken | None:
    """The live token whose secret is `presented`, or None; constant time per live token."""
    if len(presented) > MAX_TOKEN_CHARS:
        return None
    digest = hash_secret(presented)
    match: ApiToken | None = None
    for token in session.exec(select(ApiToken).where(col(ApiToken.revoked_at).is_(None))):
        if hmac.compare_digest(token.token_hash, digest):
            match = token
    return match


def note_use(*, session: Session, token: ApiToken, now: datetime | None = None) -> bool:
    """Record the token's use, at most once a minute (a write per request would not do)."""
    now = now or utcnow()
    last = token.last_used_at
    if last is not None and now - as_utc(last) < LAST_USED_RESOLUTION:
        return False
    session.execute(update(ApiToken).where(col(ApiToken.id) == token.id).values(last_used_at=now))
    session.commit()
    return True


def _live(session: Session, name: str) -> ApiToken | None:
    query = select(ApiToken).where(ApiToken.name == name, col(ApiToken.revoked_at).is_(None))
    return session.exec(query).first()
