"""``python -m tmtlib`` (or ``tmt``): the course's pipeline from the command line, at any scale.

    python -m tmtlib pretrain --objective dae --langs en de --out runs/dae --max-minutes 30
    python -m tmtlib finetune --src en --tgt de --pairs 3000 --init runs/dae/best.pt --out runs/ft
    python -m tmtlib translate --checkpoint runs/ft/best.pt --tgt de < input.en > output.de
    python -m tmtlib evaluate --checkpoint runs/ft/best.pt --src en --tgt de --split test_2016_flickr
    python -m tmtlib experiment budgets --budgets 1000 3000 all --inits scratch dae --seeds 0 1 2

Every training command also takes ``--config FILE`` (JSON or TOML with the same keys as the
flags; flags given on the command line win) and writes ``config.json`` beside its checkpoints.
Every setting is checked before anything is written or trained, and a run folder holds one run
at a time (a second command on it is refused). Under ``torchrun`` the training commands run
data-parallel. Errors (bad settings, unreadable input, a full or read-only disk) are one line on
stderr and exit status 2; files already saved are never damaged. ``translate`` streams: it writes
one line out per line in, as it goes.
"""

from __future__ import annotations

import argparse
import collections
import inspect
import itertools
import json
import os
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import fields
from pathlib import Path

from . import checkpoint, course, data, pipeline, settings
from .evaluate import evaluate
from .models import PRECISIONS
from .objectives import KL_SCHEDULES
from .subwords import LANGUAGES, normalize
from .train import TrainConfig
from .transfer import PARTS, TransferError
from .validation import SettingError, from_plain

TRAIN_FLAGS = {f.name for f in fields(TrainConfig)} - {"betas", "progress"}


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    for f in fields(TrainConfig):
        if f.name not in TRAIN_FLAGS:
            continue
        kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" |")[0].strip("'"), str)
        group.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None, help=f"default {f.default}")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--config", type=Path, help="JSON or TOML file of settings")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, config, history")


def _read_config(path: Path | None) -> dict:
    """The settings of a JSON or TOML ``--config`` file (a table, possibly with a ``[train]`` table)."""
    if path is None:
        return {}
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        text = _text_file(path).read_text(encoding="utf-8")
        values = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"config file {path} is not valid {kind}: {error}") from None
    if not isinstance(values, dict):
        raise SettingError(f"config file {path} must hold a table of settings, not {type(values).__name__}")
    return values


def _train_config(args, file_values: dict, base: TrainConfig) -> TrainConfig:
    """The training settings: the config file's ``[train]`` table, then the flags, over ``base``."""
    table = file_values.get("train", {})
    if not isinstance(table, dict):
        raise SettingError(f"train must be a table of TrainConfig settings, not {table!r}")
    values = {**table, **{k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}}
    if args.no_progress:
        values["progress"] = False
    return from_plain(TrainConfig, values, base)


def _spec(cls, args, names: list[str], base_train: TrainConfig):
    """The run's spec: the config file, then the flags; every value checked (one line on error)."""
    file_values = _read_config(args.config)
    values = {k: v for k, v in file_values.items() if k != "train"}
    values.update({k: getattr(args, k) for k in names if getattr(args, k) is not None})
    values["train"] = _train_config(args, file_values, base_train)
    return pipeline.spec_from_dict(cls, values)


PRETRAIN_FLAGS = ["objective", "langs", "preset", "sentences_per_lang", "include_task1_train", "latent_dim",
                  "kl_schedule", "kl_warmup", "max_beta", "free_bits", "word_dropout", "mask_p", "infill_ratio",
                  "shuffle_k", "delete_p"]
FINETUNE_FLAGS = ["src", "tgt", "pairs", "subset_seed", "preset", "init", "parts", "label_smoothing", "bleu_sentences",
                  "task", "strategy"]


def cmd_pretrain(args) -> None:
    spec = _spec(pipeline.PretrainSpec, args, PRETRAIN_FLAGS, TrainConfig())
    _, history = pipeline.pretrain(spec, args.out)
    last = history.evals[-1] if history.evals else {}
    print(json.dumps({"out": str(args.out), **last}))


def cmd_finetune(args) -> None:
    spec = _spec(pipeline.FinetuneSpec, args, FINETUNE_FLAGS, TrainConfig(select="val_bleu"))
    _, history, report = pipeline.finetune(spec, args.out)
    if report is not None:
        print(report.summary(), file=sys.stderr)
    last = history.evals[-1] if history.evals else {}
    print(json.dumps({"out": str(args.out), **last}))


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
                raise ValueError(f"{name} line {number} is not UTF-8 text (byte {raw[error.start]:#04x} at "
                                 f"column {error.start + 1}): convert it, e.g. with iconv") from None


def _sentences(path: Path | None) -> Iterator[str]:
    """The normalised lines of ``path`` (stdin when None); an empty line is a ValueError."""
    for number, line in enumerate(_lines(path), 1):
        sentence = normalize(line)
        if not sentence:
            raise ValueError(f"{path or 'stdin'} line {number} is empty: give one sentence per line")
        yield sentence


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _warn_if_untrained(checkpoint_path: Path, metadata: dict, tgt: str) -> None:
    """A warning (not an error) when the checkpoint never learned to produce ``tgt``."""
    produced = pipeline.output_languages(metadata)
    if produced is not None and tgt not in produced:
        print(f"tmt translate: warning: {checkpoint_path} was trained to produce {', '.join(produced)}, not {tgt}: "
              f"expect poor output", file=sys.stderr)


def cmd_translate(args) -> None:
    """Translate line by line, in batches of ``STREAM_LINES``: as many lines out as in."""
    from .decode import translate

    model, tokenizer, metadata = pipeline.load(args.checkpoint)
    tokenizer.lang_id(args.tgt)  # an unknown language fails before any work
    _warn_if_untrained(args.checkpoint, metadata, args.tgt)
    if args.input:
        collections.deque(_sentences(args.input), maxlen=0)  # a file is checked whole before any output
    count = 0
    for batch in _batches(_sentences(args.input), STREAM_LINES):
        outputs = translate(model, tokenizer, batch, args.tgt, beam_size=args.beam, precision=args.precision)
        sys.stdout.write("".join(out + "\n" for out in outputs))
        sys.stdout.flush()
        count += len(batch)
    if not count:
        raise ValueError("no input: give one sentence per line")


def cmd_evaluate(args) -> None:
    if args.checkpoint:
        if args.hyp_out:
            checkpoint.check_writable(args.hyp_out)  # before the decoding, not after it
        model, tokenizer, _ = pipeline.load(args.checkpoint)
        started = time.perf_counter()
        hyps, scores = pipeline.test_scores(model, tokenizer, args.src, args.tgt, args.split, args.beam,
                                            precision=args.precision)
        seconds = time.perf_counter() - started
        print(f"{args.split}: {len(hyps)} sentences, beam {args.beam}: {seconds:.1f} s "
              f"({len(hyps) / seconds:.1f} sentences/s, scoring included)")
        if args.hyp_out:
            checkpoint.write_text_atomic("".join(h + "\n" for h in hyps), args.hyp_out)
    elif args.hyp and args.ref:
        hyps, refs = list(_lines(args.hyp)), list(_lines(args.ref))
        if len(hyps) != len(refs):
            raise ValueError(f"{args.hyp} has {len(hyps)} lines but {args.ref} has {len(refs)}")
        scores = evaluate(hyps, refs)
    else:
        raise ValueError("give --checkpoint (with --src/--tgt/--split) or both --hyp and --ref")
    for score in scores.values():
        print(score)


def cmd_experiment(args) -> None:
    from . import experiments

    options = {"seeds": args.seeds, "budgets": args.budgets, "inits": args.inits, "children": args.children,
               "names": args.strategies, "targets": args.targets, "precision": args.precision, "runs": args.runs}
    flags = {"seeds": "--seeds", "budgets": "--budgets", "inits": "--inits", "children": "--children",
             "names": "--strategies", "targets": "--targets", "precision": "--precision", "runs": "--runs"}
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    family = experiments.FAMILIES.get(args.family)  # None: pretraining and the VAE measurements, not grids of cells
    accepted = inspect.signature(family).parameters if family else {"runs"} if args.family == "vae-diagnostics" else {}
    unused = [flags[k] for k, v in options.items() if v is not None and k not in accepted]
    if unused:
        raise ValueError(f"the {args.family} family does not take {', '.join(unused)}")
    if args.family == "vae-diagnostics":
        records = experiments.run_vae_diagnostics(args.out, args.runs or experiments.VAE_RUNS, log=log)
        print(experiments.vae_diagnostics_table(records))
        return
    if family is None:
        rows = experiments.run_pretraining(args.out, log=log)
        print("\n".join(f"{row['run']}: validation loss {row['val_loss']:.3f} per token" for row in rows))
        return
    cells = family(**{k: v for k, v in options.items() if v is not None})
    rows = experiments.run_family(args.family, cells, args.out, log=log)
    print(experiments.markdown_table(rows))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tmt", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    pre = commands.add_parser("pretrain", help="pretrain on monolingual text (ae, dae, vae, lm)")
    pre.add_argument("--objective", choices=pipeline.PRETRAINING_OBJECTIVES)
    pre.add_argument("--langs", nargs="+", choices=LANGUAGES)
    pre.add_argument("--preset", choices=pipeline.PRESET_NAMES)
    pre.add_argument("--sentences-per-lang", type=int)
    pre.add_argument("--include-task1-train", action="store_true", default=None)
    pre.add_argument("--latent-dim", type=int)
    pre.add_argument("--kl-schedule", choices=KL_SCHEDULES)
    pre.add_argument("--kl-warmup", type=int)
    pre.add_argument("--max-beta", type=float)
    pre.add_argument("--free-bits", type=float)
    pre.add_argument("--word-dropout", type=float)
    pre.add_argument("--mask-p", type=float)
    pre.add_argument("--infill-ratio", type=float)
    pre.add_argument("--shuffle-k", type=int)
    pre.add_argument("--delete-p", type=float)
    _add_train_flags(pre)
    pre.set_defaults(run=cmd_pretrain)

    fine = commands.add_parser("finetune", help="train a translator, from scratch or a checkpoint")
    fine.add_argument("--src", choices=LANGUAGES)
    fine.add_argument("--tgt", choices=LANGUAGES)
    fine.add_argument("--pairs", type=int, help="training pairs (a fixed seeded subset); all by default")
    fine.add_argument("--subset-seed", type=int)
    fine.add_argument("--preset", choices=pipeline.PRESET_NAMES)
    fine.add_argument("--init", help="checkpoint to initialise from (any objective, any pair)")
    fine.add_argument("--parts", nargs="+", choices=list(PARTS), help="parts to transfer from --init")
    fine.add_argument("--label-smoothing", type=float)
    fine.add_argument("--bleu-sentences", type=int)
    fine.add_argument("--task", choices=list(pipeline.TASKS), help="translate (default) or paraphrase (src == tgt)")
    fine.add_argument("--strategy", choices=list(pipeline.STRATEGIES), help="how to fine-tune --init (default full)")
    _add_train_flags(fine)
    fine.set_defaults(run=cmd_finetune)

    tr = commands.add_parser("translate", help="translate lines from a file or stdin to stdout")
    tr.add_argument("--checkpoint", type=Path, required=True)
    tr.add_argument("--tgt", required=True)
    tr.add_argument("--beam", type=int, default=5)
    tr.add_argument("--precision", choices=list(PRECISIONS), default="fp32", help="bf16: faster on hardware with bf16")
    tr.add_argument("--input", type=Path, help="input file (default: stdin)")
    tr.set_defaults(run=cmd_translate)

    ev = commands.add_parser("evaluate", help="sacreBLEU/chrF of a checkpoint on a split, or of files")
    ev.add_argument("--checkpoint", type=Path)
    ev.add_argument("--src", default="en")
    ev.add_argument("--tgt", default="de")
    ev.add_argument("--split", default="test_2016_flickr")
    ev.add_argument("--beam", type=int, default=5)
    ev.add_argument("--precision", choices=list(PRECISIONS), default="fp32", help="bf16: faster on hardware with bf16")
    ev.add_argument("--hyp-out", type=Path, help="write the hypotheses here")
    ev.add_argument("--hyp", type=Path)
    ev.add_argument("--ref", type=Path)
    ev.set_defaults(run=cmd_evaluate)

    ex = commands.add_parser("experiment", help="run an experiment family (cached, resumable) and write its results")
    ex.add_argument("family", choices=["budgets", "crosslingual", "strategies", "full", "pretraining", "vae-diagnostics"],
                    help="full: en->de on all pairs for about 60 minutes; "
                         "pretraining: the course's pretraining runs and the VAE with/without remedies; "
                         "vae-diagnostics: those VAEs measured (sampled ELBO, IW bound, active units, I(x;z), shuffled z)")
    ex.add_argument("--seeds", type=int, nargs="+")
    ex.add_argument("--budgets", nargs="+", help="parallel pairs per cell, or 'all' (budgets family)")
    ex.add_argument("--inits", nargs="+", choices=["scratch", *course.INIT_PARTS])
    ex.add_argument("--children", nargs="+", choices=["fr", "cs"], help="child pairs en->X (crosslingual)")
    ex.add_argument("--strategies", nargs="+", choices=list(pipeline.STRATEGIES))
    ex.add_argument("--targets", nargs="+", choices=["de", "fr", "cs"], help="pairs en->X trained (full family)")
    ex.add_argument("--precision", choices=list(PRECISIONS), help="training precision of the full family's hour")
    ex.add_argument("--runs", nargs="+", choices=list(course.VAE_RUNS), help="VAEs measured (vae-diagnostics)")
    ex.add_argument("--out", type=Path, help="results folder (default data/results; quick mode: the cache)")
    ex.set_defaults(run=cmd_experiment)
    return parser


EXPECTED_ERRORS = (ValueError, checkpoint.CheckpointError, TransferError, data.DataUnavailable)


def _file_error(error: OSError) -> str:
    """One line for a file-system failure (a full disk, a read-only folder): the path and the reason."""
    where = f"{error.filename}: " if error.filename else ""
    hint = ""
    if isinstance(error.filename, str) and Path(error.filename).resolve().is_relative_to(settings.home().resolve()):
        hint = f" (the data cache {settings.home()}: set TMT_HOME to a writable folder)"
    return f"{where}{error.strerror or error}{hint}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except EXPECTED_ERRORS as error:
        print(f"tmt {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of the output left (``| head``): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:
        print(f"tmt {args.command}: error: {_file_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tmt {args.command}: interrupted; the last checkpoint is intact, rerun to resume", file=sys.stderr)
        return 130
    return 0
