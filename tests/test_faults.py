"""Fault injection (issue 21): nothing is lost and every user error is one line, under every fault.

1. one run per run folder (two processes, SIGKILL during a checkpoint write, durable writes);
2. every setting checked before the first step (flags, config files of every field type, Python);
3. full and read-only disks (a small tmpfs when running as root; skipped with the reason otherwise);
4. any text in, the same number of lines out (unusual Unicode, bad bytes, directories, streaming);
5. error messages that say what is true.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest
import torch

from tmtlib import checkpoint, data, pipeline
from tmtlib.cli import STREAM_LINES, main
from tmtlib.decode import translate
from tmtlib.evaluate import evaluate
from tmtlib.models import Seq2Seq, model_config
from tmtlib.objectives import make_objective
from tmtlib.train import TrainConfig, train
from tmtlib.transfer import TransferError, transfer
from tmtlib.validation import SettingError, from_plain

SCRIPTS = Path(__file__).parent / "scripts"
sys.path.insert(0, str(SCRIPTS))
from tiny_run import examples  # noqa: E402

TINY = [
    "--preset",
    "tiny",
    "--pairs",
    "300",
    "--max-tokens",
    "1500",
    "--no-progress",
    "--bleu-sentences",
    "10",
    "--max-steps",
    "4",
    "--eval-every",
    "2",
    "--warmup-steps",
    "2",
]
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}


def _error(argv: list[str], capsys) -> str:
    """Run the command line in-process; it must fail with exit status 2 and one line on stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error:" in err and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def run(tmp_path_factory, toy, one_thread):
    """A tiny translator trained by the command line on the toy corpus (module-wide, built once)."""
    folder = tmp_path_factory.mktemp("faults") / "run"
    with toy():
        assert main(["finetune", *TINY, "--out", str(folder)]) == 0
    return folder


# --- 1. one run per run folder --------------------------------------------------------------------


def _hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds ``folder``'s run lock until it is killed."""
    code = (
        "from tmtlib import checkpoint; import time\nwith "
        f"checkpoint.run_folder_lock({str(folder)!r}):\n"
        f"    print('locked', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_run_on_a_locked_folder_is_refused_naming_the_holder(run, toy_corpus, capsys):
    holder = _hold_lock(run)
    try:
        before = (run / "last.pt").read_bytes()
        err = _error(["finetune", *TINY, "--max-steps", "6", "--out", str(run)], capsys)
        assert f"process {holder.pid}" in err and "in use" in err
        assert (run / "last.pt").read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    with checkpoint.run_folder_lock(run):  # the OS dropped the lock with its process: nothing stale
        pass


@pytest.mark.slow
def test_two_concurrent_runs_on_one_folder_one_trains_one_is_refused(tmp_path):
    script = [sys.executable, str(SCRIPTS / "tiny_run.py"), str(tmp_path), "12", "--slow", "0.5"]
    runs = [subprocess.Popen(script, env=ENV, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = sorted((p.wait(timeout=300), p.stderr.read()) for p in runs)
    assert outcomes[0][0] == 0 and outcomes[1][0] != 0, outcomes
    assert "is in use by process" in outcomes[1][1]
    assert checkpoint.load(tmp_path / "last.pt")["progress"]["step"] == 12


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_loses_nothing_and_leaves_no_stale_lock(tmp_path):
    checkpoint.save_atomic({"model": {"w": torch.ones(3)}}, tmp_path / "last.pt")
    code = textwrap.dedent(f"""
        import time, torch
        from tmtlib import checkpoint
        def stall(obj, handle):
            handle.write(b"half a checkpoint")
            handle.flush()
            print("writing", flush=True)
            time.sleep(600)
        torch.save = stall
        with checkpoint.run_folder_lock({str(tmp_path)!r}):
            checkpoint.save_atomic(
                {{"model": {{"w": torch.zeros(3)}}}}, {str(tmp_path / "last.pt")!r}
            )
    """)
    writer = subprocess.Popen(
        [sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert checkpoint.load(tmp_path / "last.pt")["model"]["w"].tolist() == [1.0, 1.0, 1.0]
    # unique per process
    assert [p.name for p in tmp_path.glob(".*.tmp")] == [f".last.pt.{writer.pid}.tmp"]
    # taken at once, and the killed writer's leftovers removed
    with checkpoint.run_folder_lock(tmp_path):
        assert not list(tmp_path.glob(".*.tmp"))


def test_checkpoint_writes_are_durable(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os,
        "fsync",
        lambda fd: synced.append(Path(os.readlink(f"/proc/self/fd/{fd}"))) or real_fsync(fd),
    )
    checkpoint.save_atomic({"model": {}}, tmp_path / "last.pt")
    # the file, then the folder
    assert synced[0].name.startswith(".last.pt.") and synced[1] == tmp_path


# --- 2. every setting checked before the first step ----------------------------------------------

# a value of the wrong type for each kind of field
_WRONG = {
    int: "7",
    float: "0.5",
    str: 3,
    bool: "yes",
}


def _wrong_value(hint):
    """A JSON/TOML value that does not fit the type ``hint``."""
    if dataclasses.is_dataclass(hint):
        return 5  # a scalar where a table belongs
    if typing.get_origin(hint) is tuple:
        return "encoder"  # a string where a list belongs (once split into letters)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return _WRONG[args[0] if args else hint]


@pytest.mark.parametrize("cls", [TrainConfig, pipeline.PretrainSpec, pipeline.FinetuneSpec])
def test_every_field_of_the_wrong_type_is_refused_naming_it(cls):
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        with pytest.raises(
            SettingError, match=f"^{field.name} must be|^unknown {field.name}|^train must be"
        ):
            from_plain(cls, {field.name: _wrong_value(hints[field.name])})


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"max_steps": 10.5}, "max_steps must be an integer, not 10.5"),
        ({"max_steps": True}, "max_steps must be"),
        ({"lr": float("nan")}, "lr must be a number"),
        ({"lr": -1e-3}, "lr must be at least 0"),
        ({"betas": (0.9, 1.0)}, "betas must be below 1"),
        ({"max_minutes": 0}, "above 0"),
        ({"patience": 0}, "at least 1"),
        ({"warmup_steps": -5}, "at least 0"),
        ({"device": "tpu"}, "unknown device"),
        ({"schedule": "step"}, "unknown schedule"),
        ({"eval_every": 0}, "at least 1"),
    ],
)
def test_train_config_ranges_and_choices(settings, message):
    with pytest.raises(SettingError, match=message):
        TrainConfig(**settings)


def test_specs_from_python_and_config_data():
    assert pipeline.spec_from_dict(pipeline.FinetuneSpec, {"parts": ["encoder"]}).parts == (
        "encoder",
    )
    for raw, message in [
        ({"parts": "encoder"}, "parts must be a list"),
        ({"parts": []}, "must not be empty"),
        ({"parts": ["encoder", "wings"]}, "unknown parts 'wings'"),
        ({"train": {"select": "foo"}}, "unknown select 'foo'"),
        ({"label_smoothing": 1}, "below 1"),
        ({"train": {"betas": [0.9]}}, "betas must be a list"),
        ({"bleu_sentences": 0}, "at least 1"),
    ]:
        with pytest.raises(SettingError, match=message):
            pipeline.spec_from_dict(pipeline.FinetuneSpec, raw)
    with pytest.raises(SettingError, match="unknown select 'val_bleu'"):
        pipeline.PretrainSpec(train=TrainConfig(select="val_bleu"))  # pretraining reports no BLEU
    with pytest.raises(SettingError, match="unknown langs 'xx'"):
        pipeline.PretrainSpec(langs=("en", "xx"))


def test_validation_leaves_the_run_hashes_as_they_were():
    """The run cache is named by these hashes: checking settings must not rename anyone's runs."""
    assert pipeline.spec_hash(pipeline.FinetuneSpec()) == "519e9c8b694b"
    assert pipeline.spec_hash(pipeline.PretrainSpec()) == "6eeb5d4e7559"
    assert (
        pipeline.spec_hash(pipeline.FinetuneSpec(pairs=300, preset="tiny", parts=("encoder",)))
        == "7fed16290b1d"
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--select", "foo"], "unknown select 'foo'"),
        (["--bleu-sentences", "0"], "bleu_sentences must be at least 1"),
        (["--checkpoint-every", "0"], "checkpoint_every must be at least 1"),
        (["--eval-every", "0"], "eval_every"),
        (["--log-every", "0"], "log_every must be at least 1"),
        (["--label-smoothing", "2"], "label_smoothing must be below 1"),
        (["--patience", "0"], "patience must be at least 1"),
        (["--max-minutes", "0"], "max_minutes must be above 0"),
        (["--warmup-steps", "-5"], "warmup_steps must be at least 0"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_flags_are_refused_before_anything_is_written(flags, message, tmp_path, capsys):
    assert message in _error(["finetune", *TINY, *flags, "--out", str(tmp_path / "run")], capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("run.toml", 'pairs = "300"\n', "pairs must be an integer or null, not '300'"),
        ("run.toml", "[train]\nmax_steps = 10.5\n", "max_steps must be an integer, not 10.5"),
        ("run.toml", "train = 5\n", "train must be a table"),
        ("run.toml", 'parts = "encoder"\n', "parts must be a list"),
        ("run.toml", '[train]\nlr = "fast"\n', "lr must be a number, not 'fast'"),
        ("run.toml", "pairs = true\n", "pairs must be an integer or null, not True"),
        ("run.toml", "src = ['en']\n", "src must be a string, not ['en']"),
        ("run.toml", "colour = 'blue'\n", "unknown FinetuneSpec settings: colour"),
        ("run.json", "[1, 2]", "must hold a table of settings"),
        ("run.json", "{", "is not valid JSON"),
    ],
)
def test_malformed_config_files_are_one_line(name, text, message, tmp_path, capsys):
    config = tmp_path / name
    config.write_text(text)
    argv = [
        "finetune",
        "--config",
        str(config),
        "--preset",
        "tiny",
        "--no-progress",
        "--out",
        str(tmp_path / "run"),
    ]
    assert message in _error(argv, capsys)
    assert not (tmp_path / "run").exists()


def test_settings_the_data_or_machine_cannot_serve_are_refused_before_training(
    toy_corpus, tmp_path, capsys
):
    out = str(tmp_path / "run")
    assert "smaller than the longest training example" in _error(
        ["finetune", *TINY, "--max-tokens", "5", "--out", out], capsys
    )
    device = "cuda:99" if torch.cuda.is_available() else "cuda"
    assert "CUDA GPU" in _error(["finetune", *TINY, "--device", device, "--out", out], capsys)
    assert not (tmp_path / "run").exists()


# --- 3. full and read-only disks ------------------------------------------------------------------


@pytest.fixture
def mount(tmp_path):
    """``mount(size, ro=False, bind=None)``: a tmpfs (or a bind mount of ``bind``) at a new folder,
    unmounted afterwards; the test is skipped, with the reason, where mounting is not allowed."""
    mounted = []

    def make(size: str = "1m", ro: bool = False, bind: Path | None = None) -> Path:
        target = tmp_path / f"mount{len(mounted)}"
        target.mkdir()
        source = ["--bind", str(bind)] if bind else ["-t", "tmpfs", "-o", f"size={size}", "tmpfs"]
        result = subprocess.run(["mount", *source, str(target)], capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a test file system (needs root): {result.stderr.strip()}")
        mounted.append(target)
        if ro:
            subprocess.run(
                ["mount", "-o", "remount,ro" + (",bind" if bind else ""), str(target)], check=True
            )
        return target

    yield make
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], check=True)


def test_a_full_disk_keeps_the_old_checkpoint_and_no_temporary_file(mount):
    disk = mount("1m")
    old = checkpoint.save_atomic({"model": {"w": torch.ones(50_000)}}, disk / "last.pt")  # 200 kB
    with pytest.raises(
        checkpoint.CheckpointError, match=f"cannot write {disk / 'last.pt'}: No space left"
    ):
        checkpoint.save_atomic({"model": {"w": torch.zeros(500_000)}}, old)  # 2 MB
    assert checkpoint.load(old)["model"]["w"].sum() == 50_000
    assert sorted(p.name for p in disk.iterdir()) == ["last.pt"]


@pytest.mark.slow
def test_a_full_disk_during_training_is_one_line_and_best_pt_survives(corpus, mount, capsys):
    # the course's vocabulary of 8,000 pieces (the real corpus) sizes the files
    disk = mount("1500k")  # room for tokenizer.model and best.pt (1.1 MB), not last.pt (3.4 MB)
    err = _error(["finetune", *TINY, "--out", str(disk / "run")], capsys)
    assert f"cannot write {disk / 'run'}/" in err and ".pt: No space left on device" in err
    assert pipeline.load(disk / "run" / "best.pt")[0] is not None
    assert not list((disk / "run").glob(".*.tmp"))


def test_a_read_only_run_folder_is_refused_before_training(mount, tmp_path):
    folder = tmp_path / "run"
    train(
        Seq2Seq(model_config("tiny", vocab_size=40)),
        make_objective("ae"),
        examples(),
        TrainConfig(max_steps=2, max_tokens=120, progress=False),
        out_dir=folder,
    )
    before = (folder / "last.pt").read_bytes()
    read_only = mount(ro=True, bind=folder)
    with pytest.raises(
        checkpoint.CheckpointError, match="cannot write to the run folder .*: Read-only file system"
    ):
        train(
            Seq2Seq(model_config("tiny", vocab_size=40)),
            make_objective("ae"),
            examples(),
            TrainConfig(max_steps=4, max_tokens=120, progress=False),
            out_dir=read_only,
        )
    assert (folder / "last.pt").read_bytes() == before


@pytest.mark.slow
def test_an_empty_read_only_data_cache_is_one_line(mount, tmp_path):
    home = mount(ro=True)
    result = subprocess.run(
        [sys.executable, "-m", "tmtlib", "finetune", *TINY, "--out", str(tmp_path / "run")],
        env={**ENV, "TMT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert (
        "Read-only file system" in result.stderr
        and "set TMT_HOME to a writable folder" in result.stderr
    )


def test_an_unwritable_hyp_out_is_refused_before_decoding(run, mount, capsys, monkeypatch):
    read_only = mount(ro=True)
    monkeypatch.setattr(
        pipeline, "scores_on_test", lambda *a, **k: pytest.fail("decoded before checking --hyp-out")
    )
    err = _error(
        ["evaluate", "--checkpoint", str(run / "best.pt"), "--hyp-out", str(read_only / "hyps.de")],
        capsys,
    )
    assert f"cannot write {read_only / 'hyps.de'}: Read-only file system" in err
    assert "is a directory" in _error(
        ["evaluate", "--checkpoint", str(run / "best.pt"), "--hyp-out", str(run)], capsys
    )


# --- 4. any text in, the same lines out -----------------------------------------------------------

# every one a line separator to str.splitlines, none to wc -l
ODD_LINES = [
    "A dog\u2028runs.",
    "Two men\x85talk.",
    "A cat\x1csits\x1d\x1e.",
    "A\x0bbird\x0cflies\u2029away.",
    "A boy jumps.\r",
]


def test_translate_writes_one_line_per_line_read_whatever_the_characters(run, tmp_path, capsys):
    source = tmp_path / "odd.en"
    source.write_text("\n".join(ODD_LINES) + "\n", encoding="utf-8")
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(run / "best.pt"),
                "--tgt",
                "de",
                "--beam",
                "1",
                "--input",
                str(source),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.count("\n") == source.read_bytes().count(b"\n") == len(ODD_LINES)


def test_evaluate_aligns_hypotheses_and_references_by_newlines(tmp_path, capsys):
    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    hyps, refs = (
        ["a dog runs\u2028fast", "the cat sits", "the man"],
        ["a dog runs fast", "the cat sits", "the\x1cman"],
    )
    hyp.write_text("\n".join(hyps) + "\n", encoding="utf-8")
    ref.write_text("\n".join(refs) + "\n", encoding="utf-8")
    assert main(["evaluate", "--hyp", str(hyp), "--ref", str(ref)]) == 0
    assert str(evaluate(hyps, refs)["bleu"]) in capsys.readouterr().out


@pytest.mark.slow
def test_bad_bytes_and_directories_are_one_line(run, tmp_path, capsys):
    latin1 = tmp_path / "latin1.en"
    latin1.write_bytes("A dog.\nA caf\u00e9.\n".encode("latin-1"))
    best = str(run / "best.pt")
    assert f"{latin1} line 2 is not UTF-8" in _error(
        ["translate", "--checkpoint", best, "--tgt", "de", "--input", str(latin1)], capsys
    )
    assert "is a directory" in _error(
        ["translate", "--checkpoint", best, "--tgt", "de", "--input", str(tmp_path)], capsys
    )
    assert "is a directory" in _error(
        ["evaluate", "--hyp", str(tmp_path), "--ref", str(latin1)], capsys
    )
    assert "is a directory" in _error(
        ["finetune", "--config", str(tmp_path), "--out", str(tmp_path / "x")], capsys
    )
    result = subprocess.run(
        [sys.executable, "-m", "tmtlib", "translate", "--checkpoint", best, "--tgt", "de"],
        input="A dog.\nA caf\u00e9.\n".encode("latin-1"),
        env=ENV,
        capture_output=True,
        timeout=300,
    )
    assert (
        result.returncode == 2
        and b"stdin line 2 is not UTF-8" in result.stderr
        and b"Traceback" not in result.stderr
    )


def test_a_target_language_the_model_never_produced_is_a_warning(run, capsys, tmp_path):
    source = tmp_path / "in.en"
    source.write_text("A dog runs.\n")
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(run / "best.pt"),
                "--tgt",
                "fr",
                "--beam",
                "1",
                "--input",
                str(source),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert (
        captured.out.count("\n") == 1
        and "warning: " in captured.err
        and "trained to produce de, not fr" in captured.err
    )


def test_translating_nothing_gives_nothing(run):
    model, tokenizer, _ = pipeline.load(run / "best.pt")
    assert translate(model, tokenizer, [], "de") == []
    assert translate(model, tokenizer, [], "de", return_attention=True) == ([], [])


@pytest.mark.slow
def test_translate_streams_a_large_input(run):
    """Output appears while the input is still open, and every line read is answered."""
    command = [
        sys.executable,
        "-m",
        "tmtlib",
        "translate",
        "--checkpoint",
        str(run / "best.pt"),
        "--tgt",
        "de",
        "--beam",
        "1",
    ]
    worker = subprocess.Popen(command, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    sentences = [
        f"A dog runs on the grass number {i}.\n".encode() for i in range(10 * STREAM_LINES)
    ]
    worker.stdin.write(b"".join(sentences[:STREAM_LINES]))
    worker.stdin.flush()
    ready, _, _ = select.select([worker.stdout], [], [], 240)
    assert ready, "no output before the input ended: translate does not stream"
    # reads while it writes
    out, _ = worker.communicate(b"".join(sentences[STREAM_LINES:]), timeout=600)
    assert worker.returncode == 0 and out.count(b"\n") == len(sentences)


# --- 5. error messages that say what is true ------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)  # would create the marker file if it were ever unpickled


def test_checkpoint_errors_say_what_is_wrong(run, tmp_path, capsys):
    assert "is a folder, not a checkpoint file" in _error(
        ["translate", "--checkpoint", str(run), "--tgt", "de"], capsys
    )
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _Payload(tmp_path / "ran")}, evil)
    err = _error(["translate", "--checkpoint", str(evil), "--tgt", "de"], capsys)
    assert "not a plain-weights checkpoint" in err and "damaged" not in err
    assert not (tmp_path / "ran").exists()


def test_data_errors_with_a_mirror_do_not_send_the_user_online(tmp_path, monkeypatch):
    monkeypatch.setenv("TMT_HOME", str(tmp_path / "home"))
    with pytest.raises(data.DataUnavailable) as error:
        data.fetch(data.corpus_file(1, "val", "en"), mirror=tmp_path / "empty-mirror")
    assert "empty-mirror" in str(error.value) and "internet" not in str(error.value)


def test_a_vocabulary_mismatch_names_the_tensor_and_both_sizes():
    model = Seq2Seq(model_config("tiny", vocab_size=40))
    parent = {
        "model": Seq2Seq(model_config("tiny", vocab_size=60)).state_dict(),
        "tokenizer": "aaaa",
    }
    for fingerprint in ("bbbb", None):
        with pytest.raises(
            TransferError,
            match="mismatch on embed.weight: the source has a vocabulary of 60 "
            "pieces, this model 40",
        ):
            transfer(model, parent, tokenizer_fingerprint=fingerprint)


def test_an_unwritable_experiment_out_is_refused_before_training(mount, capsys, monkeypatch):
    read_only = mount(ro=True)
    monkeypatch.setattr(
        pipeline, "cached_run", lambda *a, **k: pytest.fail("trained before checking --out")
    )
    err = _error(
        [
            "experiment",
            "budgets",
            "--budgets",
            "1000",
            "--inits",
            "scratch",
            "--seeds",
            "0",
            "--out",
            str(read_only / "results"),
        ],
        capsys,
    )
    assert str(read_only / "results") in err
