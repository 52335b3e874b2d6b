"""The reproduction report: row selection, failure isolation, the markdown and JSON it writes."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from gdl_jax import report
from gdl_jax.errors import ConfigError
from gdl_jax.report import Field, Row

FAKE = textwrap.dedent('''
    """A stand-in experiment binary: writes results.json and a figure, or fails."""
    import json, pathlib, sys
    args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
    workdir = pathlib.Path(args["workdir"])
    print("step 1/1 of", args.get("name"))
    if args.get("die_of"):   # as a binary stopped by a signal ends (gdl_jax.cli.die_of)
        import os, signal
        print("stopped by", args["die_of"], flush=True)
        signum = getattr(signal, args["die_of"])
        if signum != signal.SIGKILL:
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    if args.get("fail") == "1":
        sys.exit("error: this row's data is missing")
    results = {"value": float(args["value"]), "nested": {"n": 7}, "source": args.get("source", "none")}
    if "value2" in args:
        results["feature_metrics"] = {"features": "cnn on mnist", "frechet_distance": 1.25, "precision": 0.5,
                                      "recall": 0.25, "k": 3, "real_images": 10, "generated_images": 10}
        results["novelty"] = {"nearest_l1_samples": 0.33, "nearest_l1_held_out": 0.3, "ratio": 1.1, "copies": 0.02}
    if "config.inception_weights" in args:
        results["inception_metrics"] = {"features": "InceptionV3 FID", "frechet_distance": 31.5, "precision": 0.75,
                                        "recall": 0.125, "k": 3, "real_images": 10, "generated_images": 10}
    (workdir / "results.json").write_text("{" if args.get("badjson") else json.dumps(results))
    (workdir / "fig.png").write_bytes(b"png")
''')


def _rows():
    fields = (Field("value", "value", ".2f"), Field("n", "nested.n"), Field("from", "source"))
    return (
        Row("a", ("1.1",), "first", "fake_row", ("--workdir={workdir}", "--value=1.5"), "book 1.5", fields),
        Row("b", ("1.2", "1.3"), "fails", "fake_row", ("--workdir={workdir}", "--fail=1"), "book 2", fields),
        Row("c", ("2.1",), "needs b", "fake_row", ("--workdir={workdir}", "--value=3", "--source={b}"),
            "book 3", fields, needs=("b",)),
        Row("d", ("2.2",), "needs a", "fake_row", ("--workdir={workdir}", "--value=4", "--source={a}", "--value2=1"),
            "book 4", fields, quick=("--value=0.5",), needs=("a",)),
    )


def test_select_adds_needed_rows_and_rejects_unknown_ids():
    rows = _rows()
    assert [r.name for r in report.select(rows, [])] == ["a", "b", "c", "d"]
    assert [r.name for r in report.select(rows, ["2.2"])] == ["a", "d"]
    assert [r.name for r in report.select(rows, ["1.3", "a"])] == ["a", "b"]
    with pytest.raises(ConfigError, match=r"unknown row id\(s\) 9.9; valid: 1.1, 1.2, 1.3, 2.1, 2.2"):
        report.select(rows, ["2.1", "9.9"])


def test_a_failed_row_is_reported_and_the_rest_still_run(tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "fake_row.py").write_text(FAKE)
    out = tmp_path / "out"
    got = report.run(_rows(), "quick", out, env={"PYTHONPATH": str(tmp_path / "mods")}, echo=False)
    rows = {r["name"]: r for r in got["rows"]}
    assert [r["status"] for r in got["rows"]] == ["ok", "failed", "ok", "ok"]
    assert rows["a"]["ours"] == {"value": 1.5, "n": 7, "from": "none"}
    assert rows["b"]["error"] == "exit status 1" and rows["b"]["log_tail"][-1] == "error: this row's data is missing"
    # c needs the failed b: run without the flag that names b's workdir, and says so
    assert rows["c"]["ours"]["from"] == "none" and "row(s) b, failed or stopped" in rows["c"]["note"]
    # d: the quick flags come last (value 0.5), and {a} is a's workdir
    assert rows["d"]["ours"] == {"value": 0.5, "n": 7, "from": str(out / "rows" / "a")}
    assert rows["d"]["metrics"]["feature_metrics"]["frechet_distance"] == 1.25
    assert rows["a"]["figures"] == ["fig.png"] and rows["a"]["command"].startswith("python -m fake_row --workdir=")
    assert (out / "rows" / "b" / "log.txt").read_text().startswith("step 1/1")
    assert json.loads((out / "report.json").read_text()) == got
    md = (out / "report.md").read_text()
    assert "3 of 4 rows ok" in md and "| 1.2, 1.3 | fails | failed |" in md
    assert "| 1.1 | first | ok |" in md and "value 1.50; n 7; from none |" in md
    assert "error: this row's data is missing" in md
    assert "Frechet distance 1.25, precision 0.500, recall 0.250" in md
    assert "image 0.330, held-out images' 0.300: ratio 1.10, copies 2.0%." in md
    assert "![fig.png](rows/a/fig.png)" in md and (out / "rows/a/fig.png").is_file()


def test_a_row_whose_results_are_not_json_is_failed_and_the_rest_still_run(tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "fake_row.py").write_text(FAKE)
    a, *_ = _rows()
    bad = Row("z", ("1.9",), "bad", "fake_row", ("--workdir={workdir}", "--value=1", "--badjson=1"), "book", a.fields)
    got = report.run((bad, a), "quick", tmp_path / "out", env={"PYTHONPATH": str(tmp_path / "mods")}, echo=False)
    assert [r["status"] for r in got["rows"]] == ["failed", "ok"]
    assert got["rows"][0]["error"].startswith(f"{tmp_path / 'out' / 'rows' / 'z' / 'results.json'} is not JSON")


@pytest.mark.parametrize("signum, status", [("SIGTERM", "stopped"), ("SIGINT", "stopped"), ("SIGKILL", "failed")])
def test_a_row_ended_by_a_stop_signal_is_stopped_not_failed(tmp_path, signum, status):
    """Ctrl-C or `kill` of the row alone: it saved its checkpoint and the same command goes on
    from there (a SIGKILL gave it no chance to: failed). The other rows still run."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "fake_row.py").write_text(FAKE)
    a, *_ = _rows()
    sig = Row("k", ("1.9",), "signalled", "fake_row", ("--workdir={workdir}", f"--die_of={signum}"), "book", a.fields)
    out = tmp_path / "out"
    got = report.run((sig, a), "quick", out, env={"PYTHONPATH": str(tmp_path / "mods")}, echo=False)
    assert [r["status"] for r in got["rows"]] == [status, "ok"]
    assert got["rows"][0]["error"] == f"ended by {signum}" and got["rows"][0]["log_tail"][-1] == f"stopped by {signum}"
    md = (out / "report.md").read_text()
    assert f"| 1.9 | signalled | {status} |" in md
    assert (f"Stopped (ended by {signum}): the same command goes on from its last checkpoint." in md) == (
        status == "stopped")


def test_inception_weights_add_fid_to_the_rows_with_sample_features(tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "fake_row.py").write_text(FAKE)
    rows = (Row("plain", ("1.1",), "no samples", "fake_row", ("--workdir={workdir}", "--value=1"), "-",
                (Field("value", "value"),)),
            Row("gan", ("4.1",), "samples", "fake_row",
                ("--workdir={workdir}", "--value=2", "--config.quality_features={plain}"), "-",
                (Field("value", "value"),)))
    with_fid = report.with_inception(rows, "fid.npz")
    assert with_fid[0] == rows[0]
    assert with_fid[1].args[-1] == f"--config.inception_weights={os.path.abspath('fid.npz')}"
    got = report.run(with_fid, "book", tmp_path / "out", env={"PYTHONPATH": str(tmp_path / "mods")}, echo=False)
    assert got["rows"][1]["ours"] == {"value": 2.0, "FID": 31.5}
    md = (tmp_path / "out" / "report.md").read_text()
    assert "value 2.0; FID 31.5 |" in md
    assert "features of InceptionV3 FID: Frechet distance 31.5, precision 0.750, recall 0.125" in md


def test_reproduce_binary_rejects_an_unknown_row_id(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--only=2.3,7.7",
                           f"--output_dir={tmp_path}"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.startswith("error: unknown row id(s) 7.7; valid: 1.1, 1.2") and proc.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_reproduce_binary_rejects_unreadable_inception_weights(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--only=4.1",
                           f"--inception_weights={tmp_path / 'fid.pth'}", f"--output_dir={tmp_path / 'out'}"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.startswith(f"error: InceptionV3 weights {tmp_path / 'fid.pth'}: no such file")
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_row_run_again_reports_its_wall_time_over_all_its_runs(tmp_path, monkeypatch):
    """The same command again (a killed run resumed): the log keeps both runs' output and the
    wall time is both runs', counted from the row's runs.json (a run killed outright leaves it
    as of its last minute)."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "fake_row.py").write_text(FAKE)
    a = _rows()[0]
    out, env = tmp_path / "out", {"PYTHONPATH": str(tmp_path / "mods")}
    first = report.run((a,), "quick", out, env=env, echo=False)["rows"][0]
    assert first["runs"] == 1 and "note" not in first
    runs_file = out / "rows" / "a" / report.RUNS_FILE
    assert json.loads(runs_file.read_text()) == {"runs": 1, "wall_s": round(first["wall_s"], 1)}
    runs_file.write_text(json.dumps({"runs": 1, "wall_s": 3600.0}))   # as if the first had run an hour
    second = report.run((a,), "quick", out, env=env, echo=False)["rows"][0]
    assert second["runs"] == 2 and 3600 < second["wall_s"] < 3600 + 60
    assert second["note"] == "wall time over 2 runs of this row, each going on from the last one's checkpoint"
    log = (out / "rows" / "a" / "log.txt").read_text()
    assert log.count("step 1/1") == 2 and "--- run 2 of this row" in log
    md = (out / "report.md").read_text()
    assert "| 1.1 | first | ok | 1:00:0" in md and "(wall time over 2 runs" in md


def _report_with_a_sleeping_row(tmp_path, row_setup: str = "", parent_setup: str = ""):
    """Starts a report run (its own process, after `parent_setup`) of one row that runs
    `row_setup`, writes its pid and sleeps; returns (the report's Popen, the row's pid) once the
    row is up."""
    import time

    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "sleepy_row.py").write_text(
        "import os, pathlib, sys, time\n" + row_setup +
        "pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))\n"
        "time.sleep(120)\n")
    pid_file = tmp_path / "row.pid"
    script = parent_setup + textwrap.dedent(f'''
        from gdl_jax import report
        row = report.Row("s", ("9.1",), "sleeps", "sleepy_row", ({str(pid_file)!r},), "-", ())
        report.run((row,), "quick", {str(tmp_path / "out")!r}, env={{"PYTHONPATH": {str(tmp_path / "mods")!r}}},
                   echo=False)
    ''')
    parent = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True,
                              start_new_session=True)   # a group of its own: a test's Ctrl-C reaches only it
    deadline = time.monotonic() + 120
    while not pid_file.is_file() or not pid_file.read_text():
        assert parent.poll() is None and time.monotonic() < deadline, parent.stderr.read()
        time.sleep(0.1)
    return parent, int(pid_file.read_text())


@pytest.mark.parametrize("nohup", [False, True])
def test_a_terminated_report_run_takes_its_rows_process_with_it(tmp_path, nohup):
    """`kill` (SIGTERM) of the report's process ends the row's process too, as Ctrl-C does: a
    row left training on its own would hold its workdir against the resumed run. Under `nohup`
    (SIGHUP ignored) a closed terminal ends neither."""
    import signal
    import time

    ignore_hup = "import signal\nsignal.signal(signal.SIGHUP, signal.SIG_IGN)\n" if nohup else ""
    parent, child = _report_with_a_sleeping_row(tmp_path, parent_setup=ignore_hup)
    if nohup:
        parent.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert parent.poll() is None and os.path.exists(f"/proc/{child}")
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=60) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:   # reaped by the parent: gone
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{child}")


# A row that, on SIGTERM, takes a second to "save", says so and exits; it notes every signal it got.
_SAVING_ROW = """import signal
got = []
def note(signum, frame):
    got.append(signal.Signals(signum).name)
def save_and_exit(signum, frame):
    note(signum, frame)
    time.sleep(1)
    print("row saved", flush=True)
    pathlib.Path(sys.argv[1] + ".saved").write_text(" ".join(got))
    sys.exit(128 + signum)
signal.signal(signal.SIGINT, note)
signal.signal(signal.SIGTERM, save_and_exit)
"""


@pytest.mark.parametrize("how", ["kill", "ctrl-c"])
def test_an_interrupted_report_run_waits_for_its_row_to_stop(tmp_path, how):
    """The report sends its row one SIGTERM and waits for it (a training loop stops after its
    dispatches with a checkpoint) instead of killing it mid-save; more SIGTERMs meanwhile do not
    cut that short. A terminal's Ctrl-C goes to the report's whole process group; the row, in a
    session of its own, gets only the SIGTERM."""
    import signal
    import time

    parent, child = _report_with_a_sleeping_row(tmp_path, row_setup=_SAVING_ROW)
    if how == "kill":   # twice: the second, while the row saves, is not let cut it short
        parent.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 128 + signal.SIGTERM
    else:
        os.killpg(parent.pid, signal.SIGINT)
        assert parent.wait(timeout=60) != 0
    assert (tmp_path / "row.pid.saved").read_text() == "SIGTERM"
    assert "row saved" in (tmp_path / "out" / "rows" / "s" / "log.txt").read_text()
    assert not os.path.exists(f"/proc/{child}")
    row, = json.loads((tmp_path / "out" / "report.json").read_text())["rows"]   # written before the report ends
    assert row["status"] == "stopped" and row["error"] == "exit status 143" and row["log_tail"][-1] == "row saved"


def test_ctrl_z_stops_the_row_with_the_report_and_fg_continues_both(tmp_path):
    """The row, in a session of its own, gets no terminal signals: the report stops it with
    itself on Ctrl-Z (SIGTSTP) and continues it on `fg` / `bg` (SIGCONT)."""
    import signal
    import time

    def state(pid):
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]

    def wait_for(pid, states):
        deadline = time.monotonic() + 30
        while state(pid) not in states and time.monotonic() < deadline:
            time.sleep(0.05)
        return state(pid)

    parent, child = _report_with_a_sleeping_row(tmp_path)
    try:
        parent.send_signal(signal.SIGTSTP)
        assert wait_for(parent.pid, "T") == "T" and wait_for(child, "T") == "T"
        parent.send_signal(signal.SIGCONT)
        assert wait_for(parent.pid, "SR") in "SR" and wait_for(child, "SR") in "SR"
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=60)


def test_a_row_that_does_not_stop_is_killed_after_the_grace_time(tmp_path):
    import signal
    import time

    parent, child = _report_with_a_sleeping_row(
        tmp_path, row_setup="import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n",
        parent_setup="from gdl_jax import report as r\nr.STOP_GRACE_S = 2.0\n")
    time_0 = time.monotonic()
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=60) == 128 + signal.SIGTERM
    assert 2.0 <= time.monotonic() - time_0 < 30
    assert not os.path.exists(f"/proc/{child}")
    row, = json.loads((tmp_path / "out" / "report.json").read_text())["rows"]
    assert row["status"] == "failed" and row["error"] == "ended by SIGKILL"


def test_a_report_run_killed_outright_takes_its_rows_process_with_it(tmp_path):
    """SIGKILL (or the OOM killer) gives the report no chance to end its row: the row's binary,
    through `runtime.configure`, has the kernel kill it when its parent dies, instead of training
    on alone and holding its workdir's lock against the resumed run."""
    import signal
    import time

    parent, child = _report_with_a_sleeping_row(
        tmp_path, row_setup="from gdl_jax import runtime\nruntime.configure('__main__')\n")
    parent.kill()
    parent.wait(timeout=60)

    def alive(pid):   # an orphan is reparented and reaped by init; a zombie counts as gone
        try:
            return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
        except OSError:
            return False
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    still = alive(child)
    if still:
        os.kill(child, signal.SIGKILL)
    assert not still, "the row's process outlived the killed report run"


def test_an_output_dir_in_use_is_refused_in_one_line(tmp_path):
    """Two reproduce runs on one output dir would interleave its rows' logs and runs.json."""
    import fcntl

    from gdl_jax.outputs import LOCK_FILE

    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK_FILE, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("pid 77 on elsewhere\n")
        held.flush()
        proc = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--only=1.1", f"--output_dir={out}"],
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1
    assert proc.stderr.strip() == (
        f"error: output_dir {out} is in use by another run (pid 77 on elsewhere); wait for it to end or use a "
        "new --output_dir")
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]
