r"""``python -m tmtlib`` (or ``tmt``): the course's pipeline from the command line, at any scale.

    python -m tmtlib pretrain --objective dae --langs en de --out runs/dae --max-minutes 30
    python -m tmtlib finetune --src en --tgt de --pairs 3000 --init runs/dae/best.pt --out runs/ft
    python -m tmtlib translate --checkpoint runs/ft/best.pt --tgt de < input.en > output.de
    python -m tmtlib evaluate --checkpoint runs/ft/best.pt --src en --tgt de \
        --split test_2016_flickr
    python -m tmtlib experiment budgets --budgets 1000 3000 all --inits scratch dae --seeds 0 1 2

The training commands' flags are made from the fields of ``tmtlib.pipeline.PretrainSpec`` /
``FinetuneSpec`` and ``tmtlib.train.TrainConfig``: each flag's help is its field's declared
meaning, choices, limits and default (``tmtlib.validation.describe``), so the flags and the settings
never drift apart. Every training command also takes ``--config FILE`` (JSON or TOML with the
same keys as the flags; flags given on the command line win) and writes ``config.json`` beside its
checkpoints. Results are printed for people; ``--json`` prints one JSON object instead, for
scripts. ``--version`` prints the version.

Every setting is checked before anything is written or trained, and a run folder holds one run at a
time (a second command on it is refused). Under ``torchrun`` the training commands run
data-parallel. Errors (bad flags, bad settings, unreadable input, a full or read-only disk) are one
line on stderr and exit status 2; files already saved are never damaged. ``translate`` streams: it
writes one line out per line in, as it goes.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import inspect
import itertools
import json
import logging
import os
import sys
import time
import tomllib
import types
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, NoReturn

from . import checkpoint, course, data, pipeline, settings
from .evaluate import evaluate
from .models import PRECISIONS, Seq2Seq
from .subwords import LANGUAGES, normalize
from .train import TrainConfig
from .transfer import TransferError
from .validation import SettingError, describe, from_plain


def package_version() -> str:
    """The installed tmtlib's version; in a source tree that is not installed, pyproject.toml's."""
    try:
        return importlib.metadata.version("tmtlib")
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]


class _Parser(argparse.ArgumentParser):
    """argparse under the house rule for bad input: one line on stderr and exit status 2, not a
    usage block (``--help`` still shows it all)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def setting_names(cls: type) -> list[str]:
    """The fields of the settings dataclass ``cls`` that are flags: all but nested settings
    (``train``)."""
    hints = typing.get_type_hints(cls)
    return [f.name for f in fields(cls) if not is_dataclass(hints[f.name])]


METAVARS = {int: "N", float: "X"}


def _value_kind(hint: Any) -> dict[str, Any]:
    """How argparse reads a value of the type ``hint``: ``--flag/--no-flag`` for a bool, several
    values for a tuple (``--langs en de``), else one value of the type (None: the flag not
    given)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(hint) is tuple:
        items = typing.get_args(hint)
        return {**_value_kind(items[0]), "nargs": "+" if items[-1] is Ellipsis else len(items)}
    return {"type": hint, **({"metavar": METAVARS[hint]} if hint in METAVARS else {})}


def _add_setting_flags(group, cls: type, defaults: Any) -> None:
    """One flag per setting of ``cls`` (``--max-steps`` for ``max_steps``), with the help its field
    declares and the default of ``defaults``; a flag not given is None, so a config file's value
    stands."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    for name in setting_names(cls):
        # argparse %-formats help
        text = describe(by_name[name], getattr(defaults, name)).replace("%", "%%")
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=None,
            help=text,
            **_value_kind(hints[name]),
        )


def _add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the result as one JSON object on stdout, for scripts (default: text for "
        "people)",
    )


def _given(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The values of the flags ``names`` that were given on the command line."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _report(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    """Print a command's result: ``text`` for people, or with ``--json`` ``result`` as one JSON
    object."""
    print(json.dumps(result) if args.json else text)


def _read_config(path: Path | None) -> dict:
    """The settings of a JSON or TOML ``--config`` file (a table, possibly with a ``[train]``
    table)."""
    if path is None:
        return {}
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        text = _text_file(path).read_text(encoding="utf-8")
        values = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"config file {path} is not valid {kind}: {error}") from None
    if not isinstance(values, dict):
        raise SettingError(
            f"config file {path} must hold a table of settings, not {type(values).__name__}"
        )
    return values


def _train_config(args, file_values: dict, base: TrainConfig) -> TrainConfig:
    """The training settings: the config file's ``[train]`` table, then the flags, over ``base``."""
    table = file_values.get("train", {})
    if not isinstance(table, dict):
        raise SettingError(f"train must be a table of TrainConfig settings, not {table!r}")
    values = {**table, **_given(args, setting_names(TrainConfig))}
    return from_plain(TrainConfig, values, base)


def _spec(cls, args):
    """The run's spec: its defaults, then the config file, then the flags; every value checked
    (one line on error)."""
    file_values = _read_config(args.config)
    values = {k: v for k, v in file_values.items() if k != "train"}
    values.update(_given(args, setting_names(cls)))
    values["train"] = _train_config(args, file_values, cls().train)
    return pipeline.spec_from_dict(cls, values)


def _report_run(args, evals: list[dict[str, float]]) -> None:
    """The run folder and its last evaluation (``{"out": ..., "step": ..., "val_loss": ...}`` with
    ``--json``)."""
    last = evals[-1] if evals else {}
    numbers = ", ".join(
        f"{key} {value:.4g}" for key, value in last.items() if key not in ("step", "time")
    )
    text = (
        f"{args.out}: step {last['step']}: {numbers}" if last else f"{args.out}: no evaluation yet"
    )
    _report(args, {"out": str(args.out), **last}, text)


def cmd_pretrain(args) -> None:
    _, history = pipeline.pretrain(_spec(pipeline.PretrainSpec, args), args.out)
    _report_run(args, history.evals)


def cmd_finetune(args) -> None:
    _, history, report = pipeline.finetune(_spec(pipeline.FinetuneSpec, args), args.out)
    if report is not None:
        print(report.summary(), file=sys.stderr)
    _report_run(args, history.evals)


STREAM_LINES = 256  # lines translated at a time: output appears as it goes and memory stays bounded


def _text_file(path: Path) -> Path:
    """``path`` if it is a file; a directory or a missing path is one clear ValueError."""
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a file")
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    return path


def _lines(path: Path | None) -> Iterator[str]:
    """The lines of a UTF-8 text file (stdin when None), read as they come.

    Lines end at "\n" alone, as for ``wc -l`` and every Unix tool (``str.splitlines`` would also
    split at U+2028, U+0085, \x1c and others, and so misalign files); a final "\r" is dropped.
    Bytes that are not UTF-8 are a ValueError naming the file and the line.
    """
    name = str(path) if path else "stdin"
    with open(_text_file(path), "rb") if path else nullcontext(sys.stdin.buffer) as handle:
        for number, raw in enumerate(handle, 1):
            try:
                yield raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{name} line {number} is not UTF-8 text (byte {raw[error.start]:#04x} at "
                    f"column {error.start + 1}): convert it, e.g. with iconv"
                ) from None


def _sentences(path: Path | None) -> Iterator[str]:
    """The normalised lines of ``path`` (stdin when None); an empty line is a ValueError."""
    for number, line in enumerate(_lines(path), 1):
        sentence = normalize(line)
        if not sentence:
            raise ValueError(
                f"{path or 'stdin'} line {number} is empty: give one sentence per line"
            )
        yield sentence


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _warn_if_untrained(checkpoint_path: Path, metadata: dict, tgt: str) -> None:
    """A warning (not an error) when the checkpoint never learned to produce ``tgt``."""
    produced = pipeline.output_languages(metadata)
    if produced is not None and tgt not in produced:
        print(
            f"tmt translate: warning: {checkpoint_path} was trained to produce "
            f"{', '.join(produced)}, not {tgt}: expect poor output",
            file=sys.stderr,
        )


def cmd_translate(args) -> None:
    """Translate line by line, in batches of ``STREAM_LINES``: as many lines out as in."""
    from .decode import translate

    model, tokenizer, metadata = pipeline.load(args.checkpoint)
    tokenizer.lang_id(args.tgt)  # an unknown language fails before any work
    _warn_if_untrained(args.checkpoint, metadata, args.tgt)
    model, precision = _decoding(model, args.precision)
    if args.input:
        # a file is checked whole before any output
        collections.deque(_sentences(args.input), maxlen=0)
    count = 0
    for batch in _batches(_sentences(args.input), STREAM_LINES):
        outputs = translate(
            model, tokenizer, batch, args.tgt, beam_size=args.beam, precision=precision
        )
        sys.stdout.write("".join(out + "\n" for out in outputs))
        sys.stdout.flush()
        count += len(batch)
    if not count:
        raise ValueError("no input: give one sentence per line")


def _checkpoint_scores(args) -> tuple[dict[str, Any], str]:
    """Decode ``args.split`` with the checkpoint and score it: (its numbers, a line about the
    decoding)."""
    if args.hyp_out:
        checkpoint.check_writable(args.hyp_out)  # before the decoding, not after it
    model, tokenizer, _ = pipeline.load(args.checkpoint)
    model, precision = _decoding(model, args.precision)
    started = time.perf_counter()
    hyps, scores = pipeline.scores_on_test(
        model, tokenizer, args.src, args.tgt, args.split, args.beam, precision=precision
    )
    seconds = time.perf_counter() - started
    if args.hyp_out:
        checkpoint.write_text_atomic("".join(h + "\n" for h in hyps), args.hyp_out)
    result = {
        "split": args.split,
        "sentences": len(hyps),
        "beam": args.beam,
        "seconds": round(seconds, 3),
        "scores": scores,
    }
    return result, (
        f"{args.split}: {len(hyps)} sentences, beam {args.beam}: {seconds:.1f} s "
        f"({len(hyps) / seconds:.1f} sentences/s, scoring included)\n"
    )


def _file_scores(args) -> tuple[dict[str, Any], str]:
    """Score the lines of ``args.hyp`` against those of ``args.ref``: (the numbers, no extra
    line)."""
    hyps, refs = list(_lines(args.hyp)), list(_lines(args.ref))
    if len(hyps) != len(refs):
        raise ValueError(f"{args.hyp} has {len(hyps)} lines but {args.ref} has {len(refs)}")
    return {
        "hyp": str(args.hyp),
        "ref": str(args.ref),
        "sentences": len(hyps),
        "scores": evaluate(hyps, refs),
    }, ""


def cmd_evaluate(args) -> None:
    """sacreBLEU's BLEU, chrF and chrF++ (with their signatures) of a checkpoint on a split, or of
    files."""
    if args.checkpoint:
        result, text = _checkpoint_scores(args)
    elif args.hyp and args.ref:
        result, text = _file_scores(args)
    else:
        raise ValueError("give --checkpoint (with --src/--tgt/--split) or both --hyp and --ref")
    text += "\n".join(str(score) for score in result["scores"].values())
    result["scores"] = {name: asdict(score) for name, score in result["scores"].items()}
    _report(args, result, text)


EXPERIMENT_FLAGS = {
    "seeds": "--seeds",
    "budgets": "--budgets",
    "inits": "--inits",
    "children": "--children",
    "names": "--strategies",
    "targets": "--targets",
    "precision": "--precision",
    "runs": "--runs",
    "presets": "--presets",
}


def _experiment_options(args) -> dict[str, Any]:
    """The family's options given on the command line, keyed as the family functions name them;
    a flag the family does not take is a ValueError."""
    from . import experiments

    given = {key: getattr(args, flag.removeprefix("--")) for key, flag in EXPERIMENT_FLAGS.items()}
    given = {key: value for key, value in given.items() if value is not None}
    # None: pretraining and the VAE measurements, not grids of cells
    family = experiments.FAMILIES.get(args.family)
    accepted = (
        inspect.signature(family).parameters
        if family
        else {"runs"}
        if args.family == "vae-diagnostics"
        else {}
    )
    unused = [EXPERIMENT_FLAGS[key] for key in given if key not in accepted]
    if unused:
        raise ValueError(f"the {args.family} family does not take {', '.join(unused)}")
    return given


def cmd_experiment(args) -> None:
    from . import experiments

    options = _experiment_options(args)
    result: dict[str, Any] = {
        "family": args.family,
        "out": str(args.out or experiments.results_dir()),
    }
    if args.family == "vae-diagnostics":
        records = experiments.run_vae_diagnostics(
            args.out, options.get("runs", experiments.VAE_RUNS)
        )
        _report(args, {**result, "runs": records}, experiments.vae_diagnostics_table(records))
    elif args.family == "pretraining":
        rows = experiments.run_pretraining(args.out)
        _report(
            args,
            {**result, "rows": rows},
            "\n".join(
                f"{row['run']}: validation loss {row['val_loss']:.3f} per token" for row in rows
            ),
        )
    else:
        cells = experiments.FAMILIES[args.family](**options)
        rows = experiments.run_family(args.family, cells, args.out)
        _report(args, {**result, "rows": rows}, experiments.markdown_table(rows))


def _add_training_command(commands, name: str, summary: str, spec_class: type, run) -> None:
    """``pretrain`` or ``finetune``: a flag per setting of ``spec_class`` and of its TrainConfig."""
    described = spec_class.__doc__.splitlines()[0].replace("``", "")
    parser = commands.add_parser(name, help=summary, description=f"{summary}. {described}")
    defaults = spec_class()
    _add_setting_flags(
        parser.add_argument_group(f"run ({spec_class.__name__})"), spec_class, defaults
    )
    _add_setting_flags(
        parser.add_argument_group("training (TrainConfig)"), TrainConfig, defaults.train
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="JSON or TOML file of these settings (training ones under "
        "[train]); flags given win over it",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="run folder: checkpoints, config, history; rerun the command to resume",
    )
    _add_json_flag(parser)
    parser.set_defaults(run=run)


def _add_decoding_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--beam", type=int, default=5, metavar="K", help="beam size; 1: greedy search (default: 5)"
    )
    parser.add_argument(
        "--precision",
        choices=[*PRECISIONS, "int8"],
        default="fp32",
        help="bf16: faster on hardware with native bf16; int8: int8 weights (dynamic "
        "quantisation), faster on any x86 CPU, outputs may differ slightly (default: fp32)",
    )


def _decoding(model: Seq2Seq, precision: str) -> tuple[Seq2Seq, str]:
    """The model to decode with and the precision to decode in: for ``int8``, an int8 copy of
    ``model`` (``tmtlib.quantize``) that runs outside bf16 autocast."""
    if precision != "int8":
        return model, precision
    from .quantize import Int8Seq2Seq

    return Int8Seq2Seq(model), "fp32"


def _add_translate(commands) -> None:
    tr = commands.add_parser("translate", help="translate lines from a file or stdin to stdout")
    tr.add_argument("--checkpoint", type=Path, required=True, help="a run's best.pt or last.pt")
    tr.add_argument("--tgt", required=True, help=f"target language ({', '.join(LANGUAGES)})")
    _add_decoding_flags(tr)
    tr.add_argument("--input", type=Path, help="input file, one sentence per line (default: stdin)")
    tr.set_defaults(run=cmd_translate)


def _add_evaluate(commands) -> None:
    ev = commands.add_parser(
        "evaluate", help="sacreBLEU/chrF of a checkpoint on a split, or of files"
    )
    ev.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint that translates --split (or give --hyp and --ref)",
    )
    ev.add_argument("--src", default="en", help="source language (default: en)")
    ev.add_argument("--tgt", default="de", help="target language (default: de)")
    ev.add_argument(
        "--split",
        default="test_2016_flickr",
        help="Multi30k split scored (default: test_2016_flickr)",
    )
    _add_decoding_flags(ev)
    ev.add_argument("--hyp-out", type=Path, help="write the hypotheses here")
    ev.add_argument(
        "--hyp", type=Path, help="file of hypotheses, one per line (scored against --ref)"
    )
    ev.add_argument("--ref", type=Path, help="file of references, line by line with --hyp")
    _add_json_flag(ev)
    ev.set_defaults(run=cmd_evaluate)


def _add_names(
    parser: argparse.ArgumentParser, flag: str, choices: Iterable[str], meaning: str
) -> None:
    """A flag of one or more names from a long list of ``choices``, listed in its help, not its
    usage."""
    parser.add_argument(
        flag,
        nargs="+",
        choices=list(choices),
        metavar="NAME",
        help=f"{meaning}; one or more of {', '.join(choices)}",
    )


# the experiment families, as ``tmt experiment --help`` describes them
FAMILY_HELP = (
    "budgets: en->de BLEU against parallel pairs, per initialisation (notebook 6); crosslingual: "
    "en->de parent to en->fr/en->cs children (notebook 7); strategies: fine-tuning strategies for "
    "the en->fr child (notebook 8); full: en->X on all pairs for about 60 minutes; sizes: smaller "
    "models than the course's on 3,000 en->de pairs (notebook 10); pretraining: "
    "the course's pretraining runs and the VAE with/without remedies; vae-diagnostics: those VAEs "
    "measured (sampled ELBO, IW bound, active units, I(x;z), shuffled z)"
)


EXPERIMENT_FAMILIES = (
    "budgets",
    "crosslingual",
    "strategies",
    "full",
    "sizes",
    "pretraining",
    "vae-diagnostics",
)


def _add_experiment(commands) -> None:
    ex = commands.add_parser(
        "experiment", help="run an experiment family (cached, resumable) and write its results"
    )
    ex.add_argument("family", choices=EXPERIMENT_FAMILIES, help=FAMILY_HELP)
    ex.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="N",
        help="training seeds of every cell (default: the family's)",
    )
    ex.add_argument(
        "--budgets",
        nargs="+",
        metavar="PAIRS",
        help="parallel pairs per cell, or 'all' (budgets family)",
    )
    _add_names(
        ex,
        "--inits",
        ["scratch", *course.INIT_PARTS],
        "starting points compared (default: the family's)",
    )
    ex.add_argument(
        "--children",
        nargs="+",
        choices=["fr", "cs"],
        help="child pairs en->X (crosslingual; default: fr cs)",
    )
    _add_names(
        ex,
        "--strategies",
        pipeline.STRATEGIES,
        "fine-tuning strategies compared (strategies family; default: all)",
    )
    ex.add_argument(
        "--targets",
        nargs="+",
        choices=["de", "fr", "cs"],
        help="pairs en->X trained (full family; default: de)",
    )
    ex.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        help="training precision of the full family's hour (default: fp32)",
    )
    _add_names(
        ex,
        "--presets",
        [name for name in pipeline.PRESET_NAMES if name != "course"],
        "model sizes trained besides the course model's budgets runs (sizes; default: tiny small)",
    )
    _add_names(ex, "--runs", course.VAE_RUNS, "VAEs measured (vae-diagnostics; default: all)")
    ex.add_argument(
        "--out", type=Path, help="results folder (default data/results; quick mode: the cache)"
    )
    _add_json_flag(ex)
    ex.set_defaults(run=cmd_experiment)


def build_parser() -> argparse.ArgumentParser:
    """The ``tmt`` command line: its sub-commands, every option with a help text."""
    parser = _Parser(prog="tmt", description=__doc__.split("\n\n")[0].replace("``", ""))
    parser.add_argument(
        "--version",
        action="version",
        version=f"tmt {package_version()}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_training_command(
        commands,
        "pretrain",
        "pretrain on monolingual text (ae, dae, vae, lm)",
        pipeline.PretrainSpec,
        cmd_pretrain,
    )
    _add_training_command(
        commands,
        "finetune",
        "train a translator, from scratch or a checkpoint",
        pipeline.FinetuneSpec,
        cmd_finetune,
    )
    _add_translate(commands)
    _add_evaluate(commands)
    _add_experiment(commands)
    return parser


EXPECTED_ERRORS = (ValueError, checkpoint.CheckpointError, TransferError, data.DataUnavailable)


def _file_error(error: OSError) -> str:
    """One line for a file-system failure (a full disk, a read-only folder): the path and the
    reason."""
    where = f"{error.filename}: " if error.filename else ""
    hint = ""
    if isinstance(error.filename, str) and Path(error.filename).resolve().is_relative_to(
        settings.home().resolve()
    ):
        hint = f" (the data cache {settings.home()}: set TMT_HOME to a writable folder)"
    return f"{where}{error.strerror or error}{hint}"


@contextmanager
def _progress_on_stderr() -> Iterator[None]:
    """While a command runs, tmtlib's log records (an experiment's "[3/12] run" lines) go to
    stderr as plain lines, at INFO and above; afterwards the logging setup is as it was, so a
    program that calls ``main`` keeps its own."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package = logging.getLogger("tmtlib")
    level = package.level
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0, 2 for bad input, 130 when interrupted)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a bad flag (one line already on stderr)
        return int(exit_.code or 0)
    try:
        with _progress_on_stderr():
            args.run(args)
    except EXPECTED_ERRORS as error:
        print(f"tmt {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (
        BrokenPipeError
    ):  # the reader of the output left (``| head``): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:
        print(f"tmt {args.command}: error: {_file_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"tmt {args.command}: interrupted; the last checkpoint is intact, rerun to resume",
            file=sys.stderr,
        )
        return 130
    return 0
