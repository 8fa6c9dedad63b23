"""Operators (值班人员): named people of a centre who sign in to the console, and their sessions.

An account belongs to one centre and has a role; what a role may do is the table ``GRANTS``,
so more kinds of users (departments' handlers, analysts with tiers of access to personal
information) are new roles, not new flags. Passwords are hashed with Argon2id (argon2-cffi,
memory-hard); a login that fails ``LOCK_AFTER`` times in a row locks the account for
``LOCK_FOR``. The accounts file is JSON beside the API keys, written atomically under a lock,
and a running gateway reads it again whenever it changed (one ``stat`` per request), so an
account added, disabled or given a new password takes effect at once; disabling an account or
changing its password ends its sessions (each session carries the account's ``epoch``).

Sessions live in the gateway's memory, keyed by the SHA-256 of a random cookie token, each with
its own CSRF token; a restart signs everyone out, which is safe.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from streams.api.watched import WatchedFile
from streams.store.jurisdiction import check_centre

log = logging.getLogger(__name__)

LOCK_AFTER = 5  # failed sign-ins in a row before the account locks
LOCK_FOR = 15 * 60.0  # seconds it stays locked
MIN_PASSWORD = 12
SESSION_IDLE = 12 * 3600.0  # a shift: a session unused this long ends
SESSION_MAX = 24 * 3600.0  # and none outlives a day
LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,31}$")
HASHER = PasswordHasher()  # Argon2id with argon2-cffi's RFC 9106 low-memory profile (64 MiB, t=3)
_DUMMY = HASHER.hash(secrets.token_urlsafe(16))  # verified against for unknown logins: same time either way


class Role(str, enum.Enum):
    operator = "operator"  # 值班员: sees the centre's cases and acts on them
    observer = "observer"  # 观察员: sees them, acts on none (a leader's or a trainee's account)


class Grant(str, enum.Enum):
    read = "read"  # the case list, case pages, the supervision inbox, the live stream
    act = "act"  # 签收、分办、协同、反馈、办结、重开、挂牌督办、提级


GRANTS: dict[Role, frozenset[Grant]] = {
    Role.operator: frozenset({Grant.read, Grant.act}),
    Role.observer: frozenset({Grant.read}),
}
ROLE_LABEL = {Role.operator: "值班员", Role.observer: "观察员"}


@dataclass(frozen=True)
class Operator:
    login: str  # what they sign in with, and the actor of what they do
    centre: str
    name: str  # shown on the console: 王芳
    role: Role
    password: str  # the Argon2id hash
    disabled: bool = False
    failures: int = 0  # failed sign-ins in a row
    locked_until: float = 0.0
    epoch: int = 0  # raised when the password changes or the account is disabled: ends its sessions
    created_at: float = field(default_factory=time.time)

    def may(self, grant: Grant) -> bool:
        return grant in GRANTS[self.role]

    def locked(self, now: float) -> bool:
        return self.locked_until > now


class SignInRefused(Exception):
    """Why a sign-in failed, in words safe to show (never which of login or password was wrong)."""


class OperatorStore:
    """The accounts file, managed with ``fengqiao operators`` and read by the gateway."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self.accounts: dict[str, Operator] = {}
        self._file = WatchedFile(path)
        self.refresh()

    # -- the file ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the file again if it changed since last read; unreadable, it admits no one."""
        found = self._file.reread(lambda doc: {o["login"]: Operator(**{**o, "role": Role(o["role"])})
                                               for o in doc["operators"]}, {}, "no operator signs in")
        if found is not None:
            self.accounts = found

    @contextmanager
    def _changing(self) -> Iterator[dict[str, Operator]]:
        """The accounts as on disk now, to change and write back, with other writers kept out."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._file.forget()
            self.refresh()
            accounts = dict(self.accounts)
            yield accounts
            tmp = self.path.with_suffix(".tmp")
            doc = {"operators": [asdict(o) | {"role": o.role.value} for o in accounts.values()]}
            tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
            os.chmod(tmp, 0o600)
            tmp.replace(self.path)
            self._file.forget()
            self.refresh()

    # -- managing accounts --------------------------------------------------------------------------
    def add(self, centre: str, login: str, password: str, name: str = "", role: Role = Role.operator) -> Operator:
        check_centre(centre)
        if not LOGIN.match(login):
            raise ValueError(f"login {login!r}: 2 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit")
        check_password(password)
        with self._changing() as accounts:
            if login in accounts:
                raise ValueError(f"an operator {login!r} exists already")
            accounts[login] = Operator(login, centre, name or login, role, HASHER.hash(password))
        return self.accounts[login]

    def set_password(self, login: str, password: str) -> None:
        check_password(password)
        self._update(login, lambda o: replace(o, password=HASHER.hash(password), epoch=o.epoch + 1,
                                              failures=0, locked_until=0.0))

    def disable(self, login: str) -> None:
        self._update(login, lambda o: replace(o, disabled=True, epoch=o.epoch + 1))

    def enable(self, login: str) -> None:
        self._update(login, lambda o: replace(o, disabled=False, failures=0, locked_until=0.0))

    def _update(self, login: str, change: Callable[[Operator], Operator]) -> None:
        with self._changing() as accounts:
            if login not in accounts:
                raise ValueError(f"no operator {login!r}")
            accounts[login] = change(accounts[login])

    # -- signing in ------------------------------------------------------------------------------
    def sign_in(self, login: str, password: str) -> Operator:
        """The operator whose password this is, or ``SignInRefused``; failures count towards a lock."""
        self.refresh()
        now = self.clock()
        account = self.accounts.get(login)
        if account is None:
            _verify(_DUMMY, password)  # as slow as a real check: the answer's time says nothing
            raise SignInRefused("用户名或密码错误")
        if account.locked(now):
            raise SignInRefused(f"连续{LOCK_AFTER}次登录失败，账号已锁定，请于{_minutes(account.locked_until - now)}分钟后再试"
                                "或请管理员解锁")
        if not _verify(account.password, password):
            with self._changing() as accounts:
                current = accounts[login]
                failures = current.failures + 1
                locked = now + LOCK_FOR if failures >= LOCK_AFTER else current.locked_until
                accounts[login] = replace(current, failures=0 if locked > now else failures, locked_until=locked)
            if locked > now:
                log.warning("operator %s locked after %d failed sign-ins", login, LOCK_AFTER)
                raise SignInRefused(f"连续{LOCK_AFTER}次登录失败，账号已锁定{int(LOCK_FOR // 60)}分钟")
            raise SignInRefused("用户名或密码错误")
        if account.disabled:
            raise SignInRefused("账号已停用，请联系管理员")
        if account.failures or HASHER.check_needs_rehash(account.password):
            self._update(login, lambda o: replace(o, failures=0, password=HASHER.hash(password)
                                                  if HASHER.check_needs_rehash(o.password) else o.password))
        return self.accounts[login]

    def current(self, login: str, epoch: int) -> Operator | None:
        """The account a session was opened for, if it may still be used."""
        self.refresh()
        account = self.accounts.get(login)
        if account is None or account.disabled or account.epoch != epoch:
            return None  # a lock stops sign-ins, not the sessions of the one who is signed in
        return account


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password has at least {MIN_PASSWORD} characters")


def _verify(hashed: str, password: str) -> bool:
    try:
        return HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _minutes(seconds: float) -> int:
    return max(1, int(seconds // 60) + 1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    login: str
    epoch: int
    csrf: str
    started: float
    seen: float


class Sessions:
    """Signed-in operators: a random token in the cookie, its digest here, a CSRF token each."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._by_digest: dict[str, Session] = {}

    def open(self, operator: Operator) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(operator.login, operator.epoch, secrets.token_urlsafe(32), now, now)
        self._by_digest[_digest(token)] = session
        self._sweep(now)
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        key, now = _digest(token), self.clock()
        session = self._by_digest.get(key)
        if session is None:
            return None
        if now - session.seen > SESSION_IDLE or now - session.started > SESSION_MAX:
            del self._by_digest[key]
            return None
        session.seen = now
        return session

    def close(self, token: str | None) -> None:
        if token:
            self._by_digest.pop(_digest(token), None)

    def _sweep(self, now: float) -> None:
        for key, s in list(self._by_digest.items()):
            if now - s.seen > SESSION_IDLE or now - s.started > SESSION_MAX:
                del self._by_digest[key]


def csrf_ok(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf.encode(), (presented or "").encode())
