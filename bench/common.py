"""Shared pieces of the benchmarks: the same batches, the same model sizes, three engines.

Every benchmark compares tmtlib with the two models a user would otherwise pick at the same size:
Hugging Face ``transformers`` (``BartForConditionalGeneration``, trained with the usual loop and
decoded with ``generate``) and a plain ``torch.nn.Transformer``. Sizes are the course preset
(256 wide, 3+3 layers, 4 heads, FFN 1024, the course's 8,000-piece vocabulary, tied embeddings,
dropout 0.1).

An engine name may end in ``-bf16``: the same engine under bf16 autocast (matrix products in
bfloat16, the rest in fp32; ``tmtlib.models.autocast``), which pays on CPUs with native bf16.
Without the suffix an engine runs in fp32, HF's and PyTorch's default on the CPU.
"""

from __future__ import annotations

import json
import math
import platform
import random
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tmtlib import data
from tmtlib.batching import Batch, collate, token_batches
from tmtlib.models import PRESETS, Seq2Seq, autocast, model_config
from tmtlib.objectives import Translation, translation_examples
from tmtlib.pipeline import course_tokenizer
from tmtlib.subwords import BOS_ID, EOS_ID, PAD_ID

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = PRESETS["course"]


def real_batches(n: int, max_tokens: int = 4096, seed: int = 0) -> list[Batch]:
    """``n`` token-bucketed batches of the real en->de training data (the course's batching)."""
    tokenizer = course_tokenizer()
    examples = translation_examples(tokenizer, data.load_parallel("en", "de", "train"), "de")
    groups = token_batches([e.size for e in examples], max_tokens, seed=seed)[:n]
    return [collate([examples[i] for i in group]) for group in groups]


def sentence_batches(examples: list, batch_size: int, rng: random.Random) -> Iterator[list]:
    """HF's usual batching (its translation examples and ``DataCollatorForSeq2Seq``): one epoch of
    the examples in random order, ``batch_size`` sentences per batch, each batch padded to its
    longest sentence when collated."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    for start in range(0, len(order), batch_size):
        yield [examples[i] for i in order[start : start + batch_size]]


def usual_hf_batches(n: int, batch_size: int = 64, seed: int = 0) -> list[Batch]:
    """``n`` batches of the real en->de training data as HF's usual recipe forms them."""
    examples = translation_examples(
        course_tokenizer(), data.load_parallel("en", "de", "train"), "de"
    )
    groups = sentence_batches(examples, batch_size, random.Random(seed))
    return [collate(next(groups)) for _ in range(n)]


def tmtlib_model(vocab_size: int) -> Seq2Seq:
    return Seq2Seq(model_config("course", vocab_size))


def hf_model(vocab_size: int):
    """BART of the course's size (post-LN, learned positions: BART's own design)."""
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(
        vocab_size=vocab_size,
        d_model=SIZE["d_model"],
        encoder_layers=SIZE["n_encoder_layers"],
        decoder_layers=SIZE["n_decoder_layers"],
        encoder_attention_heads=SIZE["n_heads"],
        decoder_attention_heads=SIZE["n_heads"],
        encoder_ffn_dim=SIZE["d_ff"],
        decoder_ffn_dim=SIZE["d_ff"],
        max_position_embeddings=512,
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
        activation_function="gelu",
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=BOS_ID,
        forced_eos_token_id=None,
        tie_word_embeddings=True,
        scale_embedding=True,
    )
    return BartForConditionalGeneration(config)


class TorchTransformer(nn.Module):
    """``torch.nn.Transformer`` with tied embeddings and sinusoidal positions, pre-LN like
    tmtlib."""

    def __init__(self, vocab_size: int):
        super().__init__()
        d = SIZE["d_model"]
        self.embed = nn.Embedding(vocab_size, d, padding_idx=PAD_ID)
        self.core = nn.Transformer(
            d,
            SIZE["n_heads"],
            SIZE["n_encoder_layers"],
            SIZE["n_decoder_layers"],
            SIZE["d_ff"],
            dropout=0.1,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        position = torch.arange(512).unsqueeze(1)
        freq = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        table = torch.zeros(512, d)
        table[:, 0::2], table[:, 1::2] = torch.sin(position * freq), torch.cos(position * freq)
        self.register_buffer("positions", table, persistent=False)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return (
            self.embed(ids) * math.sqrt(self.embed.embedding_dim) + self.positions[: ids.shape[1]]
        )

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1], dtype=torch.bool)
        hidden = self.core(
            self._embed(src),
            self._embed(tgt_in),
            tgt_mask=causal,
            src_key_padding_mask=src.eq(PAD_ID),
            tgt_key_padding_mask=tgt_in.eq(PAD_ID),
            memory_key_padding_mask=src.eq(PAD_ID),
            tgt_is_causal=True,
        )
        return hidden @ self.embed.weight.T


def engine_parts(engine: str) -> tuple[str, str]:
    """The implementation and precision of an engine name: ``tmtlib-bf16`` -> ``(tmtlib, bf16)``."""
    implementation, _, precision = engine.partition("-")
    if implementation not in ENGINES or precision not in ("", "bf16"):
        raise ValueError(
            f"unknown engine {engine!r}: one of {', '.join(ENGINES)}, optionally with -bf16"
        )
    return implementation, precision or "fp32"


def build(engine: str, vocab_size: int) -> nn.Module:
    """A freshly initialised model of ``engine`` at the course's size."""
    return ENGINES[engine_parts(engine)[0]](vocab_size)


def smoothed_cross_entropy(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Cross-entropy of ``logits`` against the batch's targets with label smoothing 0.1, padding
    ignored: the loss of tmtlib's translation objective, for the other engines."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        batch.tgt_out.reshape(-1),
        ignore_index=PAD_ID,
        label_smoothing=0.1,
    )


def hf_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """An HF encoder-decoder's ``smoothed_cross_entropy`` on ``batch`` (teacher forcing)."""
    logits = model(
        input_ids=batch.src,
        attention_mask=batch.src.ne(PAD_ID),
        decoder_input_ids=batch.tgt_in,
        decoder_attention_mask=batch.tgt_in.ne(PAD_ID),
    ).logits
    return smoothed_cross_entropy(logits, batch)


def training_step(
    engine: str, model: nn.Module, optimizer: torch.optim.Optimizer
) -> Callable[[Batch], float]:
    """One forward + backward + AdamW step of label-smoothed cross-entropy, for each engine (the
    forward under the engine's precision; the backward follows the forward's dtypes)."""
    objective = Translation(label_smoothing=0.1)
    implementation, precision = engine_parts(engine)

    def loss_of(batch: Batch) -> torch.Tensor:
        if implementation == "tmtlib":
            return objective.loss(model, batch).loss
        if implementation == "hf":
            return hf_loss(model, batch)
        return smoothed_cross_entropy(model(batch.src, batch.tgt_in), batch)

    def step(batch: Batch) -> float:
        with autocast(torch.device("cpu"), precision):
            loss = loss_of(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


ENGINES = {"tmtlib": tmtlib_model, "hf": hf_model, "torch": TorchTransformer}
ENGINE_CHOICES = ["tmtlib", "tmtlib-bf16", "hf", "hf-bf16", "torch"]


def matmul_peak(n: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of a large matrix product in ``dtype`` on this machine with the current thread
    count."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - started)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1]}


# the x86 vector extensions that decide which fp32, bf16 and int8 kernels a CPU runs
# (``/proc/cpuinfo`` names; the VNNI ones multiply-add int8 in one instruction, for tmtlib-int8)
VECTOR_EXTENSIONS = (
    "avx2",
    "fma",
    "avx_vnni",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def cpu() -> dict[str, str]:
    """The processor's model name and which of ``VECTOR_EXTENSIONS`` it has (Linux; "unknown"
    elsewhere): an fp32 timing on an AVX2-only laptop and one on an AVX-512 server are different
    claims."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or "unknown", "vector_extensions": "unknown"}
    fields = {
        key.strip(): value.strip()
        for key, value in (line.split(":", 1) for line in info.splitlines() if ":" in line)
    }
    flags = set(fields.get("flags", "").split())
    model = fields.get("model name", "unknown")
    return {
        "model": model,
        "vector_extensions": " ".join(e for e in VECTOR_EXTENSIONS if e in flags) or "none",
    }


def versions() -> dict[str, str]:
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": str(torch.get_num_threads()),
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        **{f"cpu_{key}": value for key, value in cpu().items()},
    }


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=1))
    return path


def hf_copy(model: Seq2Seq, decoder_start_id: int):
    """An HF ``M2M100ForConditionalGeneration`` holding exactly ``model``'s weights.

    M2M100 is the HF encoder-decoder whose design matches tmtlib's: pre-LN blocks with a final
    LayerNorm, sinusoidal positions, embeddings scaled by sqrt(D), tied input/output embeddings,
    GELU. Fused projections are split; the position table is replaced by tmtlib's (M2M100 numbers
    positions from ``pad + 1``). Both models then compute the same function, so decoding speed is
    compared on equal work and the outputs can be checked against each other.
    """
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    c = model.config
    config = M2M100Config(
        vocab_size=c.vocab_size,
        d_model=c.d_model,
        encoder_layers=c.n_encoder_layers,
        decoder_layers=c.n_decoder_layers,
        encoder_attention_heads=c.n_heads,
        decoder_attention_heads=c.n_heads,
        encoder_ffn_dim=c.d_ff,
        decoder_ffn_dim=c.d_ff,
        max_position_embeddings=c.max_len,
        activation_function="gelu",
        scale_embedding=True,
        encoder_layerdrop=0.0,
        decoder_layerdrop=0.0,
        pad_token_id=c.pad_id,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=decoder_start_id,
        tie_word_embeddings=True,
    )
    hf = M2M100ForConditionalGeneration(config).eval()
    ours = model.state_dict()
    theirs: dict[str, torch.Tensor] = {"model.shared.weight": ours["embed.weight"]}

    def linear(target: str, weight: torch.Tensor, bias: torch.Tensor) -> None:
        theirs[f"{target}.weight"], theirs[f"{target}.bias"] = weight, bias

    def norm(target: str, source: str) -> None:
        linear(target, ours[f"{source}.weight"], ours[f"{source}.bias"])

    def split(target: str, names: tuple[str, ...], source: str) -> None:
        weights, biases = (
            ours[f"{source}.weight"].chunk(len(names)),
            ours[f"{source}.bias"].chunk(len(names)),
        )
        for name, weight, bias in zip(names, weights, biases):
            linear(f"{target}.{name}", weight, bias)

    for side in ("encoder", "decoder"):
        for i in range(getattr(c, f"n_{side}_layers")):
            mine, hfs = f"{side}.layers.{i}", f"model.{side}.layers.{i}"
            split(f"{hfs}.self_attn", ("q_proj", "k_proj", "v_proj"), f"{mine}.self_attn.qkv")
            norm(f"{hfs}.self_attn.out_proj", f"{mine}.self_attn.out")
            norm(f"{hfs}.self_attn_layer_norm", f"{mine}.self_norm")
            norm(f"{hfs}.fc1", f"{mine}.ff.fc1")
            norm(f"{hfs}.fc2", f"{mine}.ff.fc2")
            norm(f"{hfs}.final_layer_norm", f"{mine}.ff_norm")
            if side == "decoder":
                norm(f"{hfs}.encoder_attn.q_proj", f"{mine}.cross_attn.q")
                split(f"{hfs}.encoder_attn", ("k_proj", "v_proj"), f"{mine}.cross_attn.kv")
                norm(f"{hfs}.encoder_attn.out_proj", f"{mine}.cross_attn.out")
                norm(f"{hfs}.encoder_attn_layer_norm", f"{mine}.cross_norm")
        norm(f"model.{side}.layer_norm", f"{side}.norm")
    missing, unexpected = hf.load_state_dict(theirs, strict=False)
    untied = [
        name
        for name in missing
        if not name.endswith("embed_tokens.weight") and name != "lm_head.weight"
    ]
    if untied or unexpected:
        raise RuntimeError(f"weight mapping incomplete: missing {untied}, unexpected {unexpected}")
    table = model.positions.table
    for side in (hf.model.encoder, hf.model.decoder):
        side.embed_positions.weights[c.pad_id + 1 : c.pad_id + 1 + table.shape[0]] = table[
            : side.embed_positions.weights.shape[0] - c.pad_id - 1
        ]
    return hf
