"""Run checkov on an infra/ folder the way scripts/check-infra.sh does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def checkov_command(root: Path) -> list[str]:
    exe = Path(sys.executable).with_name("checkov")
    cmd = str(exe) if exe.exists() else shutil.which("checkov")
    if cmd is None:
        raise AssertionError("checkov is not installed (run scripts/check-infra.sh)")
    # Keep in step with scripts/check-infra.sh.
    return [
        cmd,
        "--directory", str(root),
        "--framework", "bicep", "arm",
        "--external-checks-dir", str(root / "policies"),
        "--skip-path", r"(^|/)(\.venv|\.pytest_cache|tests)(/|$)",
        "--skip-download",
        "--output", "json",
    ]


def run_checkov(root: Path) -> dict:
    """Totals over all frameworks plus the failed check ids."""
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE")
    proc = subprocess.run(checkov_command(root), capture_output=True, text=True, env=env, timeout=600)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise AssertionError(f"checkov printed no JSON (exit {proc.returncode}): {proc.stderr[-2000:]}") from err
    reports = data if isinstance(data, list) else [data]
    total = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0}
    failed_ids: set[str] = set()
    for report in reports:
        for key in total:
            total[key] += int(report.get("summary", {}).get(key, 0) or 0)
        for check in report.get("results", {}).get("failed_checks", []):
            failed_ids.add(check["check_id"])
    total["failed_ids"] = sorted(failed_ids)
    total["returncode"] = proc.returncode
    return total


def run_checkov_per_folder(parent: Path) -> dict[str, dict]:
    """One checkov run over several infra/ copies side by side under parent
    (each with the same policies): results per top-level folder."""
    first = next(p for p in sorted(parent.iterdir()) if p.is_dir())
    cmd = checkov_command(parent)
    cmd[cmd.index("--external-checks-dir") + 1] = str(first / "policies")
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise AssertionError(f"checkov printed no JSON (exit {proc.returncode}): {proc.stderr[-2000:]}") from err
    reports = data if isinstance(data, list) else [data]
    out: dict[str, dict] = {
        p.name: {"passed": 0, "failed": 0, "skipped": 0, "failed_ids": set()} for p in parent.iterdir() if p.is_dir()
    }
    parsing_errors = 0
    for report in reports:
        parsing_errors += int(report.get("summary", {}).get("parsing_errors", 0) or 0)
        for kind in ("passed", "failed", "skipped"):
            for check in report.get("results", {}).get(f"{kind}_checks", []):
                folder = Path(check["file_abs_path"]).resolve().relative_to(parent.resolve()).parts[0]
                out[folder][kind] += 1
                if kind == "failed":
                    out[folder]["failed_ids"].add(check["check_id"])
    for result in out.values():
        result["parsing_errors"] = parsing_errors
    return out
