"""Solution: the prompt gradient is a slice of dx, summed over the rows that share the prompt."""


def prompt_grad(dx, P):
    return dx[:, :P].sum(axis=0)  # [B, L, C] -> [P, C]
