"""The command-line launchers and tools: one `error:` line per user error with
exit code 2 (usage, config) or 1 (runtime, file system), nothing written, and
launchers that run from any folder.

Most cases call the launcher in-process (`launch.run(argv) -> exit code`);
a few run it as a user does, in a subprocess from another folder.
"""

import errno
import json
import os
import subprocess
import sys

import pytest
from absl import flags
from absl.testing import flagsaver

import train
from experiments import cli
from experiments import evaluate
from experiments import launch
from experiments import plot_curves
from experiments import report
from experiments.configs import adding as adding_config
from experiments.configs import base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADDING = launch.config_path("adding.py")

# One bad value per key of the base config (a new base key needs a row).
BAD_BASE_VALUES = {
    "task": "sorting",
    "seed": "-1",
    "data_seed": "-3",
    "cell": "lstn",
    "forget_bias": "nan",
    "gru_reset_after": "maybe",
    "rnn_activation": "sigmoid",
    "hidden_size": "0",
    "num_layers": "0",
    "learn_initial_state": "2",
    "optimizer": "adagrad",
    "learning_rate": "-1",
    "momentum": "1.5",
    "lr_schedule": "linear",
    "lr_decay_steps": "-1",
    "lr_decay_factor": "0",
    "lr_decay_start_step": "-1",
    "lr_decay_every_steps": "0",
    "warmup_steps": "-5",
    "grad_clip_norm": "-1",
    "batch_size": "0",
    "ema_decay": "1",
    "num_train_steps": "-1",
    "max_train_examples": "-1",
    "stop_when_solved": "perhaps",
    "eval_every_steps": "0",
    "log_every_steps": "-20",
    "eval_batch_size": "0",
    "num_eval_examples": "0",
    "max_checkpoints_to_keep": "0",
    "num_devices": "-1",
    "compute_dtype": "float16",
    "grad_accum_steps": "0",
    "best_metric": "valid/mse",
    "progress_bar": "sometimes",
    "replica_program": "pmap",
    "num_replicas": "0",
    "replica_sweep": "hidden_size=8,16",
}


class Outcome:
  """A launcher run: exit code and stderr lines."""

  def __init__(self, code: int, err: str):
    self.code = code
    self.lines = err.splitlines()

  @property
  def line(self) -> str:
    assert len(self.lines) == 1, self.lines
    return self.lines[0]


@pytest.fixture
def no_training(monkeypatch):
  """Fails the test at once if a run gets past validation (tasks.build comes
  right after it), instead of training for minutes."""
  def refuse(config):
    raise AssertionError(f"config accepted: {config}")
  monkeypatch.setattr(train.tasks_lib, "build", refuse)


@pytest.fixture
def launch_adding(capsys):
  def run(*args, after_training=None):
    capsys.readouterr()
    code = launch.run(["adding", *args], ADDING, after_training)
    return Outcome(code, capsys.readouterr().err)
  return run


def snapshot(path):
  """Names, sizes and mtimes under path; None if it does not exist."""
  if not os.path.exists(path):
    return None
  return sorted((os.path.relpath(os.path.join(d, f), path),
                 os.stat(os.path.join(d, f)).st_size,
                 os.stat(os.path.join(d, f)).st_mtime_ns)
                for d, _, files in os.walk(path) for f in files)


def test_the_table_covers_every_base_key():
  assert set(BAD_BASE_VALUES) == set(base.get_base_config().keys())


@pytest.mark.parametrize("key", sorted(BAD_BASE_VALUES))
def test_bad_base_value_is_one_line_exit_2_nothing_written(
    key, tmp_path, launch_adding, no_training):
  workdir = tmp_path / "run"
  outcome = launch_adding(f"--workdir={workdir}",
                          f"--config.{key}={BAD_BASE_VALUES[key]}")
  assert outcome.code == cli.EXIT_USAGE
  assert outcome.line.startswith("error: ") and key in outcome.line
  assert not workdir.exists()


def test_bad_value_leaves_an_existing_workdir_unchanged(tmp_path, launch_adding,
                                                        no_training):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text("{}")
  before = snapshot(workdir)
  outcome = launch_adding(f"--workdir={workdir}", "--config.eval_batch_size=-4")
  assert outcome.code == cli.EXIT_USAGE
  assert outcome.line == "error: eval_batch_size: expected an integer >= 1, got -4"
  assert snapshot(workdir) == before


@pytest.mark.parametrize("args,line", [
    (["--config.eval_every_steps=30"],
     "error: eval_every_steps (30) must be a multiple of log_every_steps (20)"),
    (["--config.hiden_size=3"],
     "error: --config.hiden_size: unknown config key 'hiden_size'. Did you mean "
     "hidden_size?"),
    (["--config.hidden_size=abc"],
     "error: --config.hidden_size=abc: expected an integer >= 1"),
    (["--config.seq_len=1"],
     "error: seq_len: expected an integer >= 2, got 1 (the adding problem marks "
     "two steps)"),
    (["--config=experiments/configs/nope.py"],
     "error: --config: no such config file: experiments/configs/nope.py"),
    (["--config=experiments/configs/adding.py:many"],
     f"error: --config={ADDING}:many: invalid literal for int() with base 10: "
     f"'many'"),
    (["--allow_config_change=hiden_size"],
     "error: --allow_config_change: unknown config key 'hiden_size'. Did you "
     "mean hidden_size?"),
    (["--bogus=1"], "error: Unknown command line flag 'bogus'"),
    (["extra"], "error: unexpected arguments: extra"),
])
def test_usage_errors(args, line, tmp_path, launch_adding, no_training, monkeypatch):
  monkeypatch.chdir(tmp_path)  # relative --config files resolve from the repository
  outcome = launch_adding(f"--workdir={tmp_path / 'run'}", *args)
  assert (outcome.code, outcome.line) == (cli.EXIT_USAGE, line)
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("workdir,line", [
    (None, "error: --workdir: required"),
    ("", "error: --workdir: empty; give a directory (--workdir=. for the current one)"),
    (" ", "error: --workdir: empty; give a directory (--workdir=. for the current one)"),
])
def test_missing_or_empty_workdir_is_refused(workdir, line, launch_adding, no_training):
  args = [] if workdir is None else [f"--workdir={workdir}"]
  assert (lambda o: (o.code, o.line))(launch_adding(*args)) == (cli.EXIT_USAGE, line)


def test_workdir_that_is_a_file(tmp_path, launch_adding, no_training):
  path = tmp_path / "file"
  path.write_text("x")
  for workdir in (path, path / "below"):
    outcome = launch_adding(f"--workdir={workdir}")
    assert outcome.code == cli.EXIT_RUNTIME
    assert outcome.line.startswith(f"error: {path}: not a directory")
  assert path.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_workdir(tmp_path, launch_adding, no_training):
  tmp_path.chmod(0o500)
  try:
    outcome = launch_adding(f"--workdir={tmp_path / 'run'}")
  finally:
    tmp_path.chmod(0o700)
  assert outcome.code == cli.EXIT_RUNTIME
  assert outcome.line.startswith(f"error: {tmp_path}: cannot write here")


def _raising(error):
  def train_and_evaluate(config, workdir, **options):
    raise error
  return train_and_evaluate


RUNTIME_ERRORS = [
    (train.CheckpointError("checkpoint 10 in /w/checkpoints is damaged"),
     "error: checkpoint 10 in /w/checkpoints is damaged"),
    (train.NonFiniteLossError("loss is nan at step 14"), "error: loss is nan at step 14"),
    (OSError(errno.EROFS, "Read-only file system", "/w/config.json"),
     "error: /w/config.json: Read-only file system"),
    (OSError(errno.ENOSPC, "No space left on device", "/w/checkpoints/20"),
     "error: /w/checkpoints/20: No space left on device"),
    (OSError(errno.ENOSPC, "No space left on device"),
     "error: No space left on device"),
    (PermissionError(errno.EACCES, "Permission denied", "/w/metrics.jsonl"),
     "error: /w/metrics.jsonl: Permission denied"),
    (json.JSONDecodeError("Expecting value", "", 0),
     "error: Expecting value: line 1 column 1 (char 0)"),
]
if hasattr(train, "WorkdirInUseError"):
  RUNTIME_ERRORS.append((train.WorkdirInUseError("/w is in use by process 12"),
                         "error: /w is in use by process 12"))


@pytest.mark.parametrize("error,line", RUNTIME_ERRORS,
                         ids=[type(e).__name__ for e, _ in RUNTIME_ERRORS])
def test_runtime_errors_are_one_line_exit_1(error, line, tmp_path, launch_adding,
                                            monkeypatch):
  monkeypatch.setattr(train, "train_and_evaluate", _raising(error))
  outcome = launch_adding(f"--workdir={tmp_path / 'run'}")
  assert (outcome.code, outcome.line) == (cli.EXIT_RUNTIME, line)


def test_interrupt_and_bugs(tmp_path, launch_adding, monkeypatch):
  monkeypatch.setattr(train, "train_and_evaluate", _raising(KeyboardInterrupt()))
  outcome = launch_adding(f"--workdir={tmp_path / 'run'}")
  assert (outcome.code, outcome.line) == (cli.EXIT_INTERRUPTED, "error: interrupted")
  if hasattr(train, "RunInterrupted"):
    monkeypatch.setattr(train, "train_and_evaluate", _raising(
        train.RunInterrupted("interrupted at step 7; rerun the same command")))
    outcome = launch_adding(f"--workdir={tmp_path / 'run'}")
    assert (outcome.code, outcome.line) == (
        cli.EXIT_INTERRUPTED, "error: interrupted at step 7; rerun the same command")
  monkeypatch.setattr(train, "train_and_evaluate", _raising(KeyError("a bug")))
  with pytest.raises(KeyError):    # a bug keeps its traceback
    launch_adding(f"--workdir={tmp_path / 'run'}")


def test_debug_shows_the_traceback(tmp_path, launch_adding, no_training):
  with pytest.raises(ValueError, match="hidden_size: expected an integer >= 1"):
    launch_adding(f"--workdir={tmp_path / 'run'}", "--config.hidden_size=0",
                  "--debug")
  with pytest.raises(cli.UsageError, match="--workdir: empty"):
    launch_adding("--workdir=", "--debug")


def test_from_another_folder_with_file_arg_and_allowed_keys(tmp_path, monkeypatch,
                                                            launch_adding):
  """The default config and a documented relative --config FILE:ARG are found
  from any folder; --allow_config_change reaches train_and_evaluate."""
  calls = []

  def fake_train(config, workdir, allow_config_change=None):
    options = {} if allow_config_change is None else {
        "allow_config_change": allow_config_change}
    calls.append((config, workdir, options))
    return {"step": 0}
  monkeypatch.setattr(train, "train_and_evaluate", fake_train)
  monkeypatch.chdir(tmp_path)
  assert launch_adding("--workdir=run").code == cli.EXIT_OK
  assert calls[-1][0].seq_len == 100 and calls[-1][1] == "run"
  assert calls[-1][2] == {}
  outcome = launch_adding("--workdir=run", "--config=experiments/configs/adding.py:50",
                          "--config.hidden_size=16",
                          "--allow_config_change=num_eval_examples,eval_batch_size")
  assert outcome.code == cli.EXIT_OK, outcome.lines
  config, _, options = calls[-1]
  assert (config.seq_len, config.hidden_size) == (50, 16)
  assert options == {"allow_config_change": ["num_eval_examples", "eval_batch_size"]}


def test_after_training_errors_are_reported(tmp_path, monkeypatch, launch_adding):
  monkeypatch.setattr(train, "train_and_evaluate", lambda config, workdir: {})

  def decode(workdir):
    raise FileNotFoundError(errno.ENOENT, "No such file or directory",
                            os.path.join(workdir, "subwords.model"))
  outcome = launch_adding(f"--workdir={tmp_path}", after_training=decode)
  assert outcome.code == cli.EXIT_RUNTIME
  assert outcome.line == f"error: {tmp_path}/subwords.model: No such file or directory"


def test_help_exits_0(capsys):
  assert launch.run(["adding", "--help"], ADDING) == cli.EXIT_OK
  assert "--workdir=DIR" in capsys.readouterr().out


# ----------------------------------------------------------------------------
# The tools: report, plot_curves, evaluate.

def write_run(workdir, summary=None, config=None):
  os.makedirs(workdir, exist_ok=True)
  summary = summary if summary is not None else {
      "metrics": {"test": {"mse": 0.001, "count": 2560}}, "wall_time_s": 120.0,
      "solved": True, "examples_seen": 24000, "hardware": "cpu"}
  config = config if config is not None else {"task": "adding", "cell": "lstm",
                                              "seq_len": 100}
  for name, value in (("summary.json", summary), ("config.json", config)):
    with open(os.path.join(workdir, name), "w") as f:
      f.write(value if isinstance(value, str) else json.dumps(value))


def run_report(capsys, *args):
  capsys.readouterr()
  code = report.main(["report", *args])
  out, err = capsys.readouterr()
  return code, out, err.splitlines()


def test_report_row(tmp_path, capsys):
  write_run(tmp_path / "a")
  code, out, err = run_report(capsys, str(tmp_path / "a"))
  assert code == 0 and not err
  assert "| adding | lstm | 100 | yes | 24,000 | mse 0.001, count 2560 | 2.0 min" in out


def test_report_row_of_replicas_shows_mean_and_sd(tmp_path, capsys):
  replicas = [{"replica": r, "seed": r, "solved": r < 2, "examples_seen": n,
               "metrics": {"test": {"mse": m}}}
              for r, (n, m) in enumerate([(20_000, 0.001), (30_000, 0.002), (40_000, 0.003)])]
  write_run(tmp_path / "a", summary={
      "metrics": {"test": {"mse": 0.002}}, "metrics_sd": {"test": {"mse": 0.001}},
      "replicas": replicas, "num_replicas": 3, "solved": False, "examples_seen": 30_000,
      "wall_time_s": 60.0, "hardware": "cpu"})
  code, out, _ = run_report(capsys, str(tmp_path / "a"))
  assert code == 0
  assert "| 2/3 | 30,000 ± 10,000 (3 seeds) | mse 0.002 ± 0.001 | 1.0 min | cpu |" in out


@pytest.mark.parametrize("summary,config,code,message", [
    ("{not json", None, 1, "summary.json: not valid JSON (Expecting property name "
     "enclosed in double quotes at line 1 column 2); the file is damaged"),
    (None, "", 1, "config.json: not valid JSON (Expecting value at line 1 column 1)"),
    ({"metrics": {}}, None, 1, "summary.json: no 'metrics/test' entry"),
    ({"metrics": {"test": {}}, "wall_time_s": "long"}, None, 1,
     "summary.json: 'wall_time_s' is 'long'"),
    (None, [1, 2], 1, "config.json: expected a JSON object, got list"),
])
def test_report_damaged_files(summary, config, code, message, tmp_path, capsys):
  write_run(tmp_path / "a", summary, config)
  got, out, err = run_report(capsys, str(tmp_path / "a"))
  assert got == code and not out
  assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'a'}/")
  assert message in err[0], err[0]


def test_report_usage_and_missing_files(tmp_path, capsys):
  assert run_report(capsys)[::2] == (2, ["error: give at least one WORKDIR"])
  code, _, err = run_report(capsys, "--verbose", str(tmp_path))
  assert code == 2 and err[0].startswith("error: unknown flag --verbose")
  (tmp_path / "a").mkdir()
  assert run_report(capsys, str(tmp_path / "a"))[::2] == (1, [
      f"error: {tmp_path / 'a'}/summary.json: No such file or directory (the run "
      f"has not finished)"])
  assert run_report(capsys, str(tmp_path / "b"))[::2] == (1, [
      f"error: {tmp_path / 'b'}/summary.json: No such file or directory"])
  with pytest.raises(FileNotFoundError):
    report.main(["report", "--debug", str(tmp_path / "b")])


def test_plot_curves_names_the_damaged_line(tmp_path):
  (tmp_path / "metrics.jsonl").write_text(
      '{"step": 10, "split": "valid", "mse": 0.1}\n{"step": 20, "split": \n')
  with pytest.raises(cli.CorruptFileError,
                     match=r"metrics.jsonl line 2: not valid JSON .*damaged"):
    plot_curves.read_curve(str(tmp_path), "valid", "mse")
  (tmp_path / "metrics.jsonl").write_text('{"mse": 0.1}\n')
  with pytest.raises(cli.CorruptFileError, match="record 1: no 'split' or 'step'"):
    plot_curves.read_curve(str(tmp_path), "valid", "mse")
  (tmp_path / "metrics.jsonl").write_bytes(b"\xff\xfe\n")
  with pytest.raises(cli.CorruptFileError, match="not UTF-8 text"):
    plot_curves.read_curve(str(tmp_path), "valid", "mse")


def run_tool(main, argv, capsys, **flag_values):
  """A tool's main under app.run's parsed flags -> (exit code, stderr lines)."""
  capsys.readouterr()
  with flagsaver.flagsaver(**flag_values):
    with pytest.raises(SystemExit) as exit_:
      main(argv)
  return exit_.value.code, capsys.readouterr().err.splitlines()


def test_plot_curves_errors(tmp_path, capsys):
  assert run_tool(plot_curves.main, ["plot_curves"], capsys) == (
      2, ["error: give at least one LABEL=WORKDIR"])
  assert run_tool(plot_curves.main, ["plot_curves", "lstm="], capsys) == (
      2, ["error: expected LABEL=WORKDIR, got 'lstm='"])
  assert run_tool(plot_curves.main, ["plot_curves", f"a={tmp_path}"], capsys) == (
      1, [f"error: {tmp_path}/metrics.jsonl: No such file or directory"])
  (tmp_path / "metrics.jsonl").write_text('{"step": 10, "split": "valid", "mse": 1}\n')
  assert run_tool(plot_curves.main, ["plot_curves", f"a={tmp_path}"], capsys,
                  metric="bpc") == (
      2, [f"error: {tmp_path}/metrics.jsonl: no 'valid' records with metric 'bpc'"])
  assert run_tool(plot_curves.main, ["plot_curves", f"a={tmp_path}"], capsys,
                  out="") == (2, ["error: --out: empty; give the PNG to write"])


def test_evaluate_errors(tmp_path, capsys, monkeypatch):
  assert run_tool(evaluate.main, ["evaluate"], capsys, workdir="") == (
      2, ["error: --workdir: empty; give a directory (--workdir=. for the current one)"])
  assert run_tool(evaluate.main, ["evaluate"], capsys, workdir=str(tmp_path)) == (
      2, [f"error: workdir: {tmp_path} has no config.json (is it a training "
          f"workdir?)"])
  (tmp_path / "config.json").write_text('{"task": "adding",')
  code, err = run_tool(evaluate.main, ["evaluate"], capsys, workdir=str(tmp_path))
  assert code == 1 and len(err) == 1
  assert err[0].startswith(f"error: {tmp_path}/config.json: not valid JSON")
  assert run_tool(evaluate.main, ["evaluate", "x"], capsys, workdir=str(tmp_path)) == (
      2, ["error: unexpected arguments: x"])
  assert run_tool(evaluate.main, ["evaluate"], capsys, workdir=str(tmp_path),
                  set=["eval_batch_size"]) == (
      2, ["error: --set: expected KEY=VALUE, got 'eval_batch_size'"])
  with flagsaver.flagsaver(workdir=str(tmp_path), debug=True):
    with pytest.raises(cli.CorruptFileError):
      evaluate.main(["evaluate"])
  config = adding_config.get_config("12")
  config.hidden_size, config.num_eval_examples = 4, 8
  (tmp_path / "config.json").write_text(config.to_json())
  assert run_tool(evaluate.main, ["evaluate"], capsys, workdir=str(tmp_path),
                  set=["eval_batch_size=0"]) == (
      2, ["error: eval_batch_size: expected an integer >= 1, got 0"])
  evaluated = []
  monkeypatch.setattr(evaluate, "evaluate", lambda *args: evaluated.append(args))
  with flagsaver.flagsaver(workdir=str(tmp_path), set=["eval_batch_size=8"]):
    evaluate.main(["evaluate"])
  assert evaluated == [(str(tmp_path), {"eval_batch_size": 8})]


def test_cli_classifies_errors():
  assert cli.exit_code(cli.UsageError("x")) == 2
  assert cli.exit_code(flags.IllegalFlagValueError("x")) == 2
  assert cli.exit_code(cli.CorruptFileError("x")) == 1
  assert cli.exit_code(IsADirectoryError(errno.EISDIR, "Is a directory", "/w")) == 1
  assert cli.exit_code(NotADirectoryError(errno.ENOTDIR, "Not a directory", "/w")) == 1
  assert cli.exit_code(FileExistsError(errno.EEXIST, "File exists", "/w")) == 1
  assert cli.exit_code(OSError(errno.EIO, "Input/output error")) is None
  assert cli.exit_code(RuntimeError("a bug")) is None
  assert cli.exit_code(SystemExit(0)) is None
  assert cli.message(OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b")) == (
      "/a -> /b: Invalid cross-device link")
  assert cli.message(ValueError("two\n  lines")) == "two lines"
  assert cli.debug_requested(["x", "--debug"]) and cli.debug_requested(["x", "--debug=true"])
  assert not cli.debug_requested(["x", "--nodebug"])


# ----------------------------------------------------------------------------
# As a user runs them: from another folder, in a subprocess.

def run_module(module, *args, cwd):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


def test_unknown_key_from_another_folder_is_one_line(tmp_path):
  result = run_module("experiments.adding", "--workdir=run", "--config.hiden_size=3",
                      cwd=tmp_path)
  assert result.returncode == 2
  assert result.stderr.splitlines() == [
      "error: --config.hiden_size: unknown config key 'hiden_size'. Did you mean "
      "hidden_size?"]
  assert not (tmp_path / "run").exists()


def test_trains_from_another_folder(tmp_path):
  result = run_module(
      "experiments.adding", "--workdir=run", "--config=experiments/configs/adding.py:12",
      "--config.hidden_size=8", "--config.batch_size=4", "--config.max_train_examples=0",
      "--config.num_train_steps=10", "--config.eval_every_steps=10",
      "--config.log_every_steps=5", "--config.num_eval_examples=8",
      "--config.eval_batch_size=8", "--config.progress_bar=False", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-2000:]
  assert json.loads((tmp_path / "run" / "config.json").read_text())["seq_len"] == 12
  assert json.loads((tmp_path / "run" / "summary.json").read_text())["step"] == 10
  assert '"step": 10' in result.stdout


def test_tool_flag_errors_are_one_line(tmp_path):
  result = run_module("experiments.plot_curves", "--log=maybe", "a=b", cwd=tmp_path)
  assert result.returncode == 2
  assert result.stderr.splitlines() == ["error: --log=maybe: expected true or false"]


def test_a_reader_that_stops_early_is_not_an_error():
  """`tool | head -1`: the closed pipe ends the tool quietly, exit 0."""
  script = ("from experiments import cli\n"
            "with cli.user_errors_exit():\n"
            "  for i in range(200_000):\n"
            "    print('line', i)\n")
  tool = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  first = tool.stdout.readline()
  tool.stdout.close()
  _, err = tool.communicate(timeout=60)
  assert first == b"line 0\n"
  assert tool.returncode == 0 and err == b""


def test_process_flags_need_multihost(tmp_path, launch_adding, no_training):
  workdir = tmp_path / "run"
  outcome = launch_adding(f"--workdir={workdir}", "--num_processes=2",
                          "--process_id=1")
  assert outcome.code == cli.EXIT_USAGE
  assert outcome.line == ("error: --num_processes, --process_id: only with "
                          "--multihost")
  assert not workdir.exists()
