"""Deadlines in one process: the header, the Flask extension and scopes."""

from __future__ import annotations

import pytest
from flask import jsonify

from flotilla import create_app
from flotilla.clock import ManualClock
from flotilla.config import PlatformSettings
from flotilla.http.deadline import (
    DEADLINE_HEADER,
    Deadline,
    check_deadline,
    current_deadline,
    deadline_scope,
    parse_header,
    remaining_budget,
)
from flotilla.http.errors import DeadlineExceeded


@pytest.fixture
def app(tmp_path):
    platform = PlatformSettings(trace_file=tmp_path / "traces.jsonl", access_log=False)
    app = create_app("deadlines", platform=platform)  # installs Deadlines

    @app.get("/budget")
    def budget():
        return jsonify(remaining=remaining_budget())

    @app.get("/late")
    def late():
        current_deadline().expires_at -= 60  # as if the work had run a minute
        check_deadline()
        return jsonify(done=True)

    return app


def test_the_remaining_budget_comes_from_the_header(app):
    answer = app.test_client().get("/budget", headers={DEADLINE_HEADER: "1500"}).get_json()
    assert 0 < answer["remaining"] <= 1.5


def test_no_header_means_no_deadline(app):
    assert app.test_client().get("/budget").get_json() == {"remaining": None}


def test_a_passed_deadline_is_answered_504_without_running_the_view(app):
    response = app.test_client().get("/budget", headers={DEADLINE_HEADER: "0"})
    assert response.status_code == 504
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "urn:flotilla:problem:deadline-exceeded"


def test_work_that_runs_past_the_deadline_stops_with_504(app):
    response = app.test_client().get("/late", headers={DEADLINE_HEADER: "5000"})
    assert response.status_code == 504
    assert response.get_json()["title"] == "Deadline exceeded"


def test_a_garbled_header_is_ignored():
    assert parse_header("soon") is None
    assert parse_header("1" * 20) is None
    assert parse_header(" 250 ") == 0.25


def test_scopes_nest_and_the_earlier_deadline_wins():
    clock = ManualClock()
    with deadline_scope(2.0, clock) as outer:
        with deadline_scope(10.0, clock) as inner:
            assert inner is outer
        with deadline_scope(0.5, clock):
            assert remaining_budget() == pytest.approx(0.5)
        clock.advance(2.0)
        with pytest.raises(DeadlineExceeded):
            check_deadline()
    assert current_deadline() is None


def test_header_value_is_whole_milliseconds_never_negative():
    clock = ManualClock()
    deadline = Deadline.after(0.25, clock)
    assert deadline.header_value() == "250"
    clock.advance(1)
    assert deadline.header_value() == "0"
