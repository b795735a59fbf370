"""The spread over seeds, which differences it resolves, and what that says about the paper's ordering.

A difference between two methods counts as resolved when it exceeds twice
its combined standard error, sqrt(s_a^2 / n_a + s_b^2 / n_b) with s the
standard deviation over a method's n seeds (about a 95% interval). A method
run with one seed has no spread and resolves nothing; bicubic upsampling is
deterministic (standard deviation 0).
"""

import math
import statistics

SE_MULTIPLE = 2


def summary(values):
    """Mean, sample standard deviation (None for one value) and count of ``values``."""
    values = list(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return dict(mean=statistics.fmean(values), std=std, n=len(values))


def exact(value):
    """The summary of a deterministic number (bicubic): no spread at all."""
    return dict(mean=value, std=0.0, n=1)


def combined_se(a, b):
    """The standard error of ``a``'s mean minus ``b``'s, or None when either has no spread measured."""
    if a['std'] is None or b['std'] is None:
        return None
    return math.sqrt(a['std'] ** 2 / a['n'] + b['std'] ** 2 / b['n'])


def resolved(a, b):
    """1 when ``a`` is above ``b`` by more than twice their combined standard error, -1 when below, else 0."""
    se = combined_se(a, b)
    delta = a['mean'] - b['mean']
    if se is None or abs(delta) <= SE_MULTIPLE * se:
        return 0
    return 1 if delta > 0 else -1


def _pair_text(high, low):
    """A resolved pair, with the margin it had to beat."""
    margin = SE_MULTIPLE * combined_se(high, low)
    delta = high['mean'] - low['mean']
    return f'{high["label"]} above {low["label"]} ({delta:+.2f} dB; {SE_MULTIPLE} x combined SE {margin:.2f} dB)'


def _difference(high, low):
    return f'{high["label"]} and {low["label"]} ({high["mean"] - low["mean"]:+.2f} dB)'


def paper_pairs(methods):
    """Every pair (higher, lower) of ``methods`` with published numbers, ordered as the paper has them."""
    published = sorted((m for m in methods if m.get('paper')), key=lambda m: m['paper'], reverse=True)
    return [(high, low) for i, high in enumerate(published) for low in published[i + 1 :]]


def ordering_sentences(methods):
    """What the data say about each of the paper's pairwise orderings, in words.

    Args:
        methods (list[dict]): label, mean, std, n (PSNR over seeds) and paper (published (PSNR, SSIM) or None).

    Returns:
        list[str]: one sentence each for the orderings the data support, contradict, cannot resolve and
        cannot judge for want of a spread (a sentence is left out when no pair falls under it), then the
        agreement in numbers.
    """
    verdicts = {1: [], -1: [], 0: []}
    for high, low in paper_pairs(methods):
        verdicts[resolved(high, low)].append((high, low))
    supported, contradicted, unresolved = verdicts[1], verdicts[-1], verdicts[0]
    sentences = []
    if supported:
        sentences.append(
            "The data support the paper's ordering for "
            + '; '.join(_pair_text(high, low) for high, low in supported)
            + '.'
        )
    if contradicted:
        sentences.append(
            'The data contradict the paper for '
            + '; '.join(
                _pair_text(low, high) + f', where the paper has {high["label"]} above' for high, low in contradicted
            )
            + '.'
        )
    within = [(high, low) for high, low in unresolved if combined_se(high, low) is not None]
    unmeasured = [(high, low) for high, low in unresolved if combined_se(high, low) is None]
    if within:
        sentences.append(
            'The data cannot order '
            + '; '.join(_difference(high, low) for high, low in within)
            + f': the difference is within {SE_MULTIPLE} combined standard errors.'
        )
    if unmeasured:
        sentences.append(
            'With one seed there is no spread to judge by, so the data cannot order '
            + '; '.join(_difference(high, low) for high, low in unmeasured)
            + '.'
        )
    total = len(supported) + len(contradicted) + len(unresolved)
    sentences.append(
        f"Of the paper's {total} pairwise orderings among these methods, {len(supported)} held, "
        f'{len(contradicted)} reversed and {len(unresolved)} could not be resolved at this budget.'
    )
    return sentences
