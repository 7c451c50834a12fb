"""GPT-2 checkpoints: the config, the parameters' names and shapes, saving, and memory-mapping read-only.

A checkpoint is a folder with `config.json` and `model.safetensors`, the files of a Hugging Face GPT-2.
`load_params` reads the safetensors header itself and hands out NumPy views straight into a read-only
memory map of the file: nothing is copied, pages load lazily from the disk cache, several processes share
them, and the frozen weights of prompt tuning cannot be changed by mistake (writing raises ValueError).

params mirror the HF keys, so `h.0.attn.c_attn.weight` is `params["h"][0]["attn"]["c_attn"]["weight"]`.
HF's Conv1D stores weights as [in, out]: y = x @ W + b. Size letters: V vocab, N n_positions, C channels.
Finding a checkpoint folder (a local path, tiny-random, or a hub download) is `hub.py`'s job.
References: the safetensors format (https://github.com/huggingface/safetensors), nanoGPT's from_pretrained.
"""

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save

from tinyprompt.errors import TinyPromptError
from tinyprompt.tokenizer import write_tokenizer_json

# Upper bounds, checked before anything is allocated: a config.json is input like any other file, and
# n_layer = 10**9 must not start a loop over a billion blocks. Each is far above any released GPT-2's.
LIMITS = {"vocab_size": 1_000_000, "n_positions": 65_536, "n_embd": 16_384, "n_layer": 512, "n_head": 1024}


@dataclass(frozen=True)
class GPT2Config:
    vocab_size: int  # V: 50257 byte-level BPE tokens for every GPT-2
    n_positions: int  # N: longest sequence (rows of wpe), 1024
    n_embd: int  # C: channels of the residual stream, 768 for gpt2
    n_layer: int  # transformer blocks, 12 for gpt2
    n_head: int  # H: attention heads; head size D = C / H
    layer_norm_epsilon: float = 1e-5  # added to the variance inside every LayerNorm

    def __post_init__(self):
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
                raise TinyPromptError(f"{name} must be an integer from 1 to {limit}, got {value!r}")
        eps = self.layer_norm_epsilon
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps < 1:
            raise TinyPromptError(f"layer_norm_epsilon must be a number in (0, 1), got {eps!r}")
        if self.n_embd % self.n_head:
            raise TinyPromptError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")

    @classmethod
    def from_json(cls, path) -> "GPT2Config":
        """Read a HF config.json, refusing settings that would change the maths our model implements."""
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise TinyPromptError(f"{path}: no such file") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise TinyPromptError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(raw, dict):
            raise TinyPromptError(f"{path}: expected a JSON object")
        for key in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            if key not in raw:
                raise TinyPromptError(f"{path}: missing key '{key}'")
        # The values HF's GPT2Config uses by default; any other value means a model we do not compute.
        supported = {"activation_function": "gelu_new", "scale_attn_weights": True,
                     "scale_attn_by_inverse_layer_idx": False, "tie_word_embeddings": True}
        for key, value in supported.items():
            if raw.get(key, value) != value:
                raise TinyPromptError(f"{path}: {key} is {raw[key]!r}, tinyprompt supports only {value!r}")
        if raw.get("n_inner") not in (None, 4 * raw["n_embd"]):
            raise TinyPromptError(f"{path}: n_inner is {raw['n_inner']!r}, tinyprompt supports only 4 * n_embd")
        try:
            return cls(**{f: raw[f] for f in cls.__dataclass_fields__ if f in raw})
        except TinyPromptError as e:
            raise TinyPromptError(f"{path}: {e}") from None

    def to_hf_dict(self) -> dict:
        """A complete config.json that transformers' GPT2LMHeadModel.from_pretrained loads."""
        return {
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], **asdict(self),
            "n_inner": None, "activation_function": "gelu_new",  # n_inner None means 4 * n_embd
            "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,  # training-time dropout, as in gpt2
            "initializer_range": 0.02, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False, "use_cache": True, "tie_word_embeddings": True,
            # <|endoftext|> = 50256; a toy vocabulary has none, so point at its last id (transformers checks)
            "bos_token_id": min(50256, self.vocab_size - 1), "eos_token_id": min(50256, self.vocab_size - 1),
        }


def param_shapes(config: GPT2Config) -> dict[str, tuple]:
    """Every parameter's HF key (hub layout) and shape; the loader checks the file against this."""
    V, N, C = config.vocab_size, config.n_positions, config.n_embd
    shapes = {"wte.weight": (V, C), "wpe.weight": (N, C)}
    for i in range(config.n_layer):
        shapes.update({
            f"h.{i}.ln_1.weight": (C,), f"h.{i}.ln_1.bias": (C,),
            f"h.{i}.attn.c_attn.weight": (C, 3 * C), f"h.{i}.attn.c_attn.bias": (3 * C,),
            f"h.{i}.attn.c_proj.weight": (C, C), f"h.{i}.attn.c_proj.bias": (C,),
            f"h.{i}.ln_2.weight": (C,), f"h.{i}.ln_2.bias": (C,),
            f"h.{i}.mlp.c_fc.weight": (C, 4 * C), f"h.{i}.mlp.c_fc.bias": (4 * C,),
            f"h.{i}.mlp.c_proj.weight": (4 * C, C), f"h.{i}.mlp.c_proj.bias": (C,),
        })
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
    return shapes


def flatten(params, prefix="") -> dict[str, np.ndarray]:
    """Nested params -> {"h.0.attn.c_attn.weight": array, ...}."""
    if isinstance(params, np.ndarray):
        return {prefix: params}
    flat = {}
    for key, child in enumerate(params) if isinstance(params, list) else params.items():
        flat.update(flatten(child, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    """{"h.0.attn.c_attn.weight": array, ...} -> nested params, with "h" a list of blocks."""
    params: dict = {}
    for key, array in flat.items():
        *path, leaf = key.split(".")
        node = params
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = array
    params["h"] = [params["h"][str(i)] for i in range(len(params.get("h", {})))]
    return params


def random_params(config: GPT2Config, seed: int = 0, dtype=np.float32) -> dict:
    """GPT-2's initialisation: N(0, 0.02), LayerNorms weight 1 bias 0, residual projections scaled down.

    Unlike HF's init the linear biases are random too (N(0, 0.02)), so a test notices a dropped bias.
    Drawn in float64 then cast, so every dtype gets the same values up to rounding.
    """
    rng = np.random.default_rng(seed)
    flat = {}
    for key, shape in param_shapes(config).items():
        if ".ln_" in key or key.startswith("ln_f"):
            flat[key] = np.full(shape, 1.0 if key.endswith("weight") else 0.0, dtype)
        else:
            # c_proj writes into the residual stream once per block: GPT-2 scales it by 1/sqrt(2 * n_layer)
            # so the stream's variance does not grow with depth.
            std = 0.02 / math.sqrt(2 * config.n_layer) if key.endswith("c_proj.weight") else 0.02
            flat[key] = (rng.standard_normal(shape) * std).astype(dtype)
    return unflatten(flat)


def save_checkpoint(directory, config: GPT2Config, params, tokenizer=True):
    """Write config.json, model.safetensors (keys as in the gpt2 repos on the hub: `h.0.attn.c_attn.weight`)
    and tokenizer.json: a HF GPT-2 folder that tinyprompt and transformers both load."""
    directory = Path(directory)
    flat = flatten(params)
    expected = param_shapes(config)
    for key, array in flat.items():
        if expected.get(key) != array.shape:
            raise TinyPromptError(f"cannot save '{key}' of shape {list(array.shape)}: config wants "
                                  f"{list(expected[key]) if key in expected else 'no such parameter'}")
    if missing := expected.keys() - flat.keys():
        raise TinyPromptError(f"cannot save: params lack {min(missing)!r}")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config.to_hf_dict(), indent=2) + "\n")
    # Write beside, then rename: a crash leaves the old file whole, and a process that has the old file
    # memory-mapped keeps reading it (overwriting it in place would change, or truncate, its arrays).
    # (safetensors' save_file would create the file readable by its owner only, hence save + write_bytes.)
    tmp = directory / "model.safetensors.tmp"
    tmp.write_bytes(save({k: np.ascontiguousarray(v) for k, v in flat.items()}, metadata={"format": "pt"}))
    os.replace(tmp, directory / "model.safetensors")
    if tokenizer:
        write_tokenizer_json(directory / "tokenizer.json")
    return directory


# safetensors dtype -> NumPy dtype, little-endian as the format says.
DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}
IGNORED = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)|lm_head\.weight")  # buffers; lm_head is tied to wte


def read_safetensors(path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file as a read-only view into one memory map of the file.

    The format: 8 bytes little-endian header length n, n bytes of JSON {name: {dtype, shape,
    data_offsets: [begin, end]}}, then the raw data; offsets count from the end of the header.
    F32 and F64 are zero-copy; F16 and BF16 are converted to float32, which copies them into memory
    (silently: that is what a small F16 checkpoint such as tiny-pretrained is meant to cost).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if size < 8 or n > size - 8:
            raise TinyPromptError(f"{path}: corrupt header (header length {n}, file size {size} bytes)")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError) as e:
            raise TinyPromptError(f"{path}: corrupt header, not JSON ({e})") from None
    if not isinstance(header, dict):
        raise TinyPromptError(f"{path}: corrupt header, not a JSON object")
    header.pop("__metadata__", None)
    file = np.memmap(path, dtype=np.uint8, mode="r")  # the one mapping that every tensor views
    tensors = {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = DTYPES.get(info["dtype"]), tuple(info["shape"]), info["data_offsets"]
            count = math.prod(shape)
        except (KeyError, TypeError, ValueError):
            raise TinyPromptError(f"{path}: corrupt header entry for '{name}': {info!r}") from None
        if dtype is None:
            raise TinyPromptError(f"{path}: '{name}' has dtype {info['dtype']}; supported: {', '.join(DTYPES)}")
        if not 0 <= begin <= end or end - begin != count * dtype.itemsize:
            raise TinyPromptError(f"{path}: corrupt header: '{name}' of shape {list(shape)} "
                                  f"cannot span bytes {begin}..{end}")
        if 8 + n + end > size:
            raise TinyPromptError(f"{path}: truncated: '{name}' needs bytes up to {8 + n + end}, "
                                  f"the file has {size}")
        # np.asarray drops the np.memmap subclass but keeps it as .base: a plain, read-only view.
        array = np.asarray(file[8 + n + begin: 8 + n + end]).view(dtype).reshape(shape)
        if info["dtype"] == "F16":
            array = array.astype(np.float32)
        elif info["dtype"] == "BF16":  # bfloat16 is the top 16 bits of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        array.flags.writeable = False
        tensors[name] = array
    return tensors


def load_params(directory) -> tuple[GPT2Config, dict]:
    """(config, params) of a checkpoint folder; every array is a read-only view of model.safetensors."""
    directory = Path(directory)
    config = GPT2Config.from_json(directory / "config.json")
    path = directory / "model.safetensors"
    if not path.is_file():
        raise TinyPromptError(f"{path}: no such file")
    shapes = param_shapes(config)
    needed = 2 * sum(math.prod(shape) for shape in shapes.values())  # at 2 bytes a value (F16), the least
    if path.stat().st_size < needed:
        raise TinyPromptError(f"{path}: {path.stat().st_size} bytes, but config.json describes a model of at "
                              f"least {needed} bytes")
    tensors = read_safetensors(path)
    flat = {}
    for name, array in tensors.items():
        key = name.removeprefix("transformer.")  # save_pretrained's layout -> the hub's
        if IGNORED.fullmatch(key):
            continue  # the causal mask is rebuilt by the model; the output head reuses wte (no copy)
        flat[key] = array
    for key, shape in shapes.items():
        if key not in flat:
            raise TinyPromptError(f"{path}: missing tensor '{key}' (config.json says n_layer={config.n_layer})")
        if flat[key].shape != shape:
            raise TinyPromptError(f"{path}: '{key}' has shape {list(flat[key].shape)}, "
                                  f"config.json says {list(shape)}")
    if extra := flat.keys() - shapes.keys():
        raise TinyPromptError(f"{path}: unexpected tensor '{min(extra)}' for the config in config.json")
    if len({a.dtype for a in flat.values()}) > 1:
        raise TinyPromptError(f"{path}: mixes dtypes {sorted({a.dtype.name for a in flat.values()})}")
    return config, unflatten(flat)
