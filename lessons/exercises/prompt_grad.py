"""Exercise: the gradient of the soft prompt from the gradient of the embedded sequence.

forward: x = concatenate([broadcast(prompt, (B, P, C)), wte[ids]], axis=1) + wpe[:L]   -> [B, L, C]
The same prompt [P, C] sits in front of every row; wte and wpe are frozen.
Given dx [B, L, C] and P, return dprompt [P, C]. (It is one line: a slice and a sum.)
Check: python lessons/exercises/check.py prompt_grad
"""


def prompt_grad(dx, P):
    raise NotImplementedError("return dprompt [P, C]")
