"""Operator accounts and sessions: hashing, lockout, and changes that take effect at once."""

from datetime import datetime, timedelta

import pytest

from streams.api.console import _local, remaining
from streams.api.operators import (
    LOCK_AFTER,
    LOCK_FOR,
    SESSION_IDLE,
    Grant,
    OperatorStore,
    Role,
    Sessions,
    SignInRefused,
)
from tests.helpers import COMMUNITY

PASSWORD = "correct-horse-battery"


class Tick:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    clock = Tick()
    s = OperatorStore(tmp_path / "operators.json", clock)
    s.add(COMMUNITY, "wang.fang", PASSWORD, "王芳")
    return s


def test_a_password_is_kept_only_as_an_argon2id_hash(store):
    text = store.path.read_text("utf-8")
    assert PASSWORD not in text and "$argon2id$" in text
    assert store.sign_in("wang.fang", PASSWORD).centre == COMMUNITY
    with pytest.raises(ValueError, match="at least 12"):
        store.add(COMMUNITY, "li.na", "short")
    with pytest.raises(ValueError, match="exists already"):
        store.add(COMMUNITY, "wang.fang", PASSWORD)
    with pytest.raises(KeyError):
        store.add("999999", "zhang.wei", PASSWORD)  # no such centre


def test_repeated_failures_lock_the_account_for_a_while(store):
    for _ in range(LOCK_AFTER - 1):
        with pytest.raises(SignInRefused, match="用户名或密码错误"):
            store.sign_in("wang.fang", "wrong-password")
    with pytest.raises(SignInRefused, match="已锁定"):
        store.sign_in("wang.fang", "wrong-password")
    with pytest.raises(SignInRefused, match="已锁定"):
        store.sign_in("wang.fang", PASSWORD)  # the right password does not open a locked account
    store.clock.now += LOCK_FOR + 1
    assert store.sign_in("wang.fang", PASSWORD).failures == 0
    with pytest.raises(SignInRefused, match="用户名或密码错误"):
        store.sign_in("nobody", PASSWORD)  # an unknown login reads like a wrong password


def test_another_process_disabling_an_account_ends_its_sessions_at_once(store, tmp_path):
    operator = store.sign_in("wang.fang", PASSWORD)
    assert store.current("wang.fang", operator.epoch) is not None
    OperatorStore(tmp_path / "operators.json").disable("wang.fang")  # fengqiao operators disable, elsewhere
    assert store.current("wang.fang", operator.epoch) is None
    with pytest.raises(SignInRefused, match="停用"):
        store.sign_in("wang.fang", PASSWORD)
    OperatorStore(tmp_path / "operators.json").enable("wang.fang")
    assert store.current("wang.fang", operator.epoch) is None  # the old session stays ended
    OperatorStore(tmp_path / "operators.json").set_password("wang.fang", "a-new-long-password")
    with pytest.raises(SignInRefused):
        store.sign_in("wang.fang", PASSWORD)
    assert store.sign_in("wang.fang", "a-new-long-password").epoch == operator.epoch + 2


def test_roles_grant_what_they_name(store):
    assert store.accounts["wang.fang"].may(Grant.act)
    observer = store.add(COMMUNITY, "chen.jing", PASSWORD, "陈静", Role.observer)
    assert observer.may(Grant.read) and not observer.may(Grant.act)


def test_sessions_end_when_idle_or_signed_out(store):
    clock = Tick()
    sessions = Sessions(clock)
    token, session = sessions.open(store.sign_in("wang.fang", PASSWORD))
    assert sessions.get(token) is session and sessions.get("forged") is None
    clock.now += SESSION_IDLE - 1
    assert sessions.get(token) is session  # used: still open
    clock.now += SESSION_IDLE + 1
    assert sessions.get(token) is None
    token, _ = sessions.open(store.accounts["wang.fang"])
    sessions.close(token)
    assert sessions.get(token) is None


def test_deadlines_read_as_an_operator_reads_them():
    now = datetime(2026, 12, 5, 8, 0)
    assert remaining(now + timedelta(hours=2, minutes=13, seconds=30), now) == ("剩2小时13分", False)
    assert remaining(now - timedelta(minutes=35), now) == ("超时35分", True)
    assert remaining(now + timedelta(days=2, hours=23, minutes=59), now) == ("剩2天23小时59分", False)


@pytest.mark.parametrize("target, kept", [("/console/cases?level=red", True), ("//evil.example/", False),
                                          ("https://evil.example/", False), ("/\\evil", False)])
def test_after_sign_in_only_this_site_is_a_destination(target, kept):
    assert (_local(target) == target) == kept
