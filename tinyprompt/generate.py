"""Text generation with a KV cache: greedy by default, or sampling (temperature, top-k, top-p).

The first call runs every position (soft prompt + text) once and keeps each block's keys and values.
Each new token then runs alone through the blocks, attending to the cached keys and values, so a step
costs O(L) instead of re-running all L positions. The soft prompt's keys and values are computed once
and reused by every step.
"""

import numpy as np

from . import validate
from .errors import InvalidValue, TinyPromptError
from .gpt2 import present


def apply_repetition_penalty(logits, seen, penalty):
    """CTRL's penalty, as transformers applies it: a seen token's logit is divided by `penalty` if positive,
    multiplied by it if negative -- either way it becomes less likely."""
    if penalty != 1.0 and len(seen):
        ids = np.unique(seen)
        logits[ids] = np.where(logits[ids] > 0, logits[ids] / penalty, logits[ids] * penalty)
    return logits


def sample(logits, temperature, top_k, top_p, rng):
    """One token id from logits [V]: greedy when temperature == 0, else a draw after top-k and top-p."""
    if temperature == 0:
        return int(np.argmax(logits))
    logits = logits.astype(np.float64) / temperature
    if top_k:
        kth = np.sort(logits)[-min(top_k, len(logits))]
        logits = np.where(logits < kth, -np.inf, logits)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if top_p < 1.0:  # keep the smallest set of most likely tokens whose mass reaches top_p
        order = np.argsort(-probs, kind="stable")
        cum = np.cumsum(probs[order])
        drop = order[cum - probs[order] >= top_p]  # tokens after the mass already reached top_p
        probs[drop] = 0.0
        probs /= probs.sum()
    return int(rng.choice(len(probs), p=probs))


def generate(model, input_ids, prompt=None, max_new_tokens=50, temperature=0.0, top_k=0, top_p=1.0,
             repetition_penalty=1.0, eos_id=50256, seed=0):
    """Continue `input_ids` (a list of ints) after the soft prompt [P, C] (or none). Returns the new ids,
    stopping at `eos_id` (included) or after `max_new_tokens`."""
    options = validate.sampling("python", max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed)
    max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed = options.values()
    validate.prompt("prompt", prompt, model.config.n_embd)
    rng = np.random.default_rng(seed)
    ids = list(input_ids)
    if not ids and prompt is None:
        raise InvalidValue("the text to continue is empty and there is no prompt: nothing to continue from")
    x = model.embed(np.array([ids], dtype=np.int64), prompt)  # [1, P+T, C]
    room = model.config.n_positions - x.shape[1]
    if max_new_tokens > room:
        raise TinyPromptError(f"max_new_tokens={max_new_tokens} does not fit: only {room} positions are left "
                              f"of n_positions={model.config.n_positions}")
    new, past = [], None
    for _ in range(max_new_tokens):
        h, caches = model.forward(x, past)
        past = present(caches)
        logits = model.head(h[0, -1])  # [V]: only the last position's logits are needed
        token = sample(apply_repetition_penalty(logits, ids + new, repetition_penalty), temperature, top_k, top_p, rng)
        new.append(token)
        if token == eos_id:
            break
        x = model.embed(np.array([[token]]), start=past[0][0].shape[2])  # [1, 1, C] at the next position
    return new
