from datetime import timedelta

import pytest

from schemas.levels import RiskLevel
from schemas.regions import Level
from schemas.signals import NoticeRole
from streams.routing import route

from tests.unit.test_correlation import run, event
from tests.helpers import T0


def signal_at(level: RiskLevel):
    return run([event(1), event(2), event(3)])[0].signal.model_copy(update={"level": level})


@pytest.mark.parametrize(
    ("level", "centres", "ack"),
    [
        (RiskLevel.blue, ["210202001001"], timedelta(hours=24)),
        (RiskLevel.yellow, ["210202001001", "210202001"], timedelta(hours=2)),
        (RiskLevel.orange, ["210202001001", "210202001", "210202"], timedelta(minutes=30)),
        (RiskLevel.red, ["210202001001", "210202001", "210202", "2102"], timedelta(minutes=15)),
    ],
)
def test_policy_table(level, centres, ack):
    notices = route(signal_at(level), T0)
    assert [n.centre_code for n in notices] == centres
    assert [n.role for n in notices] == [NoticeRole.handle] + [NoticeRole.inform] * (len(centres) - 1)
    assert notices[0].centre_level is Level.community
    assert all(n.ack_due == T0 + ack for n in notices)
    assert len({n.notice_id for n in notices}) == len(notices)


def test_notice_ids_are_stable():
    s = signal_at(RiskLevel.yellow)
    assert [n.notice_id for n in route(s, T0)] == [n.notice_id for n in route(s, T0 + timedelta(hours=1))]
