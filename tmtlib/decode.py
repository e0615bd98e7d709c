"""From a trained model to output tokens: greedy search, beam search, sampling, and ``translate``.

Every search here works the same way: a batch of live hypotheses (token prefixes, start tag first)
grows by one token per step; with a ``DecoderCache`` a step feeds only the newest token to the
decoder. A sentence that ends (EOS, or its length limit) is removed from the working batch at once,
so the cost per step shrinks as sentences finish instead of staying at the longest one's.

Conventions (shared with ``tmtlib.models``):

* ``src`` [B, S] is ``[x_1 .. x_n, EOS]`` right-padded; ``start_ids`` [B] are the decoder's first
  tokens, normally the target-language tag ``<2xx>``;
* without ``src``, ``memory`` / ``memory_pad`` are attended to directly (a VAE's latent memory
  [B, 1, D]); with neither, the decoder runs as a language model;
* returned sequences hold the generated tokens only: no start tag, no EOS;
* an output has at most ``limit`` tokens, where ``limit = max_len`` when given, otherwise
  ``int(max_len_ratio * |src| + max_len_offset)`` with ``|src|`` the source length without padding
  (EOS included); it is also capped so that tag + output fits the model's ``max_len`` positions.

All functions switch the model to eval mode and turn off autograd, then restore its mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .batching import pad, token_batches
from .models import DecoderCache, Seq2Seq, autocast
from .subwords import EOS_ID


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Run the body in eval mode (no dropout) without autograd, then restore the model's mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _memory(
    model: Seq2Seq, src: Tensor | None, memory: Tensor | None, memory_pad: Tensor | None
) -> tuple[Tensor | None, Tensor | None]:
    """Encoder states of ``src`` if given, else the memory the caller passed (or None: LM)."""
    if src is None:
        return memory, memory_pad
    if memory is not None:
        raise ValueError("give either src or memory, not both")
    return model.encode(src.to(_device(model)))


def _length_limits(
    model: Seq2Seq,
    src: Tensor | None,
    batch_size: int,
    max_len: int | None,
    ratio: float,
    offset: int,
) -> Tensor:
    """The most tokens each output may have (EOS not counted), on the CPU: [B]."""
    if max_len is not None:
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1, not {max_len}")
        limits = torch.full((batch_size,), max_len)
    elif src is None:
        raise ValueError("without a source there is no length to scale: give max_len")
    else:
        src_len = src.ne(model.config.pad_id).sum(dim=1).cpu()  # [B]
        limits = (ratio * src_len + offset).long()
    return limits.clamp(1, model.config.max_len - 1)  # start tag + output <= max_len positions


class _LiveHypotheses:
    """The live hypotheses of a search, those still being extended: tokens so far [r, 1 + t] (start
    tag first), plus what the decoder needs (memory, padding mask, cache). The memory has one row
    per sentence; a sentence's hypotheses are consecutive rows that share it (r = b·g). ``select``
    keeps or reorders rows of all of them together."""

    def __init__(
        self,
        model: Seq2Seq,
        start_ids: Tensor,
        memory: Tensor | None,
        memory_pad: Tensor | None,
        use_cache: bool,
    ):
        self.model = model
        self.tokens = start_ids.view(-1, 1)  # [r, 1]
        self.memory, self.memory_pad = memory, memory_pad  # [b, M, D], [b, M]
        self.cache = DecoderCache(model.config.n_decoder_layers) if use_cache else None

    def logits(self) -> Tensor:
        """Next-token logits for every row: [r, V]; log p(next token | prefix, memory) is their
        log-softmax, which the searches apply only where they need it."""
        # with a cache only the newest token is fed; the cache holds the rest of the prefix
        # [r, 1] or [r, 1 + t]
        inputs = self.tokens[:, -1:] if self.cache is not None else self.tokens
        return self.model.decode(inputs, self.memory, self.memory_pad, cache=self.cache)[
            :, -1
        ].float()

    def extend(self, next_tokens: Tensor) -> None:
        """Append one token [r] to every row."""
        self.tokens = torch.cat([self.tokens, next_tokens.view(-1, 1)], dim=1)

    def select(self, rows: Tensor, sentences: Tensor | None = None) -> None:
        """Keep the rows ``rows`` [r'] in that order (reorders beams, drops finished sentences),
        and the memory of ``sentences`` [b'] (default: ``rows``, one row per sentence)."""
        rows = rows.to(self.tokens.device)
        sentences = rows if sentences is None else sentences.to(self.tokens.device)
        self.tokens = self.tokens[rows]
        if self.memory is not None:
            self.memory = self.memory[sentences]
        if self.memory_pad is not None:
            self.memory_pad = self.memory_pad[sentences]
        if self.cache is not None:
            self.cache.select(rows, sentences)

    def output(self, row: int) -> list[int]:
        """The tokens of ``row`` after the start tag, without a final EOS."""
        tokens = self.tokens[row, 1:].tolist()
        return tokens[:-1] if tokens and tokens[-1] == EOS_ID else tokens


def _generate(
    hypotheses: _LiveHypotheses, limits: Tensor, choose: Callable[[Tensor], Tensor]
) -> list[list[int]]:
    """Extend every prefix by ``choose(logits [b, V]) -> [b]`` until EOS or its limit."""
    outputs: list[list[int]] = [[] for _ in range(len(limits))]
    alive = torch.arange(len(limits))  # original sentence of each working row
    for step in range(int(limits.max())):
        tokens = choose(hypotheses.logits())  # [b]
        hypotheses.extend(tokens)
        done = tokens.eq(EOS_ID).cpu() | (limits[alive] <= step + 1)  # [b]
        for row in done.nonzero().flatten().tolist():
            outputs[alive[row]] = hypotheses.output(row)
        if done.all():
            break
        if done.any():
            keep = (~done).nonzero().flatten()
            hypotheses.select(keep)
            alive = alive[keep]
    return outputs


def _record_finished(
    finished: list[list[tuple[float, list[int]]]], sentences: Tensor, scores: Tensor, tokens: Tensor
) -> None:
    """Record finished hypotheses: row i of ``tokens`` [h, t] with normalised ``scores[i]`` for
    sentence ``sentences[i]`` (one conversion to Python per step, not one per hypothesis)."""
    for sentence, score, hypothesis in zip(sentences.tolist(), scores.tolist(), tokens.tolist()):
        finished[sentence].append((score, hypothesis))


def greedy(
    model: Seq2Seq,
    src: Tensor | None,
    start_ids: Tensor,
    *,
    memory: Tensor | None = None,
    memory_pad: Tensor | None = None,
    max_len: int | None = None,
    max_len_ratio: float = 1.5,
    max_len_offset: int = 10,
    use_cache: bool = True,
) -> list[list[int]]:
    """The most probable next token at every step, for each sentence of ``src`` [B, S].

    Without ``src``, decode against ``memory`` [B, M, D] (VAE) or nothing (LM); ``max_len`` is then
    required. ``use_cache=False`` recomputes the whole prefix each step (same result, slower).
    """
    with evaluating(model):
        memory, memory_pad = _memory(model, src, memory, memory_pad)
        limits = _length_limits(model, src, len(start_ids), max_len, max_len_ratio, max_len_offset)
        hypotheses = _LiveHypotheses(
            model, start_ids.to(_device(model)), memory, memory_pad, use_cache
        )
        # the argmax of the logits is the argmax of the log-probabilities: no softmax needed
        return _generate(hypotheses, limits, lambda logits: logits.argmax(dim=-1))


def nucleus(scores: Tensor, top_p: float) -> Tensor:
    """Top-p (nucleus) filtering (Holtzman et al. 2020): keep, per row of ``scores`` [b, V], the
    smallest set of most likely tokens whose probabilities sum to at least ``top_p``; the others get
    -inf. The kept scores are unchanged, and the most likely token is always kept."""
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1], not {top_p}")
    if top_p == 1.0:  # every token: float32 sums may reach 1 before the tail, which must not be cut
        return scores
    sorted_scores, order = scores.sort(dim=-1, descending=True)
    probs = sorted_scores.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # the probability of the tokens ranked above each token
    drop_sorted = before >= top_p  # the nucleus already holds top_p without this token
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))


def sample(
    model: Seq2Seq,
    start_ids: Tensor,
    *,
    src: Tensor | None = None,
    memory: Tensor | None = None,
    memory_pad: Tensor | None = None,
    max_len: int = 50,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Ancestral sampling: draw each token from p(y_t | y_<t)^(1/temperature), renormalised over
    the ``top_k`` most likely tokens when ``top_k > 0`` (Fan et al. 2018); ``top_k=1`` is greedy;
    and over the nucleus of probability ``top_p`` when ``top_p < 1`` (see ``nucleus``).

    Used to show what a language model or a VAE decoder has learnt. Pass a seeded ``generator``
    (on the model's device) for reproducible samples.
    """
    if temperature <= 0:
        raise ValueError(
            f"temperature must be positive, not {temperature} (for the argmax, use greedy)"
        )
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0: the whole vocabulary), not {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1], not {top_p}")

    def choose(logits: Tensor) -> Tensor:
        scores = logits / temperature  # [b, V]: softmax(logits / T) = softmax(log p / T)
        if top_k:
            kth_best = scores.topk(min(top_k, scores.size(-1)), dim=-1).values[:, -1:]  # [b, 1]
            scores = scores.masked_fill(scores < kth_best, float("-inf"))
        if top_p < 1.0:
            scores = nucleus(scores, top_p)
        return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(1)

    with evaluating(model):
        memory, memory_pad = _memory(model, src, memory, memory_pad)
        limits = _length_limits(model, None, len(start_ids), max_len, 0.0, 0)
        hypotheses = _LiveHypotheses(
            model, start_ids.to(_device(model)), memory, memory_pad, use_cache=True
        )
        return _generate(hypotheses, limits, choose)


class Hypothesis(NamedTuple):
    """A finished beam-search hypothesis: its normalised score and its tokens (EOS excluded)."""

    score: float
    tokens: list[int]


def beam_search(
    model: Seq2Seq, src: Tensor | None, start_ids: Tensor, **options: Any
) -> list[list[int]]:
    """The best hypothesis of each sentence by beam search: ``beam_search_n_best`` with
    ``n_best=1``, whose docstring describes the search and its ``options``."""
    found = beam_search_n_best(model, src, start_ids, n_best=1, **options)
    return [best.tokens for (best,) in found]


def beam_search_n_best(
    model: Seq2Seq,
    src: Tensor | None,
    start_ids: Tensor,
    *,
    n_best: int = 1,
    memory: Tensor | None = None,
    memory_pad: Tensor | None = None,
    max_len: int | None = None,
    beam_size: int = 5,
    length_penalty: float = 1.0,
    max_len_ratio: float = 1.5,
    max_len_offset: int = 10,
    use_cache: bool = True,
) -> list[list[Hypothesis]]:
    """Batched beam search: the B sentences × K beams are one batch of B·K rows, and the K rows
    of a sentence share its encoder memory (projected and attended once per sentence).

    Each step extends every live hypothesis by every token, scores the candidates by the sum of
    their log-probabilities, and keeps per sentence the 2K best: those ending in EOS among the best
    K become finished hypotheses, the K best others stay live. A hypothesis y is ranked by
    ``score / |y| ** length_penalty``, where |y| counts the generated tokens including EOS
    (``length_penalty=0``: raw log-probability; 1: per-token average).

    A sentence is done when it has K finished hypotheses and its best live one, normalised at its
    current length, does not beat the worst of them (the usual heuristic, as in Hugging Face's
    ``early_stopping=False``; exact for ``length_penalty=0``, when scores can only fall), or at
    its length limit, where the live hypotheses are finished as they are. Done sentences leave the
    batch. With K = 1 this is exactly greedy search.

    Returns, per sentence, its ``n_best`` best finished hypotheses, best first.
    """
    _check_beam_size(model, beam_size, n_best)
    with evaluating(model):
        memory, memory_pad = _memory(model, src, memory, memory_pad)
        limits = _length_limits(
            model, src, len(start_ids), max_len, max_len_ratio, max_len_offset
        ).to(_device(model))
        # one live hypothesis per sentence at first (g = 1 row each); K of them from the second step
        hypotheses = _LiveHypotheses(
            model, start_ids.to(_device(model)), memory, memory_pad, use_cache
        )
        finished = _BeamSearch(hypotheses, limits, beam_size, length_penalty).run()
    return [
        sorted(map(Hypothesis._make, hypotheses), key=lambda h: h.score, reverse=True)[:n_best]
        for hypotheses in finished
    ]


def _check_beam_size(model: Seq2Seq, beam_size: int, n_best: int) -> None:
    """Refuse a beam the search cannot fill: K >= 1, 1 <= n_best <= K, and 2K candidates per
    step."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, not {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must lie in [1, beam_size={beam_size}], not {n_best}")
    if 2 * beam_size > model.config.vocab_size:
        raise ValueError(
            f"beam_size {beam_size} is too large for a vocabulary of {model.config.vocab_size}"
        )


class _BeamSearch:
    """The state of ``beam_search`` over n working sentences (those not done yet): the
    log-probabilities of their live hypotheses ``scores`` [n, g], their K best finished normalised
    scores ``best_finished`` [n, K] (best first), the original sentence of each ``alive`` [n]; and
    per original sentence its finished hypotheses, (normalised score, tokens)."""

    def __init__(
        self, hypotheses: _LiveHypotheses, limits: Tensor, beam_size: int, length_penalty: float
    ):
        batch_size, device = len(limits), limits.device
        self.hypotheses, self.limits, self.K, self.length_penalty = (
            hypotheses,
            limits,
            beam_size,
            length_penalty,
        )
        self.scores = torch.zeros(batch_size, 1, device=device)
        self.best_finished = torch.full((batch_size, beam_size), float("-inf"), device=device)
        self.alive = torch.arange(batch_size, device=device)
        self.finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch_size)]

    def run(self) -> list[list[tuple[float, list[int]]]]:
        """Step until every sentence is done; the finished hypotheses of each sentence."""
        for step in range(int(self.limits.max())):
            if self.step(length=step + 1):
                break
        return self.finished

    def step(self, length: int) -> bool:
        """Extend every live hypothesis to ``length`` generated tokens; whether all sentences are
        done."""
        penalty = length**self.length_penalty
        top_scores, parents, tokens = self._candidates()
        is_eos = tokens.eq(EOS_ID)
        self._finish_ended(is_eos[:, : self.K], top_scores, parents, penalty)
        # the K best non-EOS candidates
        live = is_eos.long().argsort(dim=1, stable=True)[:, : self.K]
        # [n, K]
        scores, parents, tokens = (t.gather(1, live) for t in (top_scores, parents, tokens))
        # [n]: the live hypotheses end here as they are
        at_limit = self.limits[self.alive] <= length
        if at_limit.any():
            self._finish_at_limit(at_limit, scores, parents, tokens, penalty)
        # done: K finished hypotheses, none beaten by the best live one at its current length
        done = at_limit | (self.best_finished[:, -1] >= scores[:, 0] / penalty)
        if bool(done.all()):
            return True
        keep = (~done).nonzero().flatten()
        self.hypotheses.select(parents[keep].view(-1), sentences=keep)
        self.hypotheses.extend(tokens[keep].view(-1))
        self.scores, self.alive, self.best_finished = (
            scores[keep],
            self.alive[keep],
            self.best_finished[keep],
        )
        return False

    def _candidates(self) -> tuple[Tensor, Tensor, Tensor]:
        """The 2K best one-token extensions of each sentence's live hypotheses, best first: their
        summed log-probabilities, the rows they extend and their tokens, each [n, 2K]."""
        n, g = self.scores.shape
        log_probs = self.hypotheses.logits().log_softmax(dim=-1)  # [n * g, V]
        V = log_probs.size(-1)
        # in place: [n * g, V] is large
        candidates = log_probs.add_(self.scores.view(-1, 1)).view(n, g * V)
        top_scores, top = candidates.topk(2 * self.K, dim=1)  # [n, 2K], best first
        # [n, 2K] rows extended
        parents = torch.arange(n, device=top.device).unsqueeze(1) * g + top // V
        return top_scores, parents, top % V

    def _finish_ended(
        self, ended: Tensor, top_scores: Tensor, parents: Tensor, penalty: float
    ) -> None:
        """Candidates ending in EOS among the K best (``ended`` [n, K]) are finished: the prefix,
        without the EOS; the K best finished scores of their sentences are updated."""
        if not ended.any():
            return
        i, j = ended.nonzero(as_tuple=True)
        _record_finished(
            self.finished,
            self.alive[i],
            top_scores[i, j] / penalty,
            self.hypotheses.tokens[parents[i, j], 1:],
        )
        new = torch.full(ended.shape, float("-inf"), device=ended.device).index_put_(
            (i, j), top_scores[i, j] / penalty
        )
        self.best_finished = torch.cat([self.best_finished, new], dim=1).topk(self.K, dim=1).values

    def _finish_at_limit(
        self, at_limit: Tensor, scores: Tensor, parents: Tensor, tokens: Tensor, penalty: float
    ) -> None:
        """The live hypotheses of the sentences ``at_limit`` [n] are finished as they are."""
        rows, last = parents[at_limit].view(-1), tokens[at_limit].view(-1, 1)
        _record_finished(
            self.finished,
            self.alive[at_limit].repeat_interleave(self.K),
            scores[at_limit].view(-1) / penalty,
            torch.cat([self.hypotheses.tokens[rows, 1:], last], dim=1),
        )


def decode_latent(
    model: Seq2Seq, z: Tensor, start_ids: Tensor, *, max_len: int = 50, beam_size: int = 1
) -> list[list[int]]:
    """Decode sentences from latent codes ``z`` [B, L] through ``model.latent_memory``: a VAE's
    decoder reading a point of its latent space (e.g. along an interpolation, Bowman et al. 2016
    §5)."""
    with evaluating(model):
        memory = model.latent_memory(z.to(_device(model)))  # [B, 1, D]
    if beam_size == 1:
        return greedy(model, None, start_ids, memory=memory, max_len=max_len)
    return beam_search(model, None, start_ids, memory=memory, max_len=max_len, beam_size=beam_size)


def encode_latent(model: Seq2Seq, tokenizer, sentences: Sequence[str]) -> Tensor:
    """Posterior means mu(x) [B, L] of a VAE for ``sentences``: the points that interpolation and
    ``decode_latent`` start from."""
    ids = [ids[: model.config.max_len - 1] + [EOS_ID] for ids in tokenizer.encode(sentences)]
    with evaluating(model):
        memory, src_pad = model.encode(pad(ids, model.config.pad_id).to(_device(model)))
        mu, _ = model.posterior(memory, src_pad)
    return mu


# --- translating text --------------------------------------------------------------------------


@dataclass
class Alignment:
    """What the model attended to while producing one translation (for the interactive notebook)."""

    source_pieces: list[str]  # the S source pieces, ending with "</s>"
    output_pieces: list[str]  # the T_out output pieces, ending with "</s>"
    attention: Tensor  # [T_out, S]: last decoder layer's cross-attention, averaged over heads


def _alignment(
    model: Seq2Seq, tokenizer, source: list[int], output: list[int], tag: int
) -> Alignment:
    """Teacher-force ``output`` (after ``tag``) to read the cross-attention that produced it."""
    device = _device(model)
    with evaluating(model):
        memory, src_pad = model.encode(torch.tensor([source], device=device))
        tgt_in = torch.tensor([[tag, *output]], device=device)  # [1, T_out]
        _, attention = model.decode(tgt_in, memory, src_pad, need_attention=True)  # [1, T_out, S]
    pieces = [tokenizer.sp.id_to_piece(int(i)) for i in (*output, EOS_ID)]
    return Alignment([tokenizer.sp.id_to_piece(int(i)) for i in source], pieces, attention[0].cpu())


def translate(
    model: Seq2Seq,
    tokenizer,
    sentences: Sequence[str],
    tgt_lang: str,
    *,
    beam_size: int = 5,
    length_penalty: float = 1.0,
    max_tokens: int = 4000,
    precision: str = "fp32",
    return_attention: bool = False,
):
    """Translate ``sentences`` into ``tgt_lang``; results come back in the input order.

    Sources are tokenised with EOS appended (cut to the model's ``max_len`` positions), sorted by
    length and batched by at most ``max_tokens`` padded source tokens, decoded with beam search
    (greedy when ``beam_size=1``) and detokenised. A line that is empty after normalisation
    translates to "" without running the model. ``precision="bf16"`` decodes in bf16 mixed
    precision (``tmtlib.models.autocast``): faster where the hardware has bf16; an output can
    differ from fp32's where two candidates score almost alike.

    With ``return_attention``, returns ``(translations, alignments)``: one ``Alignment`` per
    sentence (``None`` for an empty line), computed by a teacher-forced pass over the output. Its
    last row is the attention while predicting the end of sentence.
    """
    tag = tokenizer.lang_id(tgt_lang)
    sources = [
        ids[: model.config.max_len - 1] + [EOS_ID] if ids else []
        for ids in tokenizer.encode(sentences)
    ]
    outputs: list[list[int]] = [[] for _ in sources]
    non_empty = [i for i, source in enumerate(sources) if source]
    for group in token_batches([len(sources[i]) for i in non_empty], max_tokens, shuffle=False):
        batch = [non_empty[g] for g in group]
        src = pad([sources[i] for i in batch], model.config.pad_id)  # [b, S]
        start_ids = torch.full((len(batch),), tag, dtype=torch.long)
        with autocast(_device(model), precision):
            if beam_size == 1:
                hypotheses = greedy(model, src, start_ids)
            else:
                hypotheses = beam_search(
                    model, src, start_ids, beam_size=beam_size, length_penalty=length_penalty
                )
        for i, hypothesis in zip(batch, hypotheses):
            outputs[i] = hypothesis
    translations = tokenizer.decode(outputs)
    if not return_attention:
        return translations
    alignments = [
        _alignment(model, tokenizer, source, output, tag) if source else None
        for source, output in zip(sources, outputs)
    ]
    return translations, alignments
