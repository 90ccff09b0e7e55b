"""The `onestop` command, run as a user runs it (a subprocess against the test database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

COMMANDS = ["serve", "worker", "migrate", "seed-demo", "demo-accounts", "import-regions"]


def onestop(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = onestop(command, "--help")
    assert result.returncode == 0 and "Usage" in result.stdout


def test_demo_accounts_json_is_only_json_and_covers_every_role(seeded):
    result = onestop("demo-accounts", "--json")
    assert result.returncode == 0, result.stderr
    accounts = json.loads(result.stdout)
    roles = {role for account in accounts for role in account["roles"]}
    assert {"clerk", "supervisor", "helper", "admin", "reviewer"} <= roles
    assert {"id", "username", "password", "roles", "service_point_id", "region_code"} <= set(accounts[0])
    by_level = {account["region_code"][6:] == "000000" for account in accounts if "clerk" in account["roles"]}
    assert by_level == {True, False}  # clerks at the county and below


def test_migrate_and_seed_are_idempotent(seeded):
    assert onestop("migrate").returncode == 0
    again = onestop("seed-demo")
    assert again.returncode == 0 and "not seeded" in again.stderr


def test_import_regions_rejects_a_bad_file_with_the_line(tmp_path, seeded):
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,level,parent_code\n36113010220,短码,village,361130102000\n", encoding="utf-8")
    result = onestop("import-regions", str(bad))
    assert result.returncode != 0
    assert "line" in (result.stderr + result.stdout).lower()


def test_figures_refresh_prints_its_report_and_refuses_two_modes(seeded):
    result = onestop("figures", "refresh")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mode"] in ("build", "refresh", "rebuild")
    both = onestop("figures", "refresh", "--full", "--reconcile")
    assert both.returncode != 0 and "not both" in both.stderr
