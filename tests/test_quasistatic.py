"""The quasi-static push model that the simulators' block turns are checked against."""

from __future__ import annotations

import pytest

from envs.quasistatic import centre_push_turn


def test_a_uniform_block_goes_straight() -> None:
    assert centre_push_turn(500, 500) == pytest.approx(0.0, abs=1e-6)


def test_mirrored_blocks_turn_mirrored() -> None:
    assert centre_push_turn(100, 500) == pytest.approx(-centre_push_turn(500, 100), abs=1e-6)


def test_the_heavier_half_lags_and_more_so_the_more_uneven() -> None:
    # heavy -y half: the block yaws clockwise (negative)
    assert centre_push_turn(100, 500) < centre_push_turn(250, 500) < -1.0


def test_a_finger_off_the_centre_line_and_a_front_loaded_block_turn_less() -> None:
    point = centre_push_turn(100, 500, finger_offset=0.0)
    edge = centre_push_turn(100, 500)
    assert point < edge < 0  # the finger's edge sits nearer the heavy side's friction centre
    flat = centre_push_turn(100, 500, push_height=0.0)  # no load moved forward
    assert flat < edge


def test_the_finger_friction_does_not_matter_while_the_contact_sticks() -> None:
    assert centre_push_turn(100, 500, finger_friction=0.3) == pytest.approx(
        centre_push_turn(100, 500, finger_friction=0.6), abs=0.5
    )
