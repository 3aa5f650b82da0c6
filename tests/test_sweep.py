"""experiments/sweep.py and `experiments.report --sweep`: a grid sweep runs and
is reported, two worker processes and an sqlite storage share one study, a
killed sweep resumes its interrupted trial in the same workdir, every bad sweep
file is one `error:` line before any training, and pruning stops a bad trial.

Trials are the adding problem at T=10 with 4 hidden units for 20 steps.
"""

import contextlib
import json
import os

import optuna
import pytest
from optuna.trial import TrialState

import train
from experiments import cli
from experiments import report
from experiments import sweep

TINY = {"hidden_size": 4, "num_train_steps": 20, "max_train_examples": 0,
        "eval_every_steps": 10, "log_every_steps": 10, "num_eval_examples": 64,
        "eval_batch_size": 64}


def write_sweep(path, **names):
  """A sweep file: CONFIG adding.py:10, the tiny OVERRIDES, then `names`
  (values as Python source text)."""
  fields = {"CONFIG": '"adding.py:10"', "OVERRIDES": repr(TINY),
            "SPACE": '{"learning_rate": sweep.choice([0.01, 0.1])}',
            "SAMPLER": '"grid"', "METRIC": '"valid/mse:min"', "PRUNER": '"none"',
            **names}
  lines = ["from experiments import sweep", ""]
  lines += [f"{name} = {value}" for name, value in fields.items() if value is not None]
  path.write_text("\n".join(lines) + "\n")
  return str(path)


def run_sweep(capsys, sweep_file, workdir, *flags):
  capsys.readouterr()
  code = sweep.main(["sweep", f"--sweep={sweep_file}", f"--workdir={workdir}", *flags])
  out, err = capsys.readouterr()
  return code, out, err.splitlines()


def load(workdir, storage=None):
  record = json.loads((workdir / "sweep.json").read_text())
  return optuna.load_study(study_name=record["study_name"],
                           storage=sweep.open_storage(str(workdir), storage))


def metric_steps(workdir, split="valid"):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r["step"] for r in map(json.loads, f) if r["split"] == split]


def test_grid_sweep_runs_every_point_and_is_reported(tmp_path, capsys):
  sweep_file = write_sweep(
      tmp_path / "grid.py",
      SPACE='{"learning_rate": sweep.choice([0.003, 0.03]), '
            '"cell": sweep.choice(["lstm", "gru"])}')
  workdir = tmp_path / "sweep"
  code, out, err = run_sweep(capsys, sweep_file, workdir)
  assert code == 0, err
  study = load(workdir)
  trials = study.get_trials()
  assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
  assert sorted((t.params["learning_rate"], t.params["cell"]) for t in trials) == [
      (0.003, "gru"), (0.003, "lstm"), (0.03, "gru"), (0.03, "lstm")]
  for trial in trials:
    trial_dir = workdir / f"trial_{trial.number:03d}"
    assert trial.user_attrs["workdir"] == str(trial_dir)
    summary = json.loads((trial_dir / "summary.json").read_text())
    config = json.loads((trial_dir / "config.json").read_text())
    assert summary["step"] == 20 and config["progress_bar"] is False
    assert config["learning_rate"] == trial.params["learning_rate"]
    assert trial.value == summary["metrics"]["valid"]["mse"]
    assert list(trial.intermediate_values) == [10, 20]
  best = min(trials, key=lambda t: t.value)
  assert f"best: trial {best.number}, valid/mse = {best.value:.5g}" in out

  # The same command again finds the study complete and adds nothing.
  code, out, _ = run_sweep(capsys, sweep_file, workdir)
  assert code == 0 and "4 of 4 trials" in out and len(load(workdir).trials) == 4

  capsys.readouterr()
  assert report.main(["report", f"--sweep={workdir}"]) == 0
  out = capsys.readouterr().out
  rows = [line for line in out.splitlines() if line.startswith("| ") and
          "COMPLETE" in line]
  assert len(rows) == 4
  assert out.splitlines()[0].startswith(
      "| trial | state | learning_rate | cell | valid/mse | steps |")
  assert f"| {best.value:.4g} | 20 |" in out
  assert f"Best: trial {best.number} ({workdir}/trial_{best.number:03d})" in out
  for name in ("metric_vs_learning_rate.png", "metric_vs_cell.png", "curves.png"):
    png = workdir / "report" / name
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_two_workers_share_the_study_exactly(tmp_path, capsys):
  sweep_file = write_sweep(
      tmp_path / "random.py", SAMPLER='"random"', NUM_TRIALS="3", NUM_WORKERS="2",
      SPACE='{"learning_rate": sweep.log_uniform(1e-3, 1e-1)}')
  workdir = tmp_path / "sweep"
  code, out, err = run_sweep(capsys, sweep_file, workdir)
  assert code == 0, err
  assert "2 worker(s)" in out
  trials = load(workdir).get_trials()
  assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
  assert sorted(os.listdir(workdir)) == [
      "locks", "logs", "study.journal", "sweep.json", "trial_000", "trial_001",
      "trial_002"]
  assert len({t.params["learning_rate"] for t in trials}) == 3
  assert all(1e-3 <= t.params["learning_rate"] <= 1e-1 for t in trials)


def test_sqlite_storage(tmp_path, capsys):
  sweep_file = write_sweep(tmp_path / "s.py", SAMPLER='"tpe"', NUM_TRIALS="2",
                           SPACE='{"batch_size": sweep.int_range(4, 16)}',
                           OVERRIDES=repr({**TINY, "best_metric": "valid/mse:min"}))
  workdir = tmp_path / "sweep"
  url = f"sqlite:///{workdir / 'study.db'}"  # in DIR, which does not exist yet
  code, _, err = run_sweep(capsys, sweep_file, workdir, f"--storage={url}")
  assert code == 0, err
  assert json.loads((workdir / "sweep.json").read_text())["storage"] == url
  trials = load(workdir, url).get_trials()
  assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
  for trial in trials:  # best_metric is METRIC: the objective is the best value
    summary = json.loads((workdir / f"trial_{trial.number:03d}" / "summary.json")
                         .read_text())
    assert trial.value == summary["best"]["value"]
    assert config_value(workdir, trial.number, "batch_size") == trial.params[
        "batch_size"]
  capsys.readouterr()
  assert report.main(["report", f"--sweep={workdir}"]) == 0
  assert capsys.readouterr().out.count("| COMPLETE |") == 2
  # The same DIR with the default journal storage is refused.
  code, _, err = run_sweep(capsys, sweep_file, workdir)
  assert code == 2 and len(err) == 1
  assert err[0].startswith(f"error: --storage: {workdir} keeps its study in {url}")


def config_value(workdir, number, key):
  return json.loads((workdir / f"trial_{number:03d}" / "config.json").read_text())[key]


class Killed(BaseException):
  """Stands for SIGKILL: nothing catches it, so the trial stays RUNNING."""


def test_killed_sweep_resumes_the_interrupted_trial_in_its_workdir(
    tmp_path, capsys, monkeypatch):
  sweep_file = write_sweep(
      tmp_path / "k.py",
      SPACE='{"learning_rate": sweep.choice([0.003, 0.01, 0.03])}')
  workdir = tmp_path / "sweep"
  real_train = train.train_and_evaluate

  def killed_at_step_10_of_trial_1(config, trial_dir, *, on_evaluation, **kwargs):
    def evaluation(step, results):
      on_evaluation(step, results)
      if trial_dir.endswith("trial_001") and step == 10:
        raise Killed()
    return real_train(config, trial_dir, on_evaluation=evaluation, **kwargs)

  monkeypatch.setattr(train, "train_and_evaluate", killed_at_step_10_of_trial_1)
  with pytest.raises(Killed):
    run_sweep(capsys, sweep_file, workdir)
  monkeypatch.setattr(train, "train_and_evaluate", real_train)
  study = load(workdir)
  assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE,
                                                   TrialState.RUNNING]
  first = (workdir / "trial_000" / "summary.json").read_text()
  assert metric_steps(workdir / "trial_001") == [10]
  assert not (workdir / "trial_001" / "summary.json").exists()

  code, out, err = run_sweep(capsys, sweep_file, workdir)
  assert code == 0, err
  assert "1 of 3 trials" in out and "retrying interrupted trials [1]" in out
  trials = load(workdir).get_trials()
  states = [(t.number, t.state, t.user_attrs.get("retry_of")) for t in trials]
  assert states == [(0, TrialState.COMPLETE, None), (1, TrialState.FAIL, None),
                    (2, TrialState.COMPLETE, 1), (3, TrialState.COMPLETE, None)]
  assert trials[1].user_attrs["interrupted"] is True
  assert trials[2].user_attrs["workdir"] == str(workdir / "trial_001")
  assert trials[2].params == trials[1].params
  assert {t.params["learning_rate"] for t in trials} == {0.003, 0.01, 0.03}
  # Trial 0 was kept as it was; trial 1's run resumed from its checkpoint.
  assert (workdir / "trial_000" / "summary.json").read_text() == first
  assert metric_steps(workdir / "trial_001") == [10, 20]
  assert "Resumed from checkpoint 10" in (workdir / "logs" / "trial_002.log").read_text()
  assert not (workdir / "trial_002").exists()
  assert sweep.finished(trials) == 3

  capsys.readouterr()
  assert report.main(["report", f"--sweep={workdir}"]) == 0
  assert "| 1 | interrupted, retried as 2 |" in capsys.readouterr().out


def test_ctrl_c_marks_the_trial_interrupted_and_a_rerun_resumes_it(
    tmp_path, capsys, monkeypatch):
  sweep_file = write_sweep(tmp_path / "c.py")
  workdir = tmp_path / "sweep"
  real_train = train.train_and_evaluate

  def ctrl_c_at_step_10(config, trial_dir, *, on_evaluation, **kwargs):
    def evaluation(step, results):
      on_evaluation(step, results)
      raise KeyboardInterrupt
    return real_train(config, trial_dir, on_evaluation=evaluation, **kwargs)

  monkeypatch.setattr(train, "train_and_evaluate", ctrl_c_at_step_10)
  code, _, err = run_sweep(capsys, sweep_file, workdir)
  assert code == cli.EXIT_INTERRUPTED and len(err) == 1
  assert err[0].startswith("error: interrupted at step 10; rerun the same command")
  monkeypatch.setattr(train, "train_and_evaluate", real_train)
  trial = load(workdir).trials[0]
  assert trial.state == TrialState.FAIL and trial.user_attrs["interrupted"] is True

  code, out, err = run_sweep(capsys, sweep_file, workdir)
  assert code == 0, err
  assert "0 of 2 trials" in out and "retrying interrupted trials [0]" in out
  trials = load(workdir).get_trials()
  assert [(t.state, t.user_attrs.get("retry_of")) for t in trials] == [
      (TrialState.FAIL, None), (TrialState.COMPLETE, 0), (TrialState.COMPLETE, None)]
  assert trials[1].user_attrs["workdir"] == str(workdir / "trial_000")
  assert metric_steps(workdir / "trial_000") == [10, 20]
  assert sweep.finished(trials) == 2


BAD_FILES = [
    ({"NUM_TRIAL": "3"}, "unknown name NUM_TRIAL. Did you mean NUM_TRIALS?"),
    ({"METRIC": None}, "METRIC is required"),
    ({"CONFIG": '"addin.py:10"'}, "CONFIG 'addin.py:10': no such config file"),
    ({"SPACE": '{"hiden_size": sweep.choice([4, 8])}'},
     "SPACE: unknown config key 'hiden_size'. Did you mean hidden_size?"),
    ({"OVERRIDES": '{"num_train_step": 20}'},
     "OVERRIDES: unknown config key 'num_train_step'. Did you mean num_train_steps?"),
    ({"SPACE": "{}"}, "SPACE: expected a non-empty dict"),
    ({"SPACE": '{"num_layers": sweep.choice([])}'},
     "SPACE['num_layers']: choice([]) is empty"),
    ({"SPACE": '{"learning_rate": sweep.uniform(0.1, 0.01)}', "SAMPLER": '"tpe"',
      "NUM_TRIALS": "2"}, "SPACE['learning_rate']: uniform(0.1, 0.01): needs low < high"),
    ({"SPACE": '{"learning_rate": sweep.log_uniform(0, 0.1)}', "SAMPLER": '"tpe"',
      "NUM_TRIALS": "2"}, "log_uniform(0.0, 0.1): needs 0 < low"),
    ({"SAMPLER": '"bayes"'}, "SAMPLER: unknown sampler 'bayes'; known are "
     "['grid', 'random', 'tpe']"),
    ({"SPACE": '{"learning_rate": sweep.uniform(0.01, 0.1)}'},
     "SAMPLER 'grid' needs choice specs only; learning_rate is a range"),
    ({"SAMPLER": '"random"'}, "NUM_TRIALS is required with SAMPLER 'random'"),
    ({"METRIC": '"valid/mse"'}, "METRIC: expected 'SPLIT/METRIC:min' or"),
    ({"METRIC": '"valid/accuracy:max"'}, "METRIC 'valid/accuracy:max': the task does "
     "not report 'accuracy' on valid; it reports ['frac_abs_error_gt_0.04', 'mse']"),
    ({"METRIC": '"dev/mse:min"'}, "the task has no split 'dev'; its splits are "
     "['test', 'valid']"),
    ({"SPACE": '{"num_layers": sweep.choice([1, 0])}'},
     "SPACE['num_layers']: num_layers: expected an integer >= 1, got 0"),
    ({"SPACE": '{"learning_rate": sweep.uniform(0, 0.1)}', "SAMPLER": '"random"',
      "NUM_TRIALS": "2"}, "learning_rate: expected a finite number > 0, got 0.0"),
    ({"SPACE": '{"num_layers": sweep.uniform(1, 3)}', "SAMPLER": '"random"',
      "NUM_TRIALS": "2"}, "num_layers: expected an integer >= 1, got 1.0"),
    ({"SPACE": '{"hidden_size": sweep.choice([4, 8])}'},
     "hidden_size is in both SPACE and OVERRIDES"),
    ({"SPACE": '{"cell": sweep.choice(["lstm", "lsmt"])}'},
     "cell: unknown cell 'lsmt'; known cells are ['gru', 'lstm', 'rnn']"),
    ({"OVERRIDES": repr({**TINY, "eval_every_steps": 15})},
     "eval_every_steps (15) must be a multiple of log_every_steps (10)"),
    ({"PRUNER": '"hyperband"'}, "PRUNER: unknown pruner 'hyperband'"),
    ({"NUM_TRIALS": "3"}, "NUM_TRIALS (3) exceeds the grid's 2 points"),
    ({"SEED": "import_error"}, "cannot be loaded: NameError"),
]


@pytest.mark.parametrize("names,message", BAD_FILES)
def test_bad_sweep_file_is_one_error_line_and_trains_nothing(
    names, message, tmp_path, capsys):
  sweep_file = write_sweep(tmp_path / "bad.py", **names)
  code, out, err = run_sweep(capsys, sweep_file, tmp_path / "sweep")
  assert code == cli.EXIT_USAGE and len(err) == 1, err
  assert err[0].startswith(f"error: {sweep_file}: ") or "no such" in err[0], err[0]
  assert message in err[0], err[0]
  assert not (tmp_path / "sweep").exists() and "started" not in out


def test_another_sweep_file_in_the_same_dir_is_refused(tmp_path, capsys):
  workdir = tmp_path / "sweep"
  workdir.mkdir()
  sweep_file = write_sweep(tmp_path / "a.py")
  record = {"study_name": "other-1", "sweep_file": "/x/other.py", "source": "",
            "storage": "study.journal"}
  (workdir / "sweep.json").write_text(json.dumps(record))
  code, _, err = run_sweep(capsys, sweep_file, workdir)
  assert code == 2 and len(err) == 1
  assert "holds the sweep of a different sweep file (/x/other.py" in err[0]
  assert os.listdir(workdir) == ["sweep.json"]


def test_report_of_a_dir_that_is_not_a_sweep(tmp_path, capsys):
  capsys.readouterr()
  assert report.main(["report", f"--sweep={tmp_path}"]) == 2
  err = capsys.readouterr().err.splitlines()
  assert err == [f"error: --sweep: {tmp_path} is not a sweep directory (it has no "
                 f"sweep.json; python -m experiments.sweep --workdir=DIR makes one)"]
  assert report.main(["report", f"--sweep={tmp_path}", "a_workdir"]) == 2


class StubTrial:
  """What on_evaluation uses of an optuna trial."""

  def __init__(self, prune_above):
    self.reported, self.prune_above = [], prune_above

  def report(self, value, step):
    self.reported.append((step, value))

  def should_prune(self):
    return self.reported[-1][1] > self.prune_above


def test_on_evaluation_reports_the_metric_and_prunes_a_bad_trial():
  metric = sweep.Metric("valid", "mse", "min")
  trial = StubTrial(prune_above=0.1)
  on_evaluation = sweep.make_on_evaluation(trial, metric)
  on_evaluation(10, {"valid": {"mse": 0.05}, "test": {"mse": 0.5}})
  with pytest.raises(optuna.TrialPruned, match="pruned at step 20: valid/mse = 0.3"):
    on_evaluation(20, {"valid": {"mse": 0.3}, "test": {"mse": 0.01}})
  assert trial.reported == [(10, 0.05), (20, 0.3)]


def test_objective_is_the_best_value_or_the_final_mean():
  import ml_collections
  metric = sweep.Metric("valid", "mse", "min")
  summary = {"metrics": {"valid": {"mse": 0.2}}, "metrics_sd": {"valid": {"mse": 0.01}},
             "best": {"value": 0.1, "sd": 0.02}}
  with_best = ml_collections.ConfigDict({"best_metric": "valid/mse:min"})
  other_best = ml_collections.ConfigDict({"best_metric": "valid/mse:max"})
  assert sweep.objective_value(summary, with_best, metric) == 0.1
  assert sweep.objective_value(summary, other_best, metric) == 0.2


def test_a_pruned_trial_keeps_its_workdir(tmp_path):
  sweep_file = write_sweep(tmp_path / "p.py")
  loaded = sweep.load_sweep(sweep_file)
  study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1e-9))
  admission = sweep.Admission(contextlib.ExitStack())
  study.optimize(lambda t: sweep.run_trial(t, loaded, str(tmp_path), admission),
                 n_trials=1)
  trial = study.trials[0]
  assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [10]
  assert metric_steps(tmp_path / "trial_000") == [10]
  assert (tmp_path / "trial_000" / "checkpoints").is_dir()
  assert not (tmp_path / "trial_000" / "summary.json").exists()


def test_spec_helpers_and_study_name():
  assert sweep.log_uniform(1, 10) == sweep.Uniform(1.0, 10.0, log=True)
  assert sweep.choice(x for x in (1, 2)).values == (1, 2)
  assert sweep.int_range(1, 4, log=True).problem() is None
  assert "repeats" in sweep.choice([1, 1]).problem()
  assert sweep.mask_password("postgresql://me:secret@db/x") == "postgresql://me:***@db/x"


def test_trials_of_replicas_optimise_the_mean_and_report_the_sd(tmp_path, capsys):
  sweep_file = write_sweep(
      tmp_path / "seeds.py", OVERRIDES=repr({**TINY, "num_replicas": 3}))
  workdir = tmp_path / "sweep"
  code, _, err = run_sweep(capsys, sweep_file, workdir)
  assert code == 0, err
  for trial in load(workdir).get_trials():
    summary = json.loads(
        (workdir / f"trial_{trial.number:03d}" / "summary.json").read_text())
    mses = [r["metrics"]["valid"]["mse"] for r in summary["replicas"]]
    assert [r["seed"] for r in summary["replicas"]] == [0, 1, 2]
    assert trial.value == pytest.approx(sum(mses) / 3)
    assert trial.intermediate_values[20] == pytest.approx(sum(mses) / 3)
  capsys.readouterr()
  assert report.main(["report", f"--sweep={workdir}"]) == 0
  rows = [line for line in capsys.readouterr().out.splitlines()
          if "COMPLETE" in line]
  assert len(rows) == 2 and all(" ± " in line for line in rows)


SWEEPS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "experiments", "sweeps")


@pytest.mark.parametrize("name", sorted(
    f for f in os.listdir(SWEEPS_DIR) if f.endswith(".py")))
def test_every_shipped_sweep_file_is_valid(name, monkeypatch):
  """Names, keys, values and budget checked; the metric against the task
  only where the task is generated (the corpora of the others are big)."""
  checked = []
  if not name.startswith("adding"):
    monkeypatch.setattr(sweep, "_check_metric",
                        lambda path, config, metric: checked.append(metric))
  loaded = sweep.load_sweep(os.path.join(SWEEPS_DIR, name))
  assert loaded.num_trials >= 1 and loaded.space
  assert all(m.split == "valid" for m in checked)
