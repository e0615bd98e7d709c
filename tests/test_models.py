"""The Transformer: shapes, masking, LM mode, positions, tying, presets, VAE heads, the cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tmtlib.models import (
    PRESETS,
    DecoderCache,
    ModelConfig,
    Seq2Seq,
    attend,
    autocast,
    model_config,
)
from tmtlib.subwords import EOS_ID, PAD_ID

V = 50


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(model_config("tiny", V, **overrides)).eval()


def tokens(*shape: int) -> torch.Tensor:
    """Random content ids (never pad or eos)."""
    return torch.randint(4, V, shape)


def source_batch() -> torch.Tensor:
    """Two sources of lengths 6 and 4 (EOS included), right-padded: [2, 6]."""
    src = tokens(2, 6)
    src[:, -1] = EOS_ID
    src[1, 3], src[1, 4:] = EOS_ID, PAD_ID
    return src


def test_shapes():
    model = tiny()
    src, tgt_in = source_batch(), tokens(2, 5)
    memory, src_pad = model.encode(src)
    assert memory.shape == (2, 6, 32) and src_pad.tolist() == [
        [False] * 6,
        [False] * 4 + [True] * 2,
    ]
    assert model(src, tgt_in).shape == (2, 5, V)
    assert model.decode(tgt_in).shape == (2, 5, V)  # LM mode
    logits, attention = model.decode(tgt_in, memory, src_pad, need_attention=True)
    assert logits.shape == (2, 5, V) and attention.shape == (2, 5, 6)


def test_encoder_ignores_right_padding():
    model = tiny()
    src = source_batch()
    memory, _ = model.encode(src)
    padded = torch.cat([src, torch.full((2, 7), PAD_ID)], dim=1)
    memory_padded, pad = model.encode(padded)
    real = ~pad[:, :6]
    torch.testing.assert_close(memory_padded[:, :6][real], memory[real], atol=1e-5, rtol=0)
    alone, _ = model.encode(src[1:, :4])  # the short sentence without any padding
    torch.testing.assert_close(memory[1, :4], alone[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("with_memory", [True, False])
def test_decoder_cannot_see_the_future(with_memory):
    model = tiny()
    memory, src_pad = model.encode(source_batch()) if with_memory else (None, None)
    tgt_in = tokens(2, 6)
    changed = tgt_in.clone()
    changed[:, 4] = (changed[:, 4] + 1 - 4) % (V - 4) + 4
    before, after = model.decode(tgt_in, memory, src_pad), model.decode(changed, memory, src_pad)
    torch.testing.assert_close(after[:, :4], before[:, :4], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, 4:], before[:, 4:])


def test_lm_mode_leaves_cross_attention_untouched():
    model = tiny().train()
    model.decode(tokens(2, 5)).logsumexp(-1).sum().backward()
    for name, parameter in model.named_parameters():
        unused = ".cross_attn." in name or ".cross_norm." in name or name.startswith("encoder.")
        assert (parameter.grad is None) == unused, name


def test_learned_and_sinusoidal_positions():
    sinusoidal, learned = tiny(), tiny(positions="learned")
    assert not any(k.startswith("positions") for k in sinusoidal.state_dict())
    assert [k for k in learned.state_dict() if k.startswith("positions")] == [
        "positions.table.weight"
    ]
    assert learned.num_parameters() == sinusoidal.num_parameters() + 512 * 32
    # positions matter: a permuted input is not a permuted output
    for model in (
        sinusoidal,
        learned,
    ):
        src = tokens(1, 5)
        memory, _ = model.encode(src)
        swapped, _ = model.encode(src.flip(1))
        assert not torch.allclose(swapped.flip(1), memory, atol=1e-4)
    with pytest.raises(ValueError, match="max_len of 8"):
        tiny(max_len=8).encode(tokens(1, 9))


def test_output_projection_is_the_embedding():
    model = tiny()
    assert [n for n, p in model.named_parameters() if p.shape == (V, 32)] == ["embed.weight"]
    with torch.no_grad():
        model.embed.weight[7].zero_()
    tgt_in = torch.randint(8, V, (2, 4))  # token 7 absent from the input
    assert (model.decode(tgt_in)[..., 7] == 0).all()


def test_initialisation():
    model = tiny()
    assert (model.embed.weight[PAD_ID] == 0).all()
    assert (model.decoder.layers[0].self_attn.qkv.bias == 0).all()
    std = model.embed.weight[4:].std().item()
    assert 0.7 * 32**-0.5 < std < 1.3 * 32**-0.5


def test_parameter_names_are_stable():
    names = {n for n, _ in tiny(latent_dim=8).named_parameters()}
    layer = "decoder.layers.0."
    assert {n for n in names if n.startswith(layer + "cross_attn.")} == {
        layer + f"cross_attn.{p}.{w}" for p in ("q", "kv", "out") for w in ("weight", "bias")
    }
    assert {n for n in names if n.startswith(layer + "cross_norm.")} == {
        layer + "cross_norm.weight",
        layer + "cross_norm.bias",
    }
    assert {n.split(".")[0] for n in names} == {"embed", "encoder", "decoder", "latent"}
    assert {
        "encoder.norm.weight",
        "decoder.norm.weight",
        "latent.to_mu.weight",
        "latent.to_logvar.weight",
        "latent.to_memory.weight",
        "encoder.layers.0.self_attn.qkv.weight",
    } <= names
    assert not any(n.startswith("latent") for n, _ in tiny().named_parameters())


def test_presets_and_validation():
    assert set(PRESETS) == {"tiny", "mini", "small", "course", "large"}
    course = model_config("course", 8000)
    assert (course.d_model, course.n_heads, course.d_ff, course.n_encoder_layers) == (
        256,
        4,
        1024,
        3,
    )
    large = model_config("large", 8000, dropout=0.3)
    assert (large.d_model, large.n_heads, large.n_decoder_layers, large.dropout) == (512, 8, 6, 0.3)
    with pytest.raises(ValueError, match="tiny, mini, small, course, large"):
        model_config("huge", 8000)
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(vocab_size=V, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="positions"):
        ModelConfig(vocab_size=V, positions="rotary")
    with pytest.raises(ValueError, match="n_decoder_layers must be positive"):
        ModelConfig(vocab_size=V, n_decoder_layers=0)
    with pytest.raises(ValueError, match="vocab_size must be positive"):
        ModelConfig(vocab_size=0)
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(vocab_size=V, dropout=1.0)
    with pytest.raises(ValueError, match="latent_dim"):
        ModelConfig(vocab_size=V, latent_dim=-1)


def test_posterior_and_latent_memory():
    model = tiny(latent_dim=8)
    src = source_batch()
    memory, src_pad = model.encode(src)
    mu, logvar = model.posterior(memory, src_pad)
    assert mu.shape == logvar.shape == (2, 8)
    padded_memory, padded_pad = model.encode(torch.cat([src, torch.full((2, 3), PAD_ID)], dim=1))
    torch.testing.assert_close(model.posterior(padded_memory, padded_pad)[0], mu, atol=1e-5, rtol=0)
    latent = model.latent_memory(mu)
    assert latent.shape == (2, 1, 32)
    assert model.decode(tokens(2, 3), latent).shape == (2, 3, V)
    with pytest.raises(ValueError, match="latent_dim > 0"):
        tiny().posterior(memory, src_pad)
    with pytest.raises(ValueError, match="latent_dim > 0"):
        tiny().latent_memory(mu)


def test_attention_weights():
    model = tiny(n_decoder_layers=2)
    src, tgt_in = source_batch(), tokens(2, 5)
    memory, src_pad = model.encode(src)
    logits, attention = model.decode(tgt_in, memory, src_pad, need_attention=True)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 5))
    assert (attention[1, :, 4:] == 0).all() and (attention[1, :, :4] > 0).all()
    # the explicit softmax path computes the same thing as scaled_dot_product_attention
    torch.testing.assert_close(logits, model.decode(tgt_in, memory, src_pad), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs a memory"):
        model.decode(tgt_in, need_attention=True)


def decode_step_by_step(model: Seq2Seq, tgt_in: torch.Tensor, memory, memory_pad) -> torch.Tensor:
    cache = DecoderCache(model.config.n_decoder_layers)
    steps = [
        model.decode(tgt_in[:, t : t + 1], memory, memory_pad, cache=cache)
        for t in range(tgt_in.size(1))
    ]
    assert cache.length == tgt_in.size(1)
    return torch.cat(steps, dim=1)


@pytest.mark.parametrize("mode", ["memory", "lm", "latent"])
@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_cached_decoding_equals_full_recomputation(mode, positions):
    model = tiny(n_decoder_layers=2, positions=positions, latent_dim=4)
    memory, memory_pad = model.encode(source_batch())
    if mode == "lm":
        memory, memory_pad = None, None
    elif mode == "latent":
        memory, memory_pad = model.latent_memory(torch.randn(2, 4)), None
    tgt_in = tokens(2, 7)
    full = model.decode(tgt_in, memory, memory_pad)
    torch.testing.assert_close(
        decode_step_by_step(model, tgt_in, memory, memory_pad), full, atol=1e-5, rtol=0
    )


def test_cache_select_reorders_and_drops_rows():
    model = tiny(n_decoder_layers=2)
    src = torch.cat([source_batch(), source_batch()])  # [4, 6]
    memory, src_pad = model.encode(src)
    tgt_in = tokens(4, 6)
    cache = DecoderCache(model.config.n_decoder_layers)
    model.decode(tgt_in[:, :2], memory, src_pad, cache=cache)  # a two-token prefix at once
    model.decode(tgt_in[:, 2:3], memory, src_pad, cache=cache)
    index = torch.tensor([3, 0, 0])  # reorder, duplicate, drop rows 1 and 2
    cache.select(index)
    tgt_in, memory, src_pad = tgt_in[index], memory[index], src_pad[index]
    steps = [model.decode(tgt_in[:, t : t + 1], memory, src_pad, cache=cache) for t in range(3, 6)]
    full = model.decode(tgt_in, memory, src_pad)
    torch.testing.assert_close(torch.cat(steps, dim=1), full[:, 3:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cached", [False, True])
def test_rows_sharing_a_memory_equal_rows_with_copies_of_it(cached):
    """Beam search passes one memory row per sentence for its g hypotheses (consecutive rows)."""
    model = tiny(n_decoder_layers=2)
    memory, src_pad = model.encode(source_batch())  # 2 sentences
    g, tgt_in = 3, tokens(6, 4)  # 3 hypotheses each
    copies = torch.arange(2).repeat_interleave(g)
    if cached:
        shared, copied = DecoderCache(2), DecoderCache(2)
        for t in range(4):
            step = tgt_in[:, t : t + 1]
            torch.testing.assert_close(
                model.decode(step, memory, src_pad, cache=shared),
                model.decode(step, memory[copies], src_pad[copies], cache=copied),
                atol=1e-5,
                rtol=0,
            )
        keep = torch.tensor([1])  # the second sentence: its rows 3..5, reordered
        shared.select(torch.tensor([5, 3, 3]), memory_index=keep)
        copied.select(torch.tensor([5, 3, 3]))
        step = tokens(3, 1)
        torch.testing.assert_close(
            model.decode(step, memory[keep], src_pad[keep], cache=shared),
            model.decode(step, memory[[1, 1, 1]], src_pad[[1, 1, 1]], cache=copied),
            atol=1e-5,
            rtol=0,
        )
    else:
        logits, attention = model.decode(tgt_in, memory, src_pad, need_attention=True)
        expected, expected_attention = model.decode(
            tgt_in, memory[copies], src_pad[copies], need_attention=True
        )
        torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(attention, expected_attention, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="cannot share"):
        model.decode(tokens(5, 2), memory, src_pad)


def test_dropout_only_in_training():
    model = tiny(dropout=0.5)
    src, tgt_in = source_batch(), tokens(2, 5)
    torch.testing.assert_close(model(src, tgt_in), model(src, tgt_in))
    model.train()
    assert not torch.allclose(model(src, tgt_in), model(src, tgt_in))


def output_dtypes(model: Seq2Seq) -> dict[str, set[torch.dtype]]:
    """Record the dtypes the model's linear layers and layer norms produce from now on."""
    seen: dict[str, set[torch.dtype]] = {"Linear": set(), "LayerNorm": set()}
    for module in model.modules():
        kind = type(module).__name__
        if kind in seen:
            module.register_forward_hook(lambda m, i, out, kind=kind: seen[kind].add(out.dtype))
    return seen


def test_bf16_autocast_computes_the_fp32_model_in_bf16():
    model = tiny(n_decoder_layers=2)
    src, tgt_in = source_batch(), tokens(2, 7)
    exact = model.decode(tgt_in, *model.encode(src))
    cpu = torch.device("cpu")
    dtypes = output_dtypes(model)
    with autocast(cpu, "bf16"):
        memory, memory_pad = model.encode(src)
        approx = model.decode(tgt_in, memory, memory_pad)
    # the products ran in bf16, the norms in fp32, and the weights stayed fp32 (``autocast``)
    assert approx.dtype == torch.bfloat16 and dtypes["Linear"] == {torch.bfloat16}
    assert dtypes["LayerNorm"] == {torch.float32}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    # ... the same model to bf16's 8 significant bits: rounding the largest logit alone moves it
    # by up to max|logit| * 2**-8 (0.02 here); a weight 2% off moves the logits 0.1
    bound = 1.5 * exact.abs().max().item() * 2**-8
    torch.testing.assert_close(approx.float(), exact, atol=bound, rtol=0)
    assert not torch.equal(approx.float(), exact)
    with autocast(cpu, "fp32"):
        assert torch.equal(model.decode(tgt_in, *model.encode(src)), exact)
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        autocast(cpu, "fp16")


def test_attention_runs_in_fp32_on_the_cpu_and_returns_the_input_dtype():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 33, 64).bfloat16() for _ in range(3))
    mask = (torch.arange(33) < 29).expand(2, 1, 33, 33)
    half = attend(q, k, v, mask)
    assert half.dtype == torch.bfloat16
    in_fp32 = F.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), attn_mask=mask
    ).bfloat16()
    in_bf16 = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert not torch.equal(in_bf16, in_fp32), (
        "bf16 and fp32 kernels agree here: the test cannot tell them apart"
    )
    assert torch.equal(half, in_fp32)  # computed in fp32, rounded once to bf16 at the end
