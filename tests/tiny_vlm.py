"""Write a tiny random-weight vision-language model for tests: a llama-architecture text GGUF and a
LLaVA-style (`mlp` projector) CLIP mmproj GGUF, with the `gguf` package.

What llama.cpp's multimodal loader needs: the text model's embedding width equals the projector's output
width; the byte-level BPE tokenizer has at least one merge; the chat template renders list-style content.
The weights are random, so the text it writes means nothing: tests assert on token counts and errors.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

N_EMBD = 64  # the text model's width = the projector's output width
VISION_EMBD = 32
IMAGE_SIZE = 32
PATCH = 8
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for p in m['content'] %}{% if p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _bytes_to_unicode() -> list[str]:
    """GPT-2's byte → printable character table (its byte-level BPE alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.02).astype(np.float32)


def write_text_model(path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    tokens = [*_bytes_to_unicode(), "<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    kinds = [gguf.TokenType.NORMAL] * 256 + [gguf.TokenType.CONTROL] * 3
    vocab, n_ff = len(tokens), 128
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("ember-tiny-vlm")
    w.add_context_length(512)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_rope_dimension_count(N_EMBD // 4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(kinds)
    w.add_token_merges(["Ġ t"])
    w.add_bos_token_id(vocab - 1)
    w.add_eos_token_id(vocab - 2)
    w.add_add_bos_token(False)
    w.add_chat_template(TEMPLATE)
    w.add_tensor("token_embd.weight", _w(rng, vocab, N_EMBD))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))
    w.add_tensor("output.weight", _w(rng, vocab, N_EMBD))
    for name, shape in {
        "attn_norm.weight": (N_EMBD,),
        "attn_q.weight": (N_EMBD, N_EMBD),
        "attn_k.weight": (N_EMBD, N_EMBD),
        "attn_v.weight": (N_EMBD, N_EMBD),
        "attn_output.weight": (N_EMBD, N_EMBD),
        "ffn_norm.weight": (N_EMBD,),
        "ffn_gate.weight": (n_ff, N_EMBD),
        "ffn_up.weight": (n_ff, N_EMBD),
        "ffn_down.weight": (N_EMBD, n_ff),
    }.items():
        value = np.ones(shape, np.float32) if name.endswith("norm.weight") else _w(rng, *shape)
        w.add_tensor(f"blk.0.{name}", value)
    _finish(w)


def write_projector(path: Path, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    n_pos = (IMAGE_SIZE // PATCH) ** 2 + 1
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_text_encoder", False)
    w.add_bool("clip.use_gelu", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    w.add_uint32("clip.vision.patch_size", PATCH)
    w.add_uint32("clip.vision.embedding_length", VISION_EMBD)
    w.add_uint32("clip.vision.feed_forward_length", 2 * VISION_EMBD)
    w.add_uint32("clip.vision.projection_dim", N_EMBD)
    w.add_uint32("clip.vision.block_count", 1)
    w.add_uint32("clip.vision.attention.head_count", 2)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_uint32("general.file_type", 0)
    e = VISION_EMBD
    tensors = {
        "v.patch_embd.weight": _w(rng, e, 3, PATCH, PATCH),
        "v.class_embd": _w(rng, e),
        "v.position_embd.weight": _w(rng, n_pos, e),
        "v.pre_ln.weight": np.ones(e, np.float32),
        "v.pre_ln.bias": np.zeros(e, np.float32),
        "mm.0.weight": _w(rng, N_EMBD, e),
        "mm.0.bias": np.zeros(N_EMBD, np.float32),
        "mm.2.weight": _w(rng, N_EMBD, N_EMBD),
        "mm.2.bias": np.zeros(N_EMBD, np.float32),
    }
    for part, shape in {
        "attn_q": (e, e),
        "attn_k": (e, e),
        "attn_v": (e, e),
        "attn_out": (e, e),
        "ffn_up": (2 * e, e),
        "ffn_down": (e, 2 * e),
    }.items():
        tensors[f"v.blk.0.{part}.weight"] = _w(rng, *shape)
        tensors[f"v.blk.0.{part}.bias"] = np.zeros(shape[0], np.float32)
    for norm in ("ln1", "ln2"):
        tensors[f"v.blk.0.{norm}.weight"] = np.ones(e, np.float32)
        tensors[f"v.blk.0.{norm}.bias"] = np.zeros(e, np.float32)
    for name, value in tensors.items():
        w.add_tensor(name, value)
    _finish(w)


def _finish(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_pair(directory: Path) -> tuple[Path, Path]:
    """The text model and its projector in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    model, projector = directory / "tiny-vlm.gguf", directory / "tiny-vlm-mmproj.gguf"
    write_text_model(model)
    write_projector(projector)
    return model, projector
