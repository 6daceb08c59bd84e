"""One run per folder (jaxreg.lab.run_folder): refusal, lock, manifest written last, run ids.

Issue 16's cases through the CLI: two runs into one folder, a rerun after kill -9 (a writer
killed with SIGKILL mid-run), two concurrent runs; nothing mixed. The killed or concurrent writer
is a small subprocess using the report writer (no jax import, so it starts in well under a
second); the CLI runs in-process on the cheapest experiment (numpy-dropout, JAX side).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jaxreg.lab import cli, report, run_folder

CHEAP = ["run", "numpy-dropout", "--framework", "jax", "--epochs", "1", "--no-progress"]

# A writer that opens the folder, writes half a run, says READY and waits to be killed.
_WRITER = """
import sys, time
from jaxreg.lab import report
folder = report.open_run_folder(sys.argv[1], kind=sys.argv[2], log=None)
rec = report.RunRecorder(folder.path, "numpy-dropout", seed=0)
rec.add_history("half", "jax", {"max_diff_fwd": [9.0]})
print("READY", folder.run_id, flush=True)
time.sleep(120)
"""


def _start_writer(out: Path, kind: str = "run") -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(out), kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("READY"), proc.stderr.read()
    return proc, line.split()[1]


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _rows(out: Path, name: str) -> list[dict]:
    return [json.loads(s) for s in (out / name).read_text().splitlines()]


def _run_ids(out: Path) -> set[str]:
    ids = {r["run_id"] for name in ("metrics.jsonl", "results.jsonl") for r in _rows(out, name)}
    ids.add(json.loads((out / "config.json").read_text())["run_id"])
    return ids


def test_two_runs_into_one_folder_refused_then_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main([*CHEAP, "--out", str(out)]) == 0
    first = run_folder.read_manifest(out)
    assert first["status"] == "complete" and _run_ids(out) == {first["run_id"]}
    assert {f["path"] for f in first["files"]} >= {"config.json", "results.jsonl", "report.md"}
    results = (out / "results.jsonl").read_text()
    capsys.readouterr()

    assert cli.main([*CHEAP, "--seed", "1", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"--out {out} already holds the complete run {first['run_id']}" in err
    assert "pass --overwrite to replace it" in err and "--resume" not in err
    assert (out / "results.jsonl").read_text() == results  # untouched
    assert run_folder.read_manifest(out) == first

    assert cli.main([*CHEAP, "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    assert f"--overwrite: removed the complete run {first['run_id']}" in capsys.readouterr().err
    second = run_folder.read_manifest(out)
    assert second["run_id"] != first["run_id"] and _run_ids(out) == {second["run_id"]}
    assert {r["seed"] for r in _rows(out, "results.jsonl")} == {1}
    assert not (out / run_folder.LOCK_NAME).exists()


def test_rerun_after_kill_9_starts_clean_and_says_so(tmp_path, capsys):
    out = tmp_path / "out"
    proc, killed_id = _start_writer(out)
    _kill(proc)
    # What a killed run leaves is never read as complete.
    assert run_folder.read_manifest(out)["status"] == "running"
    assert not run_folder.is_complete(out) and (out / run_folder.LOCK_NAME).exists()

    assert cli.main([*CHEAP, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"took over the stale lock {out / run_folder.LOCK_NAME} of pid {proc.pid}" in err
    assert f"the running run {killed_id} in {out} was killed before completing: starting clean" in (
        err
    )
    manifest = run_folder.read_manifest(out)
    assert manifest["status"] == "complete" and manifest["state"] == "restarted"
    assert _run_ids(out) == {manifest["run_id"]} and killed_id not in _run_ids(out)
    assert "half" not in {r["variant"] for r in _rows(out, "metrics.jsonl")}
    # The report says it too, not only the terminal.
    assert f"{killed_id} in {out} was killed before completing: starting clean" in (
        (out / "report.md").read_text()
    )


def test_concurrent_run_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "out"
    proc, holder_id = _start_writer(out)
    try:
        before = (out / "metrics.jsonl").read_text()
        assert cli.main([*CHEAP, "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert f"--out {out} is being written by another jaxreg process (pid {proc.pid}" in err
        assert f"run {holder_id}" in err and str(out / run_folder.LOCK_NAME) in err
        # Nothing of the refused run reached the folder.
        assert (out / "metrics.jsonl").read_text() == before
        assert not (out / "results.jsonl").exists()
        assert run_folder.read_manifest(out)["run_id"] == holder_id
        assert cli.main([*CHEAP, "--out", str(out), "--overwrite"]) == 1  # not even so
    finally:
        _kill(proc)


def test_interrupted_sweep_resumes_and_a_complete_one_needs_resume(tmp_path, capsys):
    out = tmp_path / "sweep"
    proc, killed_id = _start_writer(out, kind="sweep")
    _kill(proc)
    (out / "metrics.jsonl").unlink()  # the writer's stand-in file; chunks/ is what a sweep keeps
    argv = ["sweep", "custom", "--synthetic", "32", "--hidden", "4", "--grid", "dropout1=0,0.5"]
    argv += ["--epochs", "1", "--seeds", "0", "--out", str(out), "--quiet", "--chunk-size", "2"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert f"{killed_id} in {out} was killed before completing: resuming it" in err
    manifest = run_folder.read_manifest(out)
    assert manifest["status"] == "complete" and manifest["run_id"] == killed_id
    assert manifest["sessions"] == 2

    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "already holds the complete sweep" in err and "or --resume to continue it" in err
    # --resume continues it (the sweep then reads every chunk back, as tests/test_sweep.py shows).
    folder = run_folder.open_run_folder(out, kind="sweep", resume=True, resumable=True, log=None)
    assert folder.resumed and folder.run_id == killed_id
    assert "resume=True: continuing the complete sweep" in folder.notices[0]
    folder.complete()


def test_folder_with_other_files_is_never_cleared(tmp_path):
    (tmp_path / "thesis.tex").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(run_folder.RunFolderError, match="it holds thesis.tex"):
            run_folder.open_run_folder(tmp_path, overwrite=overwrite, log=None)
    assert (tmp_path / "thesis.tex").read_text() == "mine"
    assert not (tmp_path / run_folder.LOCK_NAME).exists()


def test_same_process_cannot_open_a_folder_twice_and_a_failed_run_restarts(tmp_path):
    folder = run_folder.open_run_folder(tmp_path, log=None)
    with pytest.raises(run_folder.RunFolderError, match="being written by this process"):
        run_folder.open_run_folder(tmp_path, log=None)
    folder.write_text("config.json", "{}")
    folder.fail("ValueError: boom")
    assert run_folder.read_manifest(tmp_path)["status"] == "failed"
    again = run_folder.open_run_folder(tmp_path, log=None)
    assert again.state == "restarted" and not (tmp_path / "config.json").exists()
    assert "failed before completing: starting clean" in again.notices[0]
    again.complete()


def test_manifest_is_written_last_and_lists_every_file(tmp_path):
    with run_folder.open_run_folder(tmp_path / "r", kind="compare", log=None) as folder:
        folder.write_json("sub/compare.json", {"ok": True})
        assert not run_folder.is_complete(folder.path)
    manifest = run_folder.read_manifest(folder.path)
    assert manifest["kind"] == "compare" and manifest["status"] == "complete"
    assert [f["path"] for f in manifest["files"]] == ["sub/compare.json"]
    newest = max(p.stat().st_mtime_ns for p in folder.path.rglob("*") if p.is_file())
    assert (folder.path / "manifest.json").stat().st_mtime_ns == newest


def test_an_exception_marks_the_run_failed(tmp_path):
    with pytest.raises(RuntimeError):
        with run_folder.open_run_folder(tmp_path, log=None):
            raise RuntimeError("disk on fire")
    manifest = run_folder.read_manifest(tmp_path)
    assert manifest["status"] == "failed" and "disk on fire" in manifest["reason"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"resume": True}, "a run cannot resume"),
        ({"resume": True, "resumable": True, "overwrite": True}, "exclude each other"),
    ],
)
def test_contradictory_requests_are_refused(tmp_path, kwargs, message):
    with pytest.raises(run_folder.RunFolderError, match=message):
        run_folder.open_run_folder(tmp_path, log=None, **kwargs)


def test_default_folders_are_unique_under_concurrency(tmp_path):
    paths = {report.claim_default_dir("dropout", tmp_path) for _ in range(5)}
    assert len(paths) == 5 and all(p.is_dir() for p in paths)


def test_main_subfolders_belong_to_its_run(tmp_path):
    out = report.make_run_dir("main", tmp_path / "m", kind="main")
    sub = report.make_run_dir("dropout", out / "dropout")
    rec = report.RunRecorder(sub, "dropout", seed=0)
    assert rec.run_id == run_folder.find_open(out).run_id
    assert not (sub / "manifest.json").exists()
    report.write_report(sub, "dropout", [])
    assert not run_folder.is_complete(out)  # a subfolder's report does not complete the run
    report.write_report(out, "main", [])
    assert run_folder.is_complete(out)
    assert os.path.exists(out / "dropout" / "report.md")
