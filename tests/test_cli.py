"""The command line, end to end on the toy corpus with the tiny preset: train, resume, translate,
evaluate, and one clear error line (exit 2) for every kind of bad input; the experiment families on
the real corpus (slow); then, without training, its help (made from the settings' declarations),
``--version`` and ``--json``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import torch

from tmtlib import checkpoint, cli, course, experiments, pipeline
from tmtlib.cli import main
from tmtlib.train import History, TrainConfig
from tmtlib.validation import plain_text

TINY = [
    "--preset",
    "tiny",
    "--max-tokens",
    "1500",
    "--no-progress",
    "--lr",
    "3e-3",
    "--warmup-steps",
    "5",
]


def finetune_from_the_dae(root: Path) -> int:
    """The command that fine-tunes ``runs``'s translator from its DAE."""
    argv = "finetune --pairs 300 --max-steps 10 --eval-every 5 --bleu-sentences 20".split()
    return main([*argv, "--init", str(root / "dae" / "best.pt"), "--out", str(root / "ft"), *TINY])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, toy):
    """A tiny DAE pretraining run and a translator fine-tuned from it, on the toy corpus
    (module-wide, built once)."""
    root = tmp_path_factory.mktemp("runs")
    config = root / "pretrain.toml"
    config.write_text(
        'objective = "dae"\nsentences_per_lang = 200\n[train]\nmax_steps = 12\neval_every = 6\n'
    )
    with toy():
        assert main(["pretrain", "--config", str(config), "--out", str(root / "dae"), *TINY]) == 0
        assert finetune_from_the_dae(root) == 0
    return root


def test_runs_write_checkpoints_config_and_history(runs):
    for name in ("dae", "ft"):
        folder = runs / name
        assert {"best.pt", "last.pt", "config.json", "history.json", "tokenizer.model"} <= {
            p.name for p in folder.iterdir()
        }
    config = json.loads((runs / "dae" / "config.json").read_text())
    assert config["objective"] == "dae" and config["sentences_per_lang"] == 200
    # file + flags
    assert config["train"]["max_steps"] == 12 and config["train"]["max_tokens"] == 1500
    last = checkpoint.load(runs / "ft" / "last.pt")
    assert last["progress"]["step"] == 10 and last["spec"]["init"].endswith("best.pt")
    assert [e["step"] for e in json.loads((runs / "ft" / "history.json").read_text())["evals"]] == [
        5,
        10,
    ]


def test_rerunning_a_finished_run_resumes_without_training(runs, toy_corpus, capsys):
    before = (runs / "ft" / "last.pt").read_bytes()
    assert finetune_from_the_dae(runs) == 0
    assert (runs / "ft" / "last.pt").read_bytes() == before


def test_translate_and_evaluate(runs, tmp_path, capsys, monkeypatch):
    source = tmp_path / "in.en"
    source.write_text("A dog runs on the grass.\nTwo men are talking.\n")
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(runs / "ft" / "best.pt"),
                "--tgt",
                "de",
                "--beam",
                "2",
                "--input",
                str(source),
            ]
        )
        == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 2
    int8 = ["--precision", "int8", "--input", str(source)]
    assert (
        main(["translate", "--checkpoint", str(runs / "ft" / "best.pt"), "--tgt", "de", *int8]) == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 2
    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    hyp.write_text("Ein Hund rennt.\n")
    ref.write_text("Ein Hund rennt.\n")
    assert main(["evaluate", "--hyp", str(hyp), "--ref", str(ref)]) == 0
    out = capsys.readouterr().out
    assert "BLEU = 100.0" in out and "version:" in out and "chrF2++" in out


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error:" in err and "Traceback" not in err
    return err


def test_bad_input_is_one_clear_line(runs, tmp_path, capsys):
    best = str(runs / "ft" / "best.pt")
    lines = tmp_path / "lines"
    lines.write_text("A dog.\n\nA cat.\n")
    assert "line 2 is empty" in _error(
        ["translate", "--checkpoint", best, "--tgt", "de", "--input", str(lines)], capsys
    )
    assert "unknown language 'xx'" in _error(
        ["translate", "--checkpoint", best, "--tgt", "xx", "--input", str(lines)], capsys
    )
    assert "no checkpoint" in _error(
        ["translate", "--checkpoint", str(tmp_path / "none.pt"), "--tgt", "de"], capsys
    )
    broken = tmp_path / "broken.pt"
    broken.write_bytes((runs / "ft" / "best.pt").read_bytes()[:2000])
    assert "damaged" in _error(
        ["translate", "--checkpoint", str(broken), "--tgt", "de", "--input", str(lines)], capsys
    )
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("objective = 'dae'\ncolour = 'blue'\n")
    assert "unknown PretrainSpec settings: colour" in _error(
        ["pretrain", "--config", str(bad_config), "--out", str(tmp_path / "x"), *TINY], capsys
    )


def test_other_vocabulary_and_other_run_are_refused_without_damage(
    runs, toy_corpus, tmp_path, capsys
):
    saved = checkpoint.load(runs / "dae" / "best.pt")
    saved["tokenizer"] = "0123456789abcdef"
    foreign = tmp_path / "foreign.pt"
    torch.save(saved, foreign)
    err = _error(
        [
            "finetune",
            "--pairs",
            "300",
            "--init",
            str(foreign),
            "--max-steps",
            "2",
            "--out",
            str(tmp_path / "ft2"),
            *TINY,
        ],
        capsys,
    )
    assert "vocabulary" in err or "tokenizer" in err
    before = (runs / "ft" / "last.pt").read_bytes()
    err = _error(
        ["finetune", "--pairs", "350", "--max-steps", "10", "--out", str(runs / "ft"), *TINY],
        capsys,
    )
    assert "different run" in err
    assert (runs / "ft" / "last.pt").read_bytes() == before


def test_module_entry_point_exit_status(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tmtlib",
            "translate",
            "--checkpoint",
            str(tmp_path / "x.pt"),
            "--tgt",
            "de",
        ],
        input="A dog.\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        result.returncode == 2
        and "Traceback" not in result.stderr
        and "no checkpoint" in result.stderr
    )


def budgets_200(seed: int, out: Path) -> int:
    """The budgets family at 200 pairs, scratch and DAE, one seed, into ``out``."""
    argv = "experiment budgets --budgets 200 --inits scratch dae --seeds".split()
    return main([*argv, str(seed), "--out", str(out)])


def test_experiment_family_writes_a_record_per_run_and_a_summary(corpus, tmp_path, capsys):
    out = tmp_path / "results"
    assert budgets_200(seed=0, out=out) == 0
    table = capsys.readouterr().out
    assert "| en-de_dae_200 | 1 |" in table and "| en-de_scratch_200 | 1 |" in table
    record = json.loads((out / "budgets" / "en-de_dae_200_seed0.json").read_text())
    assert record["data"]["train_pairs"] == 200 and record["training"]["steps"] > 0
    assert "version:" in record["test"]["bleu"]["signature"] and record["config"]["init"].endswith(
        "best.pt"
    )
    summary = json.loads((out / "budgets" / "summary.json").read_text())
    dae = next(row for row in summary["rows"] if row["system"] == "en-de_dae_200")
    assert len(dae["p_values"]) == 1 and 0 < dae["p_values"][0] <= 1
    assert (out / "budgets" / "summary.md").read_text().startswith("| system |")
    for figure in ("bleu_vs_pairs.png", "learning_curves.png"):
        assert (out / "budgets" / figure).read_bytes().startswith(b"\x89PNG")
    # a second command adds seeds to the same table
    assert budgets_200(seed=1, out=out) == 0
    summary = json.loads((out / "budgets" / "summary.json").read_text())
    assert [row["seeds"] for row in summary["rows"]] == [[0, 1], [0, 1]]
    dae_seconds = [
        json.loads((out / "budgets" / f"en-de_dae_200_seed{s}.json").read_text())["training"][
            "seconds"
        ]
        for s in (0, 1)
    ]
    dae = next(row for row in summary["rows"] if row["system"] == "en-de_dae_200")
    # both seeds' training time
    assert dae["training_minutes"] == pytest.approx(sum(dae_seconds) / 60)


def test_a_family_summary_is_rebuilt_from_its_records_alone(corpus, tmp_path, monkeypatch):
    out = tmp_path / "results"
    assert budgets_200(seed=0, out=out) == 0
    folder = out / "budgets"
    before = json.loads((folder / "summary.json").read_text())["rows"]
    dae = json.loads((folder / "en-de_dae_200_seed0.json").read_text())
    assert (
        len(dae["test"]["hypotheses"]) == dae["data"]["test_sentences"]
        and dae["validation"]["curve"]
    )
    assert dae["comparison"]["p_value"] == before[1]["p_values"][0]
    monkeypatch.setattr(pipeline, "runs_dir", lambda: pytest.fail("the summary read the run cache"))
    (folder / "learning_curves.png").unlink()
    # a fresh clone, without the run cache
    assert experiments.run_family("budgets", [], out) == before
    assert (folder / "learning_curves.png").exists()
    # a record from before records kept translations: its comparison stands
    del dae["test"]["hypotheses"]
    checkpoint.write_json_atomic(dae, folder / "en-de_dae_200_seed0.json")
    assert experiments.run_family("budgets", [], out) == before
    scratch = json.loads((folder / "en-de_scratch_200_seed0.json").read_text())
    scratch["test"]["bleu"]["score"] += (
        1  # a retrained scratch run that scores otherwise: no stale p-value
    )
    checkpoint.write_json_atomic(scratch, folder / "en-de_scratch_200_seed0.json")
    dae_row = experiments.run_family("budgets", [], out)[1]
    assert "p_values" not in dae_row
    assert dae_row["gain_over_scratch"] == pytest.approx(before[1]["gain_over_scratch"] - 1)


def test_experiment_refuses_flags_its_family_does_not_take(capsys):
    assert main(["experiment", "strategies", "--budgets", "1000"]) == 2
    assert "does not take --budgets" in capsys.readouterr().err


def test_pretraining_family_records_runs_and_draws_the_vae_terms(corpus, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["experiment", "pretraining", "--out", str(out)]) == 0
    assert "vae_no_remedy: validation loss" in capsys.readouterr().out
    folder = out / "pretraining"
    record = json.loads((folder / "vae_all_remedies.json").read_text())
    assert record["config"]["free_bits"] == 0.25 and record["training"]["steps"] > 0
    assert "val_kl" in record["final_validation"] and "kl" in record["final_training_record"]
    assert [row["run"] for row in json.loads((folder / "summary.json").read_text())["rows"]] == [
        "lm",
        "dae",
        "vae",
        "vae_no_remedy",
        "vae_annealing",
        "vae_all_remedies",
        "parent_dae",
        "parent_dae_long",
    ]
    denoised = json.loads((folder / "parent_dae_long.json").read_text())["config"]
    assert denoised["objective"] == "dae" and denoised["init"].endswith("best.pt")
    for figure in ("pretraining_curves.png", "vae_collapse.png"):
        assert (folder / figure).read_bytes().startswith(b"\x89PNG")
    assert main(["experiment", "pretraining", "--seeds", "1"]) == 2
    assert "does not take --seeds" in capsys.readouterr().err


def test_full_family_trains_the_long_recipe_and_parents_a_child(corpus, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["experiment", "full", "--out", str(out)]) == 0
    assert "| en-de_scratch_long_all | 1 |" in capsys.readouterr().out
    full = json.loads((out / "full" / "en-de_scratch_long_all_seed0.json").read_text())
    assert full["cell"]["recipe"] == "long" and full["config"]["train"]["schedule"] == "cosine"
    assert (
        main(
            [
                "experiment",
                "crosslingual",
                "--children",
                "fr",
                "--inits",
                "scratch",
                "parent_long",
                "--seeds",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    child = json.loads((out / "crosslingual" / "en-fr_parent_long_3000_seed0.json").read_text())
    # the child starts from the long run's best.pt
    assert full["run_folder"] in child["config"]["init"]
    summary = json.loads((out / "crosslingual" / "summary.json").read_text())
    assert [row["system"] for row in summary["rows"]] == [
        "en-fr_scratch_3000",
        "en-fr_parent_long_3000",
    ]
    assert "gain_over_scratch" in summary["rows"][1]


def test_the_hour_in_bf16_is_a_recipe_of_its_own(capsys):
    cell = experiments.full(precision="bf16")[0]
    assert (
        cell.name == "en-de_scratch_long_bf16_all_seed0"
        and cell.system != experiments.full()[0].system
    )
    assert course.long_train_config(precision="bf16").precision == "bf16"
    # the parents and committed runs stay fp32
    assert course.long_train_config().precision == "fp32"
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        experiments.full(precision="fp16")
    assert main(["experiment", "budgets", "--precision", "bf16"]) == 2
    assert "does not take --precision" in capsys.readouterr().err


# --- help, --version and --json: no training (the training and experiment functions are stubbed) --


def _pyproject_version() -> str:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]


def test_version_prints_the_package_version_and_exits_0(capsys, monkeypatch):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"tmt {_pyproject_version()}\n"

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)  # a source tree: pyproject.toml says
    assert cli.package_version() == _pyproject_version()


@pytest.mark.parametrize(
    "command, spec_class",
    [("pretrain", pipeline.PretrainSpec), ("finetune", pipeline.FinetuneSpec)],
)
def test_training_flags_and_their_help_come_from_the_settings(command, spec_class):
    """One flag per setting, its help the field's declared meaning with its choices and default."""
    parser = next(
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    actions = {a.dest: a for a in parser.choices[command]._actions}
    defaults = spec_class()
    for cls, instance in ((spec_class, defaults), (TrainConfig, defaults.train)):
        for f in dataclasses.fields(cls):
            if f.name == "train":
                continue
            text = actions[f.name].help
            assert text.startswith(f.metadata["help"]) and text.endswith(
                f"default: {plain_text(getattr(instance, f.name))}]"
            ), (f.name, text)
            for choice in f.metadata.get("choices", ()):
                assert choice in text
    selected = "val_bleu" if command == "finetune" else "val_loss"  # translators are picked by BLEU
    assert actions["select"].help.endswith(f"default: {selected}]")


def _stub_finetune(monkeypatch, evals):
    """Replace the training by a record of the spec it was given; the history holds ``evals``."""
    given = []

    def finetune(spec, out):
        given.append(spec)
        return None, History(evals=evals), None

    monkeypatch.setattr(pipeline, "finetune", finetune)
    return given


def test_flags_over_config_file_over_defaults_reach_the_spec(tmp_path, monkeypatch):
    given = _stub_finetune(monkeypatch, [])
    config = tmp_path / "run.toml"
    config.write_text('pairs = 300\nstrategy = "gradual"\n[train]\nlr = 1e-3\nmax_steps = 50\n')
    assert (
        main(
            [
                "finetune",
                "--config",
                str(config),
                "--pairs",
                "500",
                "--betas",
                "0.9",
                "0.99",
                "--no-progress",
                "--max-steps",
                "60",
                "--parts",
                "encoder",
                "decoder",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    spec = given[0]
    assert (spec.pairs, spec.strategy, spec.parts) == (500, "gradual", ("encoder", "decoder"))
    train = spec.train
    assert (train.lr, train.max_steps, train.betas, train.progress) == (
        1e-3,
        60,
        (0.9, 0.99),
        False,
    )
    # the FinetuneSpec defaults
    assert spec.train.select == "val_bleu" and spec.label_smoothing == 0.1


def test_training_commands_print_text_or_one_json_object(tmp_path, monkeypatch, capsys):
    _stub_finetune(
        monkeypatch,
        [
            {"step": 5, "time": 1.0, "val_loss": 6.1},
            {"step": 10, "time": 2.0, "val_loss": 5.25, "val_bleu": 1.5},
        ],
    )
    out = tmp_path / "run"
    assert main(["finetune", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: step 10: val_loss 5.25, val_bleu 1.5\n"
    assert main(["finetune", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "out": str(out),
        "step": 10,
        "time": 2.0,
        "val_loss": 5.25,
        "val_bleu": 1.5,
    }


def test_evaluate_prints_text_or_one_json_object(tmp_path, capsys):
    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    hyp.write_text("Ein Hund rennt.\nZwei Männer reden.\n")
    ref.write_text("Ein Hund rennt.\nZwei Männer reden.\n")
    assert main(["evaluate", "--hyp", str(hyp), "--ref", str(ref)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("BLEU = 100.0 (nrefs:1") and len(text.splitlines()) == 3
    assert main(["evaluate", "--hyp", str(hyp), "--ref", str(ref), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sentences"] == 2 and set(result["scores"]) == {"bleu", "chrf", "chrf++"}
    bleu = result["scores"]["bleu"]
    assert bleu["value"] == pytest.approx(100) and "version:" in bleu["signature"]


def test_experiment_prints_its_table_or_one_json_object(tmp_path, monkeypatch, capsys):
    rows = [{"system": "en-de_scratch_200", "seeds": [0], "bleu_mean": 1.5}]
    monkeypatch.setattr(experiments, "run_family", lambda family, cells, out: rows)
    monkeypatch.setattr(experiments, "markdown_table", lambda given: f"table of {len(given)} row")
    argv = [
        "experiment",
        "budgets",
        "--budgets",
        "200",
        "--inits",
        "scratch",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out == "table of 1 row\n"
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "family": "budgets",
        "out": str(tmp_path),
        "rows": rows,
    }


def test_pretraining_and_vae_families_print_one_json_object(tmp_path, monkeypatch, capsys):
    rows = [{"run": "dae", "val_loss": 2.5}]
    records = {"vae_no_remedy": {"active_units": 0}}
    monkeypatch.setattr(experiments, "run_pretraining", lambda out: rows)
    monkeypatch.setattr(
        experiments,
        "run_vae_diagnostics",
        lambda out, runs: {run: records[run] for run in runs},
    )
    monkeypatch.setattr(
        experiments, "vae_diagnostics_table", lambda given: f"table of {len(given)} VAE"
    )
    assert main(["experiment", "pretraining", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "dae: validation loss 2.500 per token\n"
    assert main(["experiment", "pretraining", "--out", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "family": "pretraining",
        "out": str(tmp_path),
        "rows": rows,
    }
    assert (
        main(["experiment", "vae-diagnostics", "--runs", "vae_no_remedy", "--out", str(tmp_path)])
        == 0
    )
    assert capsys.readouterr().out == "table of 1 VAE\n"
    assert (
        main(
            [
                "experiment",
                "vae-diagnostics",
                "--runs",
                "vae_no_remedy",
                "--out",
                str(tmp_path),
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["runs"] == records


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["finetune", "--pairs", "many", "--out", "x"],
            "argument --pairs: invalid int value: 'many'",
        ),
        (
            ["pretrain", "--objective", "xx", "--out", "x"],
            "unknown objective 'xx': objective must be one of",
        ),
        (["evaluate", "--beam"], "argument --beam: expected one argument"),
        (["train"], "invalid choice: 'train'"),
        (["finetune", "--max-steps", "10"], "the following arguments are required: --out"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and message in err and err.startswith("tmt") and "Traceback" not in err
    ), err
    assert not (tmp_path / "x").exists()


def test_the_documented_hour_recipe_flags_are_the_course_recipe(monkeypatch):
    """docs/cli.md's flags for the 60-minute recipe give ``course.long_train_config()`` (full
    mode's)."""
    monkeypatch.delenv("TMT_QUICK")
    docs = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    line = next(
        line
        for line in docs.splitlines()
        if line.startswith("python -m tmtlib finetune") and "--schedule cosine" in line
    )
    args = cli.build_parser().parse_args(shlex.split(line)[3:])
    assert cli._spec(pipeline.FinetuneSpec, args).train == course.long_train_config()


def test_a_command_shows_tmtlib_progress_on_stderr_as_plain_lines(capsys):
    """``main`` routes tmtlib's log records (an experiment's "[1/2] run" lines) to stderr as plain
    lines while a command runs, and leaves the logging setup as it found it."""
    progress = logging.getLogger("tmtlib.experiments")
    level, handlers = logging.getLogger("tmtlib").level, list(logging.getLogger("tmtlib").handlers)
    with cli._progress_on_stderr():
        progress.info("[1/2] en-de_dae_1000_seed0")
        progress.debug("not at INFO")
    progress.info("after the command")
    assert capsys.readouterr().err == "[1/2] en-de_dae_1000_seed0\n"
    assert logging.getLogger("tmtlib").level == level
    assert logging.getLogger("tmtlib").handlers == handlers
