"""The seeds' NumPy dropout references against jaxreg, on the same masks (seeds 000/002).

Seed 000's ``Dropout(prob)`` (``prob`` = keep probability, mask scaled by 1/prob) and seed 002's
cs231n 3-layer net with vanilla (scale at test time) and inverted dropout. Each reference draws
its masks with NumPy; jaxreg replays the same keep masks through ``dropout_with_mask`` /
``vanilla_dropout`` and the torch side through the d2l formula; the table reports the largest
absolute difference (0 means bit-identical).
"""


def get_config():
    """jaxreg run numpy-dropout --framework both"""
    return {
        "name": "numpy-dropout",
        "seeds": "000/002",
        "keep_prob": 0.5,
        "shape": [64, 100],
        "cs231n": {"dims": [20, 50, 40, 10], "batch": 32},
        "trials": 5,
        "seed_figure": "exact formulas (no figure)",
    }
