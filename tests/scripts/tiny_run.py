"""A tiny, deterministic training run used by the crash-resume and torchrun tests.

Usage: python tiny_run.py OUT_DIR STEPS [--slow SECONDS] [--objective ae|lm|vae]
Writes OUT_DIR/final-rank{R}.pt (the model's weights) and OUT_DIR/final-loss.txt on rank 0.
"""

import argparse
import random
import time
from pathlib import Path

import torch

from tmtlib.batching import Example
from tmtlib.models import Seq2Seq, model_config
from tmtlib.objectives import make_objective
from tmtlib.train import TrainConfig, train, validation_loss


def examples(n: int = 96) -> list[Example]:
    rng = random.Random(0)
    seqs = [tuple(rng.randrange(10, 40) for _ in range(rng.randrange(3, 12))) for _ in range(n)]
    return [Example(s, s, 4) for s in seqs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("steps", type=int)
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--objective", default="ae")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    latent = 8 if args.objective == "vae" else 0
    model = Seq2Seq(model_config("tiny", vocab_size=40, dropout=0.1, latent_dim=latent))
    objective = make_objective(args.objective)
    data = examples()
    config = TrainConfig(
        max_steps=args.steps,
        max_tokens=120,
        lr=2e-3,
        warmup_steps=10,
        checkpoint_every=5,
        eval_every=1000,
        log_every=1,
        progress=False,
        seed=7,
    )
    pause = [lambda step, model: time.sleep(args.slow)] if args.slow else []
    train(model, objective, data, config, out_dir=args.out, callbacks=pause)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    torch.save(model.state_dict(), args.out / f"final-rank{rank}.pt")
    if rank == 0:
        torch.manual_seed(0)
        loss = validation_loss(model, objective, data)["val_loss"]
        (args.out / "final-loss.txt").write_text(repr(loss))


if __name__ == "__main__":
    main()
