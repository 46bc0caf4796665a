"""Tactics chosen by timing (gpen_video.engine.tactics): the fastest kept, cached, listed, reused
without timing again, a damaged cache timed again."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from gpen_video.engine.tactics import choose_tactics, describe_tactics, device_timer
from gpen_video.models.config import GpenConfig
from gpen_video.models.inference import inference_form
from gpen_video.models.load import build_gpen


def small_form():
    return inference_form(build_gpen(GpenConfig(32, channel_multiplier=1, narrow=0.0625)))


def table_timer(fastest: dict[str, str], calls: list):
    """A measure that reads a table instead of a clock: ``fastest[site]`` takes 1 ms, every
    other tactic 2 ms plus a little per candidate index (so a wrong choice cannot tie). It
    also runs the candidate once, so a tactic that fails would still fail."""
    def measure(run, site, tactic):
        run()
        calls.append((site, tactic))
        return 0.001 if fastest.get(site) == tactic else 0.002 + 1e-6 * len(tactic)
    return measure


def test_the_fastest_tactic_of_every_site_is_kept_and_cached(tmp_path: Path) -> None:
    form = small_form()
    sites = form.sites()
    # the slowest-looking choice everywhere, to be sure the table decides, not the order
    fastest = {name: site.candidates()[-1] for name, site in sites.items()}
    calls: list = []
    timed = choose_tactics(form, "cpu", "fp32", 1, tmp_path, measure=table_timer(fastest, calls))
    assert timed.timed and timed.plan.as_dict() == fastest
    assert form.current_plan().as_dict() == fastest  # applied to the network too
    assert {(s, t) for s, t in calls} == {(s, t) for s, site in sites.items()
                                          for t in site.candidates()}  # every candidate timed
    record = json.loads(timed.path.read_text())
    assert record["plan"] == fastest
    assert record["times_ms"]["ecd1"][fastest["ecd1"]] == pytest.approx(1.0)


def test_the_next_run_reuses_the_plan_without_timing(tmp_path: Path) -> None:
    fastest = {"convs.0": "subpixel/weights", "ecd2": "composite"}
    choose_tactics(small_form(), "cpu", "fp32", 1, tmp_path, measure=table_timer(fastest, []))

    def no_timing(run, site, tactic):
        raise AssertionError("timed again although the plan is cached")

    form = small_form()
    again = choose_tactics(form, "cpu", "fp32", 1, tmp_path, measure=no_timing)
    assert not again.timed and again.seconds == 0.0
    assert form.sites()["convs.0"].tactic == "subpixel/weights"
    assert form.sites()["ecd2"].tactic == "composite"
    # another batch is another plan: timed
    calls: list = []
    other = choose_tactics(small_form(), "cpu", "fp32", 2, tmp_path,
                           measure=table_timer(fastest, calls))
    assert other.timed and calls and other.path != again.path


def test_engine_list_shows_each_sites_choice_and_times(tmp_path: Path, capsys) -> None:
    from gpen_video.cli import main

    fastest = {"convs.0": "composite/activations"}
    choose_tactics(small_form(), "cpu", "fp32", 1, tmp_path, measure=table_timer(fastest, []))
    lines = describe_tactics(tmp_path)
    assert lines[0].startswith("tactics  tactics-32px-fp32-b1-") and "batch 1" in lines[0]
    row = next(line for line in lines if line.strip().startswith("convs.0 "))
    assert "composite/activations" in row and "1 ms" in row and "depthwise/activations" in row
    assert main(["engine", "list", "--engine-dir", str(tmp_path)]) == 0
    assert "composite/activations" in capsys.readouterr().out


def test_a_damaged_tactic_cache_is_reported_removed_and_timed_again(tmp_path: Path, caplog
                                                                    ) -> None:
    first = choose_tactics(small_form(), "cpu", "fp32", 1, tmp_path,
                           measure=table_timer({}, []))
    first.path.write_text('{"plan": {"ecd1": ')  # truncated
    caplog.set_level(logging.WARNING, logger="gpen_video.engine")
    calls: list = []
    again = choose_tactics(small_form(), "cpu", "fp32", 1, tmp_path,
                           measure=table_timer({}, calls))
    assert again.timed and calls
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0] and first.path.name in warnings[0]
    assert json.loads(again.path.read_text())["plan"]  # whole again


def test_the_device_timer_times_real_runs() -> None:
    """The default measure runs the candidate and returns a positive duration in seconds."""
    runs = []
    seconds = device_timer("cpu", warmup=1, repeats=3)(lambda: runs.append(torch.ones(8).sum()),
                                                       "site", "tactic")
    assert len(runs) == 4 and 0 < seconds < 1
