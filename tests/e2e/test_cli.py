"""The CLI as a user runs it: a subprocess per command, against a real server and agent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.procs import (
    ServerProc,
    base_env,
    flopex_cmd,
    running_server,
    start_agent,
    wait_for,
)


def flopex(
    *args: str, token: str | None = None, server: ServerProc | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = base_env()
    if server is not None:
        env["FLOPEX_SERVER"] = server.url
    if token is not None:
        env["FLOPEX_TOKEN"] = token
    env["XDG_CONFIG_HOME"] = str((cwd or Path.cwd()) / ".config-test")
    return subprocess.run(
        flopex_cmd(*args),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def assert_clean_error(res: subprocess.CompletedProcess[str], code: str) -> None:
    assert res.returncode != 0
    assert f"error[{code}]" in res.stderr, res.stderr
    assert "hint:" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("cli")
    with running_server(root) as server:
        admin = server.admin_token
        made = flopex(
            "account",
            "create",
            "alice",
            "--role",
            "consumer",
            "--json",
            token=admin,
            server=server,
            cwd=root,
        )
        assert made.returncode == 0, made.stderr
        alice = json.loads(made.stdout)["token"]
        prov = json.loads(
            flopex(
                "account",
                "create",
                "prov",
                "--role",
                "provider",
                "--json",
                token=admin,
                server=server,
                cwd=root,
            ).stdout
        )["token"]
        minted = flopex("credits", "mint", "alice", "25.5", token=admin, server=server, cwd=root)
        assert minted.returncode == 0, minted.stderr
        agent = start_agent(server, prov, "cli", region="jp-kyushu", price="1.5")
        try:
            yield {"server": server, "root": root, "admin": admin, "alice": alice}
        finally:
            agent.terminate()
            agent.wait(15)


def test_balance_shows_minted_credits(env: Any) -> None:
    res = flopex("balance", "--json", token=env["alice"], server=env["server"], cwd=env["root"])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["available_ucr"] == 25_500_000


def test_submit_wait_runs_the_job_and_outputs_download(env: Any) -> None:
    root: Path = env["root"]
    work = root / "proj"
    work.mkdir()
    (work / "data.txt").write_text("7\n")
    (work / ".gitignore").write_text("secret.txt\n")
    (work / "secret.txt").write_text("do not upload")
    task = work / "task.yaml"
    task.write_text(
        "name: double\n"
        "workdir: .\n"
        "resources:\n  cpus: 1\n"
        "run: |\n"
        "  test ! -e secret.txt\n"
        "  echo $(( $(cat data.txt) * 2 )) > $FLOPEX_OUTPUT_DIR/out.txt\n"
        "flopex:\n  max_price_per_hour: 2\n  estimated_hours: 0.1\n"
    )
    res = flopex(
        "job",
        "submit",
        str(task),
        "--wait",
        "--json",
        token=env["alice"],
        server=env["server"],
        cwd=root,
    )
    assert res.returncode == 0, res.stderr
    job = json.loads(res.stdout)
    assert job["state"] == "succeeded"
    assert job["region"] == "jp-kyushu"
    dest = root / "outs"
    got = flopex(
        "job", "outputs", job["id"], str(dest), token=env["alice"], server=env["server"], cwd=root
    )
    assert got.returncode == 0, got.stderr
    assert (dest / "out.txt").read_text() == "14\n"
    listed = json.loads(
        flopex("job", "list", "--json", token=env["alice"], server=env["server"], cwd=root).stdout
    )
    assert job["id"] in [j["id"] for j in listed["jobs"]]
    explained = flopex(
        "job", "explain", job["id"], "--json", token=env["alice"], server=env["server"], cwd=root
    )
    assert json.loads(explained.stdout)["verdicts"][0]["chosen"] is True


def test_market_offers_filter_and_sort(env: Any) -> None:
    args = ("market", "offers", "price<2 region in jp-kyushu,jp-tokyo", "--sort", "price", "--json")
    res = flopex(*args, token=env["alice"], server=env["server"], cwd=env["root"])
    assert res.returncode == 0, res.stderr
    offers = json.loads(res.stdout)
    assert [o["region"] for o in offers] == ["jp-kyushu"]
    none = flopex(
        "market",
        "offers",
        "price<1",
        "--json",
        token=env["alice"],
        server=env["server"],
        cwd=env["root"],
    )
    assert json.loads(none.stdout) == []
    bad = flopex(
        "market", "offers", "prise<1", token=env["alice"], server=env["server"], cwd=env["root"]
    )
    assert_clean_error(bad, "filter.invalid")
    assert "did you mean price" in bad.stderr


def test_validate_reports_line_and_column_of_bad_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrun: [unclosed\n")
    res = flopex("job", "validate", str(bad), cwd=tmp_path)
    assert_clean_error(res, "job.spec_invalid")
    assert "line" in res.stderr


def test_validate_names_unknown_field_and_device(tmp_path: Path) -> None:
    task = tmp_path / "t.yaml"
    task.write_text("run: echo\nresources:\n  acclerators: H100:1\n")
    res = flopex("job", "validate", str(task), cwd=tmp_path)
    assert_clean_error(res, "job.spec_invalid")
    assert "accelerators" in res.stderr
    task.write_text("run: echo\nresources:\n  accelerators: H10:1\n")
    res = flopex("job", "validate", str(task), cwd=tmp_path)
    assert_clean_error(res, "job.spec_invalid")
    assert "H100" in res.stderr
    task.write_text("run: echo\nresources:\n  accelerators: H100:1\n")
    ok = flopex("job", "validate", str(task), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_negative_price_and_bad_amount_are_clean_errors(env: Any) -> None:
    res = flopex(
        "credits", "mint", "alice", "-5", token=env["admin"], server=env["server"], cwd=env["root"]
    )
    assert_clean_error(res, "money.amount_invalid")
    res = flopex(
        "agent",
        "--region",
        "jp-tokyo",
        "--price-per-hour",
        "0",
        "--token",
        "x",
        "--server",
        env["server"].url,
        cwd=env["root"],
    )
    assert_clean_error(res, "money.amount_invalid")


def test_wrong_token_and_unreachable_server_are_clean_errors(env: Any, tmp_path: Path) -> None:
    res = flopex("balance", token="nope", server=env["server"], cwd=tmp_path)
    assert_clean_error(res, "auth.unauthorized")
    env_off = flopex("balance", "--server", "http://127.0.0.1:9", "--token", "x", cwd=tmp_path)
    assert_clean_error(env_off, "server.unreachable")


def test_insufficient_funds_is_a_clean_error_and_holds_nothing(env: Any) -> None:
    server: ServerProc = env["server"]
    made = json.loads(
        flopex(
            "account",
            "create",
            "poor",
            "--json",
            token=env["admin"],
            server=server,
            cwd=env["root"],
        ).stdout
    )
    task = env["root"] / "poor.yaml"
    task.write_text("run: echo hi\n")
    res = flopex("job", "submit", str(task), token=made["token"], server=server, cwd=env["root"])
    assert_clean_error(res, "ledger.insufficient_funds")
    bal = json.loads(
        flopex("balance", "--json", token=made["token"], server=server, cwd=env["root"]).stdout
    )
    assert bal["held_ucr"] == 0


def test_another_accounts_job_is_not_found(env: Any) -> None:
    server: ServerProc = env["server"]
    task = env["root"] / "t2.yaml"
    task.write_text("run: sleep 0\n")
    job_id = flopex(
        "job", "submit", str(task), token=env["alice"], server=server, cwd=env["root"]
    ).stdout.strip()
    eve = json.loads(
        flopex(
            "account", "create", "eve", "--json", token=env["admin"], server=server, cwd=env["root"]
        ).stdout
    )
    res = flopex("job", "show", job_id, token=eve["token"], server=server, cwd=env["root"])
    assert_clean_error(res, "job.not_found")
    wait_for(
        lambda: json.loads(
            flopex(
                "job", "show", job_id, "--json", token=env["alice"], server=server, cwd=env["root"]
            ).stdout
        )["settled_at"]
    )
