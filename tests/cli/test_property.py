"""Property tests (hypothesis): ``expfam train``, ``evaluate``, ``assign``, ``sweep`` and ``compare`` with
generated flags, configuration files, sweep files and damaged run directories never end in a traceback.

For every generated input: the exit code is 0, 1 or 2; when it is not 0 the last line of stderr
starts with ``error:`` (and is not the catch-all "internal error", which would mean an input
slipped past the checks); an existing finished run is byte-identical afterwards unless the command
succeeded in replacing it with ``--overwrite``.

The commands run in-process (typer's CliRunner) on the tiny run of ``conftest.py``. Values that
change compiled shapes are drawn from refused values and the tiny run's own value, so the few
inputs that train reuse one compiled program; the run plots are replaced by a no-op to keep each
example short (plot failures are covered by ``test_reliability.py`` and the fault-injection test).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import expfam.experiment.runs.plots

pytestmark = pytest.mark.slow

#: Each example runs a command (some train): few examples, no deadline, and no shrinking (a failing
#: example is reported as generated; shrinking one that trains can take many minutes).
PROPERTY = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
)

#: Integers the numeric types cannot hold, or signs the validator refuses (refused on any machine).
REFUSED_INTEGERS = [-(2**63), -1, 0, 2**31, 2**32, 2**63, 10**20, -(10**20)]
#: Integers at the limits that are valid where they cost nothing (seeds: not part of the compiled program).
FREE_EDGES = [2**24 + 1, 2**31 - 1, 2**32 - 1]
#: Text that is not a number, or a number no float holds.
JUNK = ["", "nan", "inf", "-inf", "1e400", "abc", "é", "0x10", " ", "--", "1.5"]


def _text(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


#: flag → its values: the first is the tiny run's own (or free) value; edges the types cannot hold and
#: junk are added to every flag. Valid values that would train for long or compile new shapes are left
#: out (a huge --n-steps is a valid request for a long run, not bad input).
FLAGS: dict[str, list[object]] = {
    "--n-trials": [4, 2**24 + 1],
    "--n-latent": [3],
    "--n-clusters": [2, 1],
    "--batch-size": [8],
    "--n-steps": [4],
    "--log-every": [2],
    "--checkpoint-every": [1],
    "--n-mc-samples": [4],
    "--n-conj-samples": [8],
    "--seed": [0, 7, *FREE_EDGES],
    "--learning-rate": [3e-3, 1e300, math.inf, math.nan, -1e-3, 0.0],  # 1e300 diverges: a failed run, exit 1
    "--test-fraction": [0.2, 0.0, 1.0, math.nan],
    "--validation-fraction": [0.0, 1.0, -0.5],
    "--kl-warmup-steps": [2000],
    "--observable": ["binomial", "categorical", "bernoulli", "normal", "gamma"],
    "--block": ["hierarchical", "xy", "xy,zz", ",", "full,xy"],
    "--rho-mode": ["learned", "magic"],
}


def _flag_values(valid: list[object]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(valid), st.sampled_from(REFUSED_INTEGERS), st.sampled_from(JUNK)).map(_text)


@st.composite
def train_flags(draw: st.DrawFn) -> list[str]:
    keys = draw(st.lists(st.sampled_from(sorted(FLAGS)), max_size=4, unique=True))
    flags: list[str] = []
    for key in keys:
        flags += [key, draw(_flag_values(FLAGS[key]))]
    return flags


def _check(result, *, allowed=(0, 1, 2)) -> None:
    """Exit code in ``allowed``, no traceback, ``error: ...`` last on stderr when not 0."""
    assert result.exit_code in allowed, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output, result.output
    if result.exit_code != 0:
        lines = result.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("error: "), result.output
        assert "internal error" not in lines[-1], lines[-1]


@pytest.fixture()
def no_run_plots(monkeypatch):
    monkeypatch.setattr(expfam.experiment.runs.plots, "save_run_plots", lambda *args, **kwargs: [])


@PROPERTY
@example(flags=["--seed", "5"], target="finished", config_text=None)  # valid: replaces the old run (exit 0)
@example(flags=["--learning-rate", "1e300"], target="fresh", config_text=None)  # diverges: exit 1
@given(
    flags=train_flags(),
    target=st.sampled_from(["fresh", "finished"]),
    config_text=st.one_of(st.none(), st.binary(max_size=40), st.text(max_size=40)),
)
def test_train_with_generated_flags(
    runner, app, tiny_run_toml, finished_run, snapshot_of, no_run_plots, flags, target, config_text
):
    before = snapshot_of(finished_run)
    with tempfile.TemporaryDirectory() as folder:
        config = tiny_run_toml
        if config_text is not None:  # a generated file appended to the tiny run's: junk, non-UTF-8, duplicates
            config = Path(folder) / "run.toml"
            extra = config_text if isinstance(config_text, bytes) else config_text.encode("utf-8")
            config.write_bytes(tiny_run_toml.read_bytes() + b"\n" + extra)
        out = Path(folder) / "run"
        if target == "finished":
            shutil.copytree(finished_run, out)
        result = runner.invoke(app, ["train", "--config", str(config), "--out", str(out), "--overwrite", *flags])
        _check(result)
        if target == "finished" and result.exit_code == 2:  # refused: the old run is untouched
            assert snapshot_of(out) == before
        if result.exit_code == 0:
            assert json.loads((out / "run.json").read_text())["status"] == "completed"
    assert snapshot_of(finished_run) == before


# ----------------------------------------------------------------- damaged run directories
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from([*REFUSED_INTEGERS, *FREE_EDGES]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
CONFIG_KEYS = ["n_trials", "n_latent", "n_clusters", "block", "observable", "n_steps", "seed", "n_r2_samples", "data"]
TOML_VALUES = [*map(str, REFUSED_INTEGERS), "1e400", "nan", '"x"', "true", "[]", "{}", '"full"', '"poisson"', "-0.5"]


@st.composite
def damages(draw: st.DrawFn) -> tuple[str, str, object]:
    """``(file, kind, detail)``: which run file to damage and how."""
    file = draw(st.sampled_from(["config.toml", "params.npz", "metrics.json", "run.json", "model.json"]))
    kinds = ["truncate", "empty", "bytes", "latin1"]
    if file.endswith(".json"):
        kinds += ["json", "json"]
    if file == "config.toml":
        kinds += ["toml", "toml"]
    if file == "params.npz":
        kinds += ["drop", "reshape", "strings"]
    kind = draw(st.sampled_from(kinds))
    detail: object = None
    if kind == "truncate":
        detail = draw(st.floats(0.0, 0.99))
    elif kind == "bytes":
        detail = draw(st.binary(min_size=1, max_size=64))
    elif kind == "json":
        detail = draw(
            st.dictionaries(
                st.sampled_from(["status", "nmi", "n_latent", "blocks", "data_dim"]), JSON_VALUES, max_size=3
            )
            | JSON_VALUES
        )
    elif kind == "toml":
        detail = (draw(st.sampled_from(CONFIG_KEYS)), draw(st.sampled_from(TOML_VALUES)))
    elif kind in ("drop", "reshape"):
        detail = draw(st.integers(0, 100))
    return file, kind, detail


def damage(run: Path, file: str, kind: str, detail: object) -> None:
    """Apply one generated damage to ``run/file``."""
    path = run / file
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: int(len(data) * float(detail))])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "bytes":
        path.write_bytes(detail)
    elif kind == "latin1":
        path.write_bytes(data + "é".encode("latin-1"))
    elif kind == "json":
        if isinstance(detail, dict) and file in ("run.json", "model.json"):  # keep the rest of the file
            path.write_text(json.dumps({**json.loads(data), **detail}))
        else:
            path.write_text(json.dumps(detail))
    elif kind == "toml":
        key, value = detail
        lines = [f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in data.decode().splitlines()]
        path.write_text("\n".join(lines) + "\n")
    else:
        arrays = dict(np.load(path))
        name = sorted(arrays)[int(detail or 0) % len(arrays)]
        if kind == "drop":
            arrays.pop(name)
        elif kind == "reshape":
            arrays[name] = np.zeros((int(detail) % 5 + 1, 2))
        else:
            arrays[name] = np.array(["a", "b"])
        np.savez(path, **arrays)


@settings(PROPERTY, max_examples=40)  # no training here: more examples are cheap
@given(damage_spec=damages(), command=st.sampled_from(["evaluate", "assign", "compare", "resume"]))
def test_commands_on_a_damaged_run(
    runner, app, finished_run, tiny_npz, snapshot_of, no_run_plots, damage_spec, command
):
    before = snapshot_of(finished_run)
    with tempfile.TemporaryDirectory() as folder:
        run = shutil.copytree(finished_run, Path(folder) / "run")
        damage(run, *damage_spec)
        damaged = snapshot_of(run)
        args = {
            "evaluate": ["evaluate", str(run)],
            "assign": ["assign", str(run), "--data", str(tiny_npz), "--out", str(Path(folder) / "a.csv")],
            "compare": ["compare", str(finished_run), str(run)],
            "resume": ["train", "--resume", str(run)],
        }[command]
        result = runner.invoke(app, args)
        _check(result)
        if command != "resume":  # readers never write into a run
            assert snapshot_of(run) == damaged
    assert snapshot_of(finished_run) == before


# ----------------------------------------------------------------- sweep files
@st.composite
def sweep_files(draw: st.DrawFn) -> bytes:
    """Junk, non-UTF-8 bytes, or a tiny sweep whose grid holds generated values of one key."""
    kind = draw(st.sampled_from(["bytes", "text", "grid", "grid"]))
    if kind == "bytes":
        return draw(st.binary(max_size=80))
    if kind == "text":
        return draw(st.text(max_size=80)).encode("utf-8")
    key = draw(st.sampled_from(["n_latent", "n_clusters", "seed", "batch_size", "n_trials", "learning_rate", "nope"]))
    valid = {"n_latent": 3, "n_clusters": 2, "seed": 0, "batch_size": 8, "n_trials": 4, "learning_rate": 3e-3}
    own = str(valid.get(key, 1))
    values = draw(st.lists(st.one_of(st.just(own), st.sampled_from(TOML_VALUES)), min_size=0, max_size=2, unique=True))
    return f'[[phases]]\nname = "P"\ngrid = {{ {key} = [{", ".join(values)}] }}\n'.encode()


@PROPERTY
@given(text=sweep_files())
@example(text=b'[[phases]]\nname = "P"\ngrid = { seed = [3] }\n')  # a valid sweep: trains one trial
def test_sweep_with_generated_files(runner, app, tiny_run_toml, snapshot_of, finished_run, no_run_plots, text):
    before = snapshot_of(finished_run)
    base = tiny_run_toml.read_text()
    with tempfile.TemporaryDirectory() as folder:
        sweep = Path(folder) / "s.toml"
        sections = "".join(
            line.replace("[", "[base.", 1) + "\n" if line.startswith("[") else line + "\n" for line in base.splitlines()
        )
        sweep.write_bytes(text if not text.startswith(b"[[phases]]") else sections.encode() + text)
        result = runner.invoke(app, ["sweep", str(sweep), "--out", str(Path(folder) / "out"), "--no-run-plots"])
        _check(result)
    assert snapshot_of(finished_run) == before


# ----------------------------------------------------------------- one folder, many writers (issue 25)
#: What can happen to one run folder, in any order: a valid --overwrite, a refused one, a --resume,
#: a kill that leaves it "interrupted", and a second process holding the folder while a writer starts.
FOLDER_STEPS = ["overwrite", "refused overwrite", "resume", "killed", "held by another process"]
REFUSALS = [
    ["--devices", "99"],
    ["--elbo-estimator", "conjugation"],
    ["--cluster-init", "latent_kmeans", "--cluster-init-step", "0", "--n-clusters", "50"],
    ["--n-clusters", "1"],
]
HOLDER = (
    "import sys, time; from expfam.experiment.runs.lock import run_lock\n"
    "with run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(600)\n"
)


def _folder_state(run: Path, before: dict, snapshot_of, exit_code: int) -> None:
    """Completed (and byte-identical when the command was refused), absent, or clearly unfinished; never locked."""
    from expfam.experiment.runs.atomic import RunDirectoryError
    from expfam.experiment.runs.layout import is_finished, require_finished
    from expfam.experiment.runs.lock import lock_holder

    if not run.exists():
        return
    assert lock_holder(run) is None
    if exit_code == 2:
        assert snapshot_of(run) == before
    if is_finished(run):
        assert (run / "params.npz").is_file() and (run / "metrics.json").is_file()
        return
    with pytest.raises(RunDirectoryError, match="is not finished"):
        require_finished(run)


@settings(PROPERTY, max_examples=6)
@given(steps=st.lists(st.sampled_from(FOLDER_STEPS), min_size=1, max_size=3), refusal=st.sampled_from(REFUSALS))
@example(steps=["held by another process", "killed", "resume"], refusal=REFUSALS[0])
def test_overwrite_resume_and_a_second_process_on_one_folder(
    runner, app, tiny_run_toml, finished_run, snapshot_of, no_run_plots, steps, refusal
):
    import os
    import signal
    import subprocess
    import sys

    from expfam.experiment.runs.layout import read_info, write_info

    original = snapshot_of(finished_run)
    with tempfile.TemporaryDirectory() as folder:
        run = shutil.copytree(finished_run, Path(folder) / "run")
        train = ["train", "--config", str(tiny_run_toml), "--out", str(run), "--overwrite"]
        for step in steps:
            before = snapshot_of(run)
            if step == "killed":  # what a kill leaves: an unfinished status, the files as they were
                write_info(run, {**read_info(run), "status": "interrupted"})
                _folder_state(run, before, snapshot_of, 0)
                continue
            if step == "held by another process":
                holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
                try:
                    assert holder.stdout.readline().strip() == "locked"
                    before = snapshot_of(run)  # with the holder's .lock
                    for args in (train, ["train", "--resume", str(run)]):
                        result = runner.invoke(app, args)
                        _check(result, allowed=(2,))
                        assert f"in use by process {holder.pid}" in result.stderr.strip().splitlines()[-1]
                        assert snapshot_of(run) == before
                finally:
                    if holder.poll() is None:
                        os.kill(holder.pid, signal.SIGKILL)
                    holder.communicate()
                continue
            args = {
                "overwrite": [*train, "--seed", "3"],
                "refused overwrite": [*train, *refusal],
                "resume": ["train", "--resume", str(run)],
            }[step]
            result = runner.invoke(app, args)
            _check(result, allowed=(0, 2))
            if step == "refused overwrite":
                assert result.exit_code == 2
            if step == "overwrite":
                assert result.exit_code == 0
            _folder_state(run, before, snapshot_of, result.exit_code)
    assert snapshot_of(finished_run) == original  # the session's run is copied, never written
