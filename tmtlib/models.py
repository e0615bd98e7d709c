"""The Transformer encoder–decoder every experiment of the course trains.

One model class serves all objectives:

* translation and (denoising) autoencoding: ``encode`` the source, ``decode`` the target against
  the encoder's states (Vaswani et al. 2017, "Attention is all you need");
* language modelling: ``decode`` with ``memory=None``, so the decoder runs alone and its
  cross-attention sub-layers are skipped (their weights get no gradient);
* the variational autoencoder (Bowman et al. 2016, "Generating sentences from a continuous
  space"): ``posterior`` pools the encoder states into q(z|x) = N(mu, exp(logvar)), and
  ``latent_memory`` turns a sample z into a one-vector memory the decoder attends to.

Architecture choices, and why:

* pre-LayerNorm residual blocks, ``x + Dropout(Sublayer(LayerNorm(x)))``, with a final LayerNorm
  on encoder and decoder: they train stably without learning-rate warm-up tricks (Xiong et al.
  2020, "On layer normalization in the Transformer architecture");
* one embedding matrix shared by source, target and output projection (Press & Wolf 2017), scaled
  by sqrt(d_model) on input (Vaswani et al. §3.4). The vocabulary is joint over all languages, so
  this one matrix is what moves between pretraining and translation;
* attention through ``F.scaled_dot_product_attention``, except for the one place that must show
  its weights (the last decoder layer's cross-attention when ``need_attention=True``);
* optional bf16 mixed precision (``autocast``): matrix products in bfloat16 where the hardware
  has it, everything else in fp32.

Parameter names are part of the API: ``tmtlib.transfer`` selects weights by prefix. They are
``embed.*``, ``positions.*`` (learned positions only), ``encoder.layers.{i}.*``, ``encoder.norm.*``,
``decoder.layers.{i}.{self_norm,self_attn,cross_norm,cross_attn,ff_norm,ff}.*``, ``decoder.norm.*``
and ``latent.{to_mu,to_logvar,to_memory}.*`` (only when ``latent_dim > 0``).

Shapes: B batch, S source length, T target length, M memory length, D d_model, H heads,
Dh = D / H, V vocabulary, L latent size.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """Every size that determines a model (stored in checkpoints to rebuild it)."""

    vocab_size: int
    d_model: int = 256
    n_heads: int = 4
    d_ff: int = 1024
    n_encoder_layers: int = 3
    n_decoder_layers: int = 3
    dropout: float = 0.1
    max_len: int = 512
    positions: str = "sinusoidal"  # or "learned"
    latent_dim: int = 0  # > 0 adds the VAE heads
    pad_id: int = 0
    activation: str = "gelu"  # or "relu", the feed-forward non-linearity

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "d_model",
            "n_heads",
            "d_ff",
            "n_encoder_layers",
            "n_decoder_layers",
            "max_len",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.positions not in {"sinusoidal", "learned"}:
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', not {self.positions!r}")
        if self.activation not in {"gelu", "relu"}:
            raise ValueError(f"activation must be 'gelu' or 'relu', not {self.activation!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), not {self.dropout}")
        if self.latent_dim < 0:
            raise ValueError(f"latent_dim must be >= 0 (0: no VAE heads), not {self.latent_dim}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id {self.pad_id} is outside the vocabulary of {self.vocab_size}")


PRESETS: dict[str, dict] = {
    # for tests: a few thousand parameters, deterministic (no dropout)
    "tiny": dict(
        d_model=32, n_heads=2, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, dropout=0.0
    ),
    # quick mode's sentence autoencoders: one layer each side, wide enough to learn to copy an
    # 8,000-piece vocabulary in a few hundred steps (the tiny model does not)
    "mini": dict(
        d_model=64, n_heads=2, d_ff=256, n_encoder_layers=1, n_decoder_layers=1, dropout=0.0
    ),
    # a fast demonstration model for the objective notebooks: seconds per step on a laptop
    "small": dict(d_model=128, n_heads=4, d_ff=512, n_encoder_layers=2, n_decoder_layers=2),
    # the course's CPU model: trains on Multi30k in minutes to hours on a laptop
    "course": dict(d_model=256, n_heads=4, d_ff=1024, n_encoder_layers=3, n_decoder_layers=3),
    # Transformer-base sizes (Vaswani et al. 2017), for GPUs
    "large": dict(d_model=512, n_heads=8, d_ff=2048, n_encoder_layers=6, n_decoder_layers=6),
}


def model_config(preset: str, vocab_size: int, **overrides) -> ModelConfig:
    """The named preset's sizes for ``vocab_size``, with any field overridden, e.g.
    ``model_config("course", 8000, latent_dim=64)``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    return replace(ModelConfig(vocab_size=vocab_size, **PRESETS[preset]), **overrides)


# --- precision ------------------------------------------------------------------------------------

PRECISIONS = ("fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware: CUDA GPUs from Ampere on, CPUs
    with AVX512-BF16 or AMX. Elsewhere bf16 is emulated, and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (
        torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    )


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Run the body in ``precision``: ``fp32``, or ``bf16`` mixed precision, where matrix products
    take bfloat16 inputs and accumulate in fp32, while weights, norms, softmax and the loss stay
    fp32 (Micikevicius et al. 2018; bf16 keeps fp32's exponent range, so no loss scaling)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return (
        nullcontext() if precision == "fp32" else torch.autocast(device.type, dtype=torch.bfloat16)
    )


# --- building blocks ------------------------------------------------------------------------------


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """softmax(QK^T / sqrt(Dh)) V over [B, H, T, Dh] queries, keys and values (Vaswani et al. eq.
    1), where ``mask`` is True. On the CPU in fp32 even under bf16 autocast: PyTorch's bf16
    attention kernels for the CPU are slower than its fp32 ones, the backward above all (a bf16
    training step of the course model ran 10-20% faster with attention kept in fp32 on a 2-core
    AVX512-BF16 CPU), and attention is a small share of the model's FLOPs."""
    if q.device.type == "cpu" and q.dtype != torch.float32:
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=mask
            ).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """[B, T, D] -> [B, H, T, Dh]"""
    B, T, D = x.shape
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """[B, H, T, Dh] -> [B, T, D]"""
    B, H, T, Dh = x.shape
    return x.transpose(1, 2).reshape(B, T, H * Dh)


def attention_mask(
    key_pad: Tensor | None, causal: bool, n_queries: int, n_keys: int, device: torch.device
) -> Tensor | None:
    """Boolean mask, True where a query may attend to a key, broadcastable to [B, H, T, S].

    ``key_pad`` [B, S] is True at padding. With ``causal``, the T queries are the *last* T of the
    S positions (the earlier ones come from a cache), so query i sees keys 0 .. S - T + i.
    """
    mask = None
    if key_pad is not None:
        mask = ~key_pad[:, None, None, :]  # [B, 1, 1, S]
    if causal and n_queries > 1:
        allowed = torch.ones(n_queries, n_keys, dtype=torch.bool, device=device)
        allowed = allowed.tril(diagonal=n_keys - n_queries)  # [T, S]
        mask = allowed if mask is None else mask & allowed
    return mask


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused query/key/value projection."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(
        self,
        x: Tensor,
        key_pad: Tensor | None = None,
        causal: bool = False,
        past: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend over ``x`` [B, T, D] (and the cached ``past`` keys/values [B, H, t, Dh]).

        Returns the output [B, T, D] and the keys/values of all t + T positions, for the cache.
        """
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x [B, T, D]
        q, k, v = (split_heads(y, self.n_heads) for y in (q, k, v))  # [B, H, T, Dh]
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # [B, H, t + T, Dh]
            v = torch.cat([past[1], v], dim=2)
        mask = attention_mask(key_pad, causal, q.size(2), k.size(2), q.device)
        y = attend(q, k, v, mask)  # [B, H, T, Dh]
        return self.out(merge_heads(y)), (k, v)


class CrossAttention(nn.Module):
    """Multi-head attention from decoder states to the memory (encoder states or a latent
    vector)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def project_memory(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values [B, H, M, Dh] of ``memory`` [B, M, D]: computed once per sentence when
        caching."""
        k, v = self.kv(memory).chunk(2, dim=-1)
        return split_heads(k, self.n_heads), split_heads(v, self.n_heads)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        memory_pad: Tensor | None = None,
        memory_kv: tuple[Tensor, Tensor] | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor | None]:
        """Attend from ``x`` [B, T, D] to ``memory`` [B, M, D] (padding True in ``memory_pad``).

        ``memory_kv`` are the memory's projected keys/values from an earlier step, if cached. With
        ``need_weights`` the attention is computed explicitly, softmax(QK^T / sqrt(Dh)) V (Vaswani
        et al. eq. 1), and its weights averaged over heads [B, T, M] are returned too.

        ``memory`` may hold fewer rows than ``x``: with B = b·g, each memory row serves g
        consecutive rows of ``x`` (beam search's g hypotheses of one sentence). Queries attend
        independently, so those g·T queries are attended as one sequence against their shared
        memory: its keys/values are projected, cached and read once per sentence, not g times.
        """
        rows, length = x.shape[:2]
        k, v = memory_kv if memory_kv is not None else self.project_memory(memory)  # [b, H, M, Dh]
        if rows % k.size(0):
            raise ValueError(f"{rows} query rows cannot share {k.size(0)} memory rows evenly")
        x = x.reshape(k.size(0), -1, x.size(-1))  # [b, g * T, D]
        q = split_heads(self.q(x), self.n_heads)  # [b, H, g * T, Dh]
        # [B, 1, 1, M] or None
        mask = attention_mask(memory_pad, False, q.size(2), k.size(2), q.device)
        weights = None
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # [B, H, T, M]
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.softmax(dim=-1)
            y = probs @ v  # [b, H, g * T, Dh]
            weights = probs.mean(dim=1).reshape(rows, length, -1)  # [B, T, M]
        else:
            y = attend(q, k, v, mask)
        return self.out(merge_heads(y)).reshape(rows, length, -1), (k, v), weights


class FeedForward(nn.Module):
    """Position-wise feed-forward network, Linear -> GELU/ReLU -> Linear (Vaswani et al. eq. 2)."""

    def __init__(self, d_model: int, d_ff: int, activation: str):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.activation = nn.GELU() if activation == "gelu" else nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class EncoderLayer(nn.Module):
    """Pre-LN block: x + Dropout(SelfAttn(LN(x))), then x + Dropout(FFN(LN(x)))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.self_norm = nn.LayerNorm(config.d_model)
        self.self_attn = SelfAttention(config.d_model, config.n_heads)
        self.ff_norm = nn.LayerNorm(config.d_model)
        self.ff = FeedForward(config.d_model, config.d_ff, config.activation)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        attended, _ = self.self_attn(self.self_norm(x), key_pad=pad)
        x = x + self.dropout(attended)
        return x + self.dropout(self.ff(self.ff_norm(x)))


class DecoderLayer(nn.Module):
    """Pre-LN block: causal self-attention, cross-attention (skipped without memory),
    feed-forward."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.self_norm = nn.LayerNorm(config.d_model)
        self.self_attn = SelfAttention(config.d_model, config.n_heads)
        self.cross_norm = nn.LayerNorm(config.d_model)
        self.cross_attn = CrossAttention(config.d_model, config.n_heads)
        self.ff_norm = nn.LayerNorm(config.d_model)
        self.ff = FeedForward(config.d_model, config.d_ff, config.activation)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None,
        memory_pad: Tensor | None,
        state: LayerCache | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """One decoder block on ``x`` [B, T, D]; ``state`` (if given) is read and updated in
        place."""
        attended, self_kv = self.self_attn(
            self.self_norm(x), causal=True, past=state.self_kv if state is not None else None
        )
        if state is not None:
            state.self_kv = self_kv
        x = x + self.dropout(attended)
        weights = None
        if memory is not None:
            attended, memory_kv, weights = self.cross_attn(
                self.cross_norm(x),
                memory,
                memory_pad,
                memory_kv=state.memory_kv if state is not None else None,
                need_weights=need_weights,
            )
            if state is not None:
                state.memory_kv = memory_kv
            x = x + self.dropout(attended)
        return x + self.dropout(self.ff(self.ff_norm(x))), weights


class Encoder(nn.Module):
    """A stack of encoder layers and the final LayerNorm that pre-LN needs (Xiong et al. 2020)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_encoder_layers))
        self.norm = nn.LayerNorm(config.d_model)

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, pad)
        return self.norm(x)


class Decoder(nn.Module):
    """A stack of decoder layers and the final LayerNorm; reads and extends a ``DecoderCache``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.n_decoder_layers))
        self.norm = nn.LayerNorm(config.d_model)

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None,
        memory_pad: Tensor | None,
        cache: DecoderCache | None = None,
        need_attention: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Decoder states [B, T, D] and, with ``need_attention``, the last layer's
        cross-attention."""
        for i, layer in enumerate(self.layers):
            state = cache.layers[i] if cache is not None else None
            last = i == len(self.layers) - 1
            x, weights = layer(x, memory, memory_pad, state, need_weights=need_attention and last)
        return self.norm(x), weights


# --- positions ------------------------------------------------------------------------------------


def sinusoids(max_len: int, d_model: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/D)), PE(pos, 2i+1) = cos(...) (Vaswani et al. §3.5).
    [max_len, D]"""
    position = torch.arange(max_len, dtype=torch.float).unsqueeze(1)  # [max_len, 1]
    frequency = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float) * (-math.log(10000.0) / d_model)
    )
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : d_model // 2]
    return table


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal positions: a non-persistent buffer, so they never appear in a state dict."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.register_buffer("table", sinusoids(max_len, d_model), persistent=False)

    def forward(self, offset: int, length: int) -> Tensor:
        """Positions offset .. offset + length - 1: [length, D]."""
        _check_length(offset + length, self.table.size(0))
        return self.table[offset : offset + length]


class LearnedPositions(nn.Module):
    """One trained vector per position (as in BERT and BART)."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.table = nn.Embedding(max_len, d_model)

    def forward(self, offset: int, length: int) -> Tensor:
        """Positions offset .. offset + length - 1: [length, D]."""
        _check_length(offset + length, self.table.num_embeddings)
        return self.table.weight[offset : offset + length]


def _check_length(length: int, max_len: int) -> None:
    if length > max_len:
        raise ValueError(
            f"a sequence of {length} positions exceeds the model's max_len of {max_len}"
        )


# --- the model ------------------------------------------------------------------------------------


class LatentHeads(nn.Module):
    """The VAE's Gaussian posterior heads and the map from a latent z back to a decoder memory."""

    def __init__(self, d_model: int, latent_dim: int):
        super().__init__()
        self.to_mu = nn.Linear(d_model, latent_dim)
        self.to_logvar = nn.Linear(d_model, latent_dim)
        self.to_memory = nn.Linear(latent_dim, d_model)


class Seq2Seq(nn.Module):
    """Pre-LN Transformer encoder–decoder with one shared, tied embedding (see the module
    docstring)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_id)
        positions = LearnedPositions if config.positions == "learned" else SinusoidalPositions
        self.positions = positions(config.max_len, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.latent = (
            LatentHeads(config.d_model, config.latent_dim) if config.latent_dim > 0 else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform Linear weights with zero biases (Glorot & Bengio 2010); embeddings N(0,
        D^-1/2), so that after the sqrt(D) scaling they have unit variance; the pad row zero."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=self.config.d_model**-0.5)
        with torch.no_grad():
            self.embed.weight[self.config.pad_id].zero_()

    def num_parameters(self) -> int:
        """Number of trainable parameters (the tied embedding counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def embed_tokens(self, ids: Tensor, offset: int = 0) -> Tensor:
        """Token embeddings * sqrt(D) plus positions offset .., then dropout: [B, T] -> [B, T,
        D]."""
        x = self.embed(ids) * math.sqrt(self.config.d_model)  # [B, T, D]
        return self.dropout(x + self.positions(offset, ids.size(1)))

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder states [B, S, D] of ``src`` [B, S] and its padding mask [B, S] (True at padding).

        Padded keys are masked, so states at real positions do not depend on the padding after them.
        """
        src_pad = src.eq(self.config.pad_id)  # [B, S]
        memory = self.encoder(self.embed_tokens(src), src_pad)  # [B, S, D]
        return memory, src_pad

    def decode(
        self,
        tgt_in: Tensor,
        memory: Tensor | None = None,
        memory_pad: Tensor | None = None,
        cache: DecoderCache | None = None,
        need_attention: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Next-token logits [B, T, V] for the decoder input ``tgt_in`` [B, T].

        ``memory`` [B, M, D] is what the decoder attends to (encoder states, or a latent vector
        [B, 1, D]); ``None`` runs the decoder as a language model with no cross-attention at all.
        A memory of b rows with B = b·g is shared by g consecutive rows each (beam search).
        Self-attention is causal, so position t sees ``tgt_in[:, :t + 1]`` only. Padding inside
        ``tgt_in`` needs no mask: it only ever follows the real tokens.

        With a ``cache``, ``tgt_in`` holds only the new tokens (usually [B, 1]): they are placed at
        positions ``cache.length ..`` and attend to the cached keys/values, which are then extended.
        ``memory`` and ``memory_pad`` must be passed on every step (reordered with the cache); the
        memory's keys/values are projected on the first step only.

        With ``need_attention``, returns ``(logits, attention)``: the last decoder layer's
        cross-attention weights averaged over heads, [B, T, M].
        """
        if need_attention and memory is None:
            raise ValueError(
                "need_attention=True needs a memory: there is no cross-attention without one"
            )
        offset = cache.length if cache is not None else 0
        x = self.embed_tokens(tgt_in, offset)  # [B, T, D]
        h, attention = self.decoder(x, memory, memory_pad, cache, need_attention)  # [B, T, D]
        if cache is not None:
            cache.length += tgt_in.size(1)
        logits = self.project(h)  # [B, T, V]
        return (logits, attention) if need_attention else logits

    def project(self, h: Tensor) -> Tensor:
        """Next-token logits [..., V] of decoder states ``h`` [..., D]: the tied output
        projection h E^T, E the shared embedding (Press & Wolf 2017)."""
        return F.linear(h, self.embed.weight)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits [B, T, V] of ``tgt_in`` [B, T] given ``src`` [B, S]."""
        memory, src_pad = self.encode(src)
        return self.decode(tgt_in, memory, src_pad)

    def posterior(self, memory: Tensor, memory_pad: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """q(z|x) = N(mu, diag(exp(logvar))) from the mean of the encoder states over real positions
        (Bowman et al. 2016 use the final RNN state; a masked mean is its Transformer analogue).
        Returns mu and logvar, each [B, L]."""
        if self.latent is None:
            raise ValueError(
                "this model has no latent heads: build it with latent_dim > 0 for the VAE"
            )
        if memory_pad is None:
            pooled = memory.mean(dim=1)  # [B, D]
        else:
            keep = (~memory_pad).unsqueeze(-1).to(memory.dtype)  # [B, M, 1]
            pooled = (memory * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)  # [B, D]
        return self.latent.to_mu(pooled), self.latent.to_logvar(pooled)

    def latent_memory(self, z: Tensor) -> Tensor:
        """The decoder memory for latent codes ``z`` [B, L]: one vector per sentence, [B, 1, D]."""
        if self.latent is None:
            raise ValueError(
                "this model has no latent heads: build it with latent_dim > 0 for the VAE"
            )
        return self.latent.to_memory(z).unsqueeze(1)


# --- incremental decoding -------------------------------------------------------------------------


@dataclass
class LayerCache:
    """One decoder layer's cached keys/values: self-attention [B, H, t, Dh], memory [B, H, M,
    Dh]."""

    self_kv: tuple[Tensor, Tensor] | None = None
    memory_kv: tuple[Tensor, Tensor] | None = None


class DecoderCache:
    """Keys and values of the tokens decoded so far, so that each decoding step costs one token.

    Self-attention keys/values grow by one position per step; the memory's keys/values are
    computed on the first step and reused. ``length`` is the number of positions decoded, which is
    also the position of the next token. Create one per decoding run: ``DecoderCache(n_layers)``.
    """

    def __init__(self, n_layers: int):
        self.layers = [LayerCache() for _ in range(n_layers)]
        self.length = 0

    def select(self, index: Tensor, memory_index: Tensor | None = None) -> None:
        """Keep the batch rows ``index`` [B'] (LongTensor), in that order: beam search reorders
        hypotheses with it, and every search drops finished sentences with it.

        ``memory_index`` selects the memory's rows when they are shared by groups of rows (see
        ``CrossAttention``); by default the memory rows follow ``index``."""
        memory_index = index if memory_index is None else memory_index
        for state in self.layers:
            if state.self_kv is not None:
                state.self_kv = tuple(t.index_select(0, index) for t in state.self_kv)
            if state.memory_kv is not None:
                state.memory_kv = tuple(t.index_select(0, memory_index) for t in state.memory_kv)
