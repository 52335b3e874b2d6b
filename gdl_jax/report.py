"""Runs a list of experiment rows, each a command in its own process, and writes one report.

A row is one reproduced result: the binary and flags that make it, the book's numbers, and which
fields of its results.json are ours. Each row runs as `python -m <module> <flags>` with its own
workdir (rows/<name>/), so a crash or a bad flag fails that row only; the report marks it failed
with the end of its log and the other rows still run. A row ended by Ctrl-C or `kill` (of the
report or of the row) is marked stopped: running the same command again goes on from its last
checkpoint. Progress (which row, the child's own step and time-left lines, the whole run's time
left) goes to stderr while it runs; report.md (figures embedded) and report.json are rewritten
after every row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterator, Sequence, TextIO

from gdl_jax import hardware
from gdl_jax.errors import ConfigError
from gdl_jax.outputs import atomic_write_text, locked
from gdl_jax.runtime import PARENT_PID_ENV

LOG_TAIL = 20  # lines of a failed or stopped row's log in the report
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)   # a row ended by one of these was stopped, not failed
RUNS_FILE = "runs.json"   # in a row's workdir: its runs so far and their wall time
RUNS_EVERY_S = 60.0       # how often a running row saves it
STOP_GRACE_S = 300.0      # how long an interrupted report waits for its row's process to stop


@dataclasses.dataclass(frozen=True)
class Field:
    """One of our numbers: `key` a dotted path into results.json, `fmt` a format spec."""
    label: str
    key: str
    fmt: str = ""


@dataclasses.dataclass(frozen=True)
class Row:
    """name: unique, used for its workdir; ids: the SPEC rows it reproduces (e.g. ('1.2', '1.3'));
    args: flags of `module`, where '{workdir}' is this row's workdir and '{<row name>}' another
    row's (a row in `needs`, run first); quick: flags appended under the quick preset."""
    name: str
    ids: tuple[str, ...]
    title: str
    module: str
    args: tuple[str, ...]
    book: str
    fields: tuple[Field, ...]
    quick: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()


def lookup(results: dict, key: str) -> Any:
    """results[a][b]... for key 'a.b...'; None where missing."""
    value: Any = results
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def select(rows: Sequence[Row], only: Sequence[str]) -> list[Row]:
    """The rows whose ids or names are in `only` (every row if empty) and the rows they need, in
    table order; an unknown id is a ConfigError naming the valid ones."""
    if not only:
        return list(rows)
    known = {i for r in rows for i in r.ids} | {r.name for r in rows}
    unknown = [o for o in only if o not in known]
    if unknown:
        ids = sorted({i for r in rows for i in r.ids}, key=lambda s: [int(p) for p in s.split(".")])
        raise ConfigError(f"unknown row id(s) {', '.join(unknown)}; valid: {', '.join(ids)}")
    chosen = {r.name for r in rows if r.name in only or set(r.ids) & set(only)}
    by_name = {r.name: r for r in rows}
    stack = list(chosen)
    while stack:
        for need in by_name[stack.pop()].needs:
            if need not in chosen:
                chosen.add(need)
                stack.append(need)
    return [r for r in rows if r.name in chosen]


def with_inception(rows: Sequence[Row], weights: str) -> list[Row]:
    """The rows, those that measure samples in a classifier's features also in InceptionV3's
    (config.inception_weights = `weights`, gdl_jax.eval.inception), with an 'FID' field."""
    flag = f"--config.inception_weights={os.path.abspath(weights)}"
    fid = Field("FID", "inception_metrics.frechet_distance", ".4g")
    return [dataclasses.replace(r, args=(*r.args, flag), fields=(*r.fields, fid))
            if any(a.startswith("--config.quality_features=") for a in r.args) else r for r in rows]


def command(row: Row, preset: str, workdirs: dict[str, pathlib.Path], failed: set[str]) -> list[str]:
    """The row's command line; a flag naming a failed row's workdir is dropped."""
    args = list(row.args) + (list(row.quick) if preset == "quick" else [])
    out = [sys.executable, "-m", row.module]
    for arg in args:
        if any("{" + f + "}" in arg for f in failed):
            continue
        for name, path in {**workdirs, "workdir": workdirs[row.name]}.items():
            arg = arg.replace("{" + name + "}", str(path))
        out.append(arg)
    return out


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def run(rows: Sequence[Row], preset: str, output_dir: str | os.PathLike, env: dict[str, str] | None = None,
        echo: bool = True) -> dict:
    """Runs `rows` in order and writes output_dir/report.md and report.json; returns the report.
    Holds output_dir's lock (`outputs.lock`) meanwhile: a second report there is refused."""
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with locked(out, "output_dir"), _exit_on_termination():
        return _run(rows, preset, out, env, echo)


def _run(rows: Sequence[Row], preset: str, out: pathlib.Path, env: dict[str, str] | None, echo: bool) -> dict:
    workdirs = {r.name: out / "rows" / r.name for r in rows}   # as given: relative to the cwd rows run in
    report = {"preset": preset, "started": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": hardware.device_model(), "rows": []}
    failed: set[str] = set()
    t_start = time.perf_counter()
    for i, row in enumerate(rows):
        done = time.perf_counter() - t_start
        left = f", about {_duration(done / i * (len(rows) - i))} left" if i else ""
        print(f"[{i + 1}/{len(rows)}] {row.name}: {row.title} ({_duration(done)} elapsed{left})",
              file=sys.stderr, flush=True)
        entry, interruption = run_row(row, command(row, preset, workdirs, failed), workdirs[row.name],
                                      [n for n in row.needs if n in failed], env, echo)
        report["rows"].append(entry)
        if entry["status"] != "ok":
            failed.add(row.name)
        report["wall_s"] = time.perf_counter() - t_start
        write(report, out)
        if interruption is not None:
            raise interruption
    return report


@contextlib.contextmanager
def _signal_handlers(handlers: dict[int, Any]) -> Iterator[None]:
    """`handlers` (signal -> handler) in force for the block, the ones before restored after; on
    the main thread only (elsewhere nothing changes: handlers go on the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _exit_on_termination() -> contextlib.AbstractContextManager:
    """SIGTERM and SIGHUP (a `kill`, a closed terminal) end the run as Ctrl-C does: the running
    row's process is stopped too (run_row), not left training on its own and holding its
    workdir's lock. Only where the signal would end the process anyway: a SIGHUP that `nohup`
    ignores stays ignored."""
    def leave(signum, frame):
        raise SystemExit(128 + signum)
    return _signal_handlers({sig: leave for sig in (signal.SIGTERM, signal.SIGHUP)
                             if signal.getsignal(sig) is signal.SIG_DFL})


class _Runs:
    """workdir/runs.json: how many times a row's command ran and their wall time together, saved
    every RUNS_EVERY_S by a thread while the row runs, so that a run killed outright still
    counts up to its last save."""

    def __init__(self, workdir: pathlib.Path):
        self.path = workdir / RUNS_FILE
        try:
            before = json.loads(self.path.read_text())
            self.runs, self.before_s = int(before["runs"]), float(before["wall_s"])
        except (OSError, ValueError, KeyError, TypeError):   # none yet (or unreadable): a first run
            self.runs, self.before_s = 0, 0.0
        self.runs += 1
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._save_every, daemon=True)

    def _save(self, wall_s: float) -> None:
        atomic_write_text(self.path, json.dumps({"runs": self.runs, "wall_s": round(wall_s, 1)}))

    def _save_every(self) -> None:
        while not self._stop.wait(RUNS_EVERY_S):
            self._save(self.before_s + time.perf_counter() - self.t0)

    def __enter__(self) -> "_Runs":
        self._save(self.before_s)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.wall_s = self.before_s + time.perf_counter() - self.t0
        self._save(self.wall_s)


def _relay(proc: subprocess.Popen, name: str, log: TextIO, lines: list[str], echo: bool) -> int:
    """Copies the process's output to `log` and `lines` (and, with echo, stderr, while it can be
    written: a closed terminal's is not) until it ends; returns its exit status."""
    for line in proc.stdout:
        log.write(line)
        lines.append(line.rstrip("\n"))
        if echo:
            try:
                print(f"  {name}| {line}", end="", file=sys.stderr, flush=True)
            except OSError:
                echo = False
    return proc.wait()


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    """`signum` to the row's process group (the row and any decode processes it started)."""
    with contextlib.suppress(OSError):   # already gone
        os.killpg(proc.pid, signum)


def _kill(proc: subprocess.Popen) -> None:
    _signal_group(proc, signal.SIGKILL)


def _job_control(proc: subprocess.Popen) -> contextlib.AbstractContextManager:
    """Ctrl-Z (SIGTSTP) stops the row with this process and `fg` / `bg` (SIGCONT) continue it:
    in a session of its own the row gets no terminal signals, and would train on meanwhile. Both
    stop by SIGSTOP (a SIGTSTP to a process group of no terminal's job is discarded)."""
    def suspend(signum, frame):
        _signal_group(proc, signal.SIGSTOP)
        os.kill(os.getpid(), signal.SIGSTOP)
    if signal.getsignal(signal.SIGTSTP) is not signal.SIG_DFL:   # the caller's choice stands
        return contextlib.nullcontext()
    return _signal_handlers({signal.SIGTSTP: suspend,
                             signal.SIGCONT: lambda signum, frame: _signal_group(proc, signal.SIGCONT)})


def _stop(proc: subprocess.Popen, name: str, log: TextIO, lines: list[str], echo: bool) -> None:
    """Sends the row's process one SIGTERM and relays its output while it saves and stops, up to
    STOP_GRACE_S; then kills it. Meanwhile more SIGTERMs and SIGHUPs to this process are ignored
    (a `kill` of every process must not cut the row's checkpoint short); a second Ctrl-C kills
    the row at once."""
    if echo:
        with contextlib.suppress(OSError):
            print(f"waiting up to {_duration(STOP_GRACE_S)} for {name} to save its checkpoint and stop "
                  "(Ctrl-C again kills it)", file=sys.stderr, flush=True)
    timer = threading.Timer(STOP_GRACE_S, _kill, (proc,))
    timer.start()
    try:
        with _signal_handlers({signal.SIGTERM: signal.SIG_IGN, signal.SIGHUP: signal.SIG_IGN}):
            proc.terminate()
            _relay(proc, name, log, lines, echo)
    except BaseException:
        _kill(proc)
        proc.wait()
        raise
    finally:
        timer.cancel()


def _exit_error(code: int) -> str | None:
    """What a row's exit status says went wrong; None for 0."""
    if code < 0:
        return f"ended by {signal.Signals(-code).name}"
    return f"exit status {code}" if code else None


def _stopped(code: int) -> bool:
    """Whether the row's process ended by a stop signal: died of it (the binaries' way, gdl_jax.cli)
    or exited with 128 + its number (a shell's)."""
    return any(code in (-sig, 128 + sig) for sig in STOP_SIGNALS)


def run_row(row: Row, cmd: list[str], workdir: pathlib.Path, missing: list[str],
            env: dict[str, str] | None, echo: bool) -> tuple[dict, BaseException | None]:
    """Runs one row's command to the end (its output appended to workdir/log.txt and, with echo,
    printed to stderr); returns its report entry and, when this process was interrupted
    meanwhile, the interruption, for the caller to raise once the entry is saved. A row run
    again (resumed from its checkpoints, or finished and only re-evaluated) reports its wall time
    over all its runs. The row's process ends with this one. When this one is interrupted
    (Ctrl-C, `kill`), it stops the row (`_stop`: one SIGTERM, and a training loop saves the step
    it reached, gdl_jax.train.loop; the entry says "stopped"); the row runs in a session of
    its own, so that a terminal's Ctrl-C reaches it only that way, once (and Ctrl-Z through
    `_job_control`). When this one is killed outright the kernel kills the row's process (the
    binaries' `runtime.configure` asks for that when $GDL_JAX_EXIT_WITH_PARENT names their
    parent)."""
    workdir.mkdir(parents=True, exist_ok=True)
    entry = {"name": row.name, "ids": list(row.ids), "title": row.title, "book": row.book,
             "command": " ".join(["python"] + cmd[1:]), "workdir": str(workdir)}
    notes = [f"without the features of row(s) {', '.join(missing)}, failed or stopped"] if missing else []
    lines: list[str] = []
    log_path = workdir / "log.txt"
    again = log_path.is_file() and log_path.stat().st_size > 0
    with _Runs(workdir) as runs, open(log_path, "a") as log:
        if again:
            log.write(f"--- run {runs.runs} of this row, {datetime.datetime.now().isoformat(timespec='seconds')}\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True,
                                env={**os.environ, **(env or {}), PARENT_PID_ENV: str(os.getpid())})
        interruption = None
        try:
            with _job_control(proc):
                code = _relay(proc, row.name, log, lines, echo)
        except BaseException as e:   # Ctrl-C, kill: the row stops too (and resumes from its checkpoint)
            interruption = e
            if proc.poll() is None:
                _stop(proc, row.name, log, lines, echo)
            code = proc.returncode
    entry["wall_s"], entry["runs"] = runs.wall_s, runs.runs
    if runs.runs > 1:
        notes.append(f"wall time over {runs.runs} runs of this row, each going on from the last one's checkpoint")
    if notes:
        entry["note"] = "; ".join(notes)
    results_path = workdir / "results.json"
    results, error = {}, _exit_error(code)
    if not code:
        try:
            results = json.loads(results_path.read_text())
        except OSError:
            error = f"exit status 0 but no {results_path}"
        except ValueError as e:
            error = f"{results_path} is not JSON ({e})"
        if not isinstance(results, dict):
            results, error = {}, f"{results_path} is not a JSON object"
    entry["status"] = "stopped" if _stopped(code) else "failed" if error else "ok"
    if error:
        entry["error"] = error
        entry["log_tail"] = lines[-LOG_TAIL:]
    entry["ours"] = {f.label: lookup(results, f.key) for f in row.fields}
    entry["fmt"] = {f.label: f.fmt for f in row.fields}
    entry["metrics"] = {k: v for k, v in results.items()
                        if k in ("feature_metrics", "inception_metrics", "novelty", "test_bits_per_dim",
                                 "test_elbo_nats")}
    entry["figures"] = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*.png"))
    return entry, interruption


def _show(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return str(value)


def markdown(report: dict, out: pathlib.Path) -> str:
    """The report as markdown, figures embedded by paths relative to `out`."""
    ok = sum(r["status"] == "ok" for r in report["rows"])
    lines = [f"# gdl_jax reproduction report ({report['preset']} preset)", "",
             f"Started {report['started']} on {report['machine']}; {ok} of {len(report['rows'])} rows ok, "
             f"{_duration(report.get('wall_s', 0))} in this run.", "",
             "| rows | result | status | wall | book | ours |", "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        ours = "; ".join(f"{k} {_show(v, r['fmt'][k])}" for k, v in r["ours"].items())
        lines.append(f"| {', '.join(r['ids']) or '-'} | {r['title']} | {r['status']} | {_duration(r['wall_s'])} | "
                     f"{r['book']} | {ours} |")
    for r in report["rows"]:
        lines += ["", f"## {', '.join(r['ids']) or r['name']}: {r['title']}", "", f"`{r['command']}`", "",
                  f"Status: {r['status']}, {_duration(r['wall_s'])}." + (f" ({r['note']})" if "note" in r else "")]
        if r["status"] == "stopped":
            lines += ["", f"Stopped ({r['error']}): the same command goes on from its last checkpoint. "
                      "The end of its log:", "", "```", *r["log_tail"], "```"]
        elif r["status"] != "ok":
            lines += ["", f"{r['error']}; the end of its log:", "", "```", *r["log_tail"], "```"]
        for fm in filter(None, (r["metrics"].get("feature_metrics"), r["metrics"].get("inception_metrics"))):
            lines += ["", f"Sample quality in the features of {fm['features']}: Frechet distance "
                      f"{fm['frechet_distance']:.4g}, precision {fm['precision']:.3f}, recall {fm['recall']:.3f} "
                      f"(k = {fm['k']}; {fm['generated_images']} generated against {fm['real_images']} real images)."]
        nov = r["metrics"].get("novelty")
        if nov and nov.get("ratio") is not None:
            lines += ["", f"Novelty (rule 2): the samples' mean L1 distance to their nearest training image "
                      f"{nov['nearest_l1_samples']:.3f}, held-out images' {nov['nearest_l1_held_out']:.3f}: ratio "
                      f"{nov['ratio']:.2f}, copies {nov['copies']:.1%}."]
        if r["metrics"].get("test_bits_per_dim") is not None:
            lines += ["", f"ELBO {r['metrics']['test_elbo_nats']:.2f} nats, "
                      f"{r['metrics']['test_bits_per_dim']:.4f} bits/dim (held out)."]
        rel = pathlib.Path(os.path.relpath(r["workdir"], out))
        lines += ["", *[f"![{f}]({(rel / f).as_posix()})" for f in r["figures"]]]
    return "\n".join(lines) + "\n"


def write(report: dict, out: pathlib.Path) -> None:
    """report.json and report.md under `out`, each replaced atomically."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("report.json", json.dumps(report, indent=2) + "\n"), ("report.md", markdown(report, out))):
        atomic_write_text(out / name, text)
