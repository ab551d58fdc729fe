"""Model FLOPs and the machine's matmul peak, for model-FLOP utilisation (MFU) in the benchmarks.

MFU = model FLOPs of the useful work / seconds / the peak FLOP/s of the machine, as in the PaLM paper
(Chowdhery et al. 2022, appendix B). The model FLOPs use the usual approximation:

- a token that goes through a stack of weight matrices costs 2 FLOPs per parameter forward (one multiply,
  one add), and 6 for training (forward, plus twice that backward): training a decoder-only model of N
  parameters on D tokens costs 6 * N * D;
- an encoder-decoder (T5) reads the source tokens with the encoder and the target tokens with the
  decoder: 2 * (encoder parameters * source tokens + decoder parameters * target tokens) forward, 3x
  that for training;
- attention adds, per layer, 2 * width FLOPs for each query-key pair (the scores Q K^T) and as many for
  the weighted sum of the values: 4 * layers * width * queries * keys forward (width = heads * head
  dimension). A causal mask is not halved, as in PaLM's 12 * L * H * Q * T per token for training;
- generation with a KV cache reads the prompt once, then runs the decoder once per new token, each new
  token attending to the encoder's states (cross-attention) or to the prompt, and to the tokens before it.

"Parameters" are those of matmuls: the input embedding is a table lookup and is left out; the output
head (lm_head) is a matmul and is counted in the decoder, even when it shares the embedding's weights.
Norms, biases and softmax are ignored (well under 1% here). The count excludes padding when given real
token counts; that is the point of MFU: padded positions cost time but are no useful work.

The peak is measured, not taken from a data sheet: the best FLOP/s of square matmuls of one dtype at
the benchmark's thread count, in the same run as the benchmark (so a busy machine lowers both).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModelShape:
    """What the FLOP estimates need from a model. A decoder-only model has no encoder (0 and 0)."""

    encoder_parameters: int
    decoder_parameters: int
    encoder_layers: int
    decoder_layers: int
    attention_width: int  # query heads x head dimension
    head_parameters: int = 0  # the output head's (lm_head), counted in decoder_parameters too

    @property
    def encoder_decoder(self) -> bool:
        return self.encoder_layers > 0


def attention_flops(layers: int, width: int, queries: int, keys: int) -> float:
    """Forward FLOPs of attention scores and the weighted sum of values: 4 * layers * width * queries * keys."""
    return 4.0 * layers * width * queries * keys


def forward_flops(shape: ModelShape, source_tokens: int, target_tokens: int) -> float:
    """Forward FLOPs of one sequence: the encoder on the source, the decoder on the target.

    A decoder-only model reads everything (prompt and summary) as ``target_tokens``, with ``source_tokens`` 0.
    """
    parameters = 2.0 * (shape.encoder_parameters * source_tokens + shape.decoder_parameters * target_tokens)
    encoder_self = attention_flops(shape.encoder_layers, shape.attention_width, source_tokens, source_tokens)
    decoder_self = attention_flops(shape.decoder_layers, shape.attention_width, target_tokens, target_tokens)
    cross = attention_flops(shape.decoder_layers, shape.attention_width, target_tokens, source_tokens)
    return parameters + encoder_self + decoder_self + (cross if shape.encoder_decoder else 0.0)


def training_flops(shape: ModelShape, source_tokens: int, target_tokens: int) -> float:
    """Training FLOPs of one sequence: 3x its forward (the backward costs twice the forward), i.e. 6 * N * D."""
    return 3.0 * forward_flops(shape, source_tokens, target_tokens)


def generation_flops(shape: ModelShape, source_tokens: int, new_tokens: int) -> float:
    """Forward FLOPs to read a prompt of ``source_tokens`` and write ``new_tokens`` (greedy, KV cache).

    The prompt goes through the encoder (encoder-decoder) or the decoder (decoder-only) once; then each
    new token costs the decoder's parameters, plus attention to the S prompt positions (cross-attention
    to the encoder's states, or self-attention to the cached prompt) and to the new tokens so far (1..n).
    A decoder-only model's output head does not run on the prompt: generation keeps only the last
    position's logits (transformers' ``logits_to_keep=1``), which give the first new token and are counted
    with the new tokens (so one decoder pass per dialogue is counted twice: well under 1%).
    """
    s, n, width, layers = source_tokens, new_tokens, shape.attention_width, shape.decoder_layers
    if shape.encoder_decoder:
        prompt = 2.0 * shape.encoder_parameters * s + attention_flops(shape.encoder_layers, width, s, s)
    else:
        body = shape.decoder_parameters - shape.head_parameters
        prompt = 2.0 * body * s + attention_flops(layers, width, s, s)
    new_token_keys = n * s + n * (n + 1) // 2  # new token t (1..n) attends to s prompt positions and t tokens
    return prompt + 2.0 * shape.decoder_parameters * n + attention_flops(layers, width, 1, new_token_keys)


def model_shape(model) -> ModelShape:
    """The matmul parameters of the encoder and the decoder (lm_head included), layer counts and attention width."""
    config = model.config
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    heads = _first(config, "num_heads", "num_attention_heads", "encoder_attention_heads")
    head_dim = _first(config, "d_kv", "head_dim", default=_first(config, "d_model", "hidden_size") // heads)
    if config.is_encoder_decoder:
        encoder = sum(p.numel() for p in model.get_encoder().parameters() if p is not embedding)
        decoder = sum(p.numel() for p in model.get_decoder().parameters() if p is not embedding)
        encoder_layers = _first(config, "num_layers", "encoder_layers")
        decoder_layers = _first(config, "num_decoder_layers", "decoder_layers", default=encoder_layers)
    else:
        encoder, encoder_layers = 0, 0
        decoder = sum(p.numel() for p in model.parameters() if p is not embedding and p is not head)
        decoder_layers = _first(config, "num_hidden_layers", "n_layer", "num_layers")
    return ModelShape(encoder, decoder + head.numel(), encoder_layers, decoder_layers, heads * head_dim, head.numel())


def _first(config, *names: str, default: int | None = None) -> int:
    """The first of ``names`` that ``config`` sets (not None), else ``default``."""
    for name in names:
        if getattr(config, name, None) is not None:
            return int(getattr(config, name))
    if default is None:
        raise ValueError(f"the model config sets none of {names}")
    return default


def matmul_peak(dtype: torch.dtype, threads: int, size: int = 2048, trials: int = 5, warmup: int = 2) -> float:
    """The best FLOP/s of ``size`` x ``size`` matmuls in ``dtype`` on the CPU with ``threads`` torch threads.

    ``warmup`` untimed matmuls first, then the best of ``trials`` (each 2 * size**3 FLOPs). Torch's thread
    count is restored afterwards.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=generator).to(dtype)
        b = torch.randn(size, size, generator=generator).to(dtype)
        for _ in range(warmup):
            torch.mm(a, b)
        best = float("inf")
        for _ in range(trials):
            started = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    return 2.0 * size**3 / best
