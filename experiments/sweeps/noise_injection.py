"""Seed 004's open exercise: a noise-injection technique that beats dropout on Fashion-MNIST?

The 784-256-256-10 MLP of ``experiments/dropout.py`` (SGD lr 0.5, batch 256, 10 epochs) with
each regularizer below (``jaxreg.models.NoiseMLP``). Each technique's grid is tuned on a
10000-image validation split carved from the training set (tuning seed 100), the best
point by mean validation accuracy is trained on seeds 0-4, and the report gives test accuracy
with 95% intervals and the paired difference to dropout (``jaxreg.lab.noise_injection``).
"""


def get_config():
    """jaxreg sweep noise-injection"""
    rates = [0.1, 0.2, 0.3, 0.5]
    return {
        "name": "noise-injection",
        "description": "seed 004's exercise: find a noise-injection technique that beats "
        "dropout on Fashion-MNIST for a fixed architecture (784-256-256-10, SGD lr 0.5, batch "
        "256); each technique tuned on a validation split, then confirmed over seeds",
        "base": "dropout",
        "validation": 10000,
        "tune_seeds": [100],
        "seeds": [0, 1, 2, 3, 4],
        "reference": "dropout",
        "techniques": [
            {"name": "none", "technique": "none", "note": "no regularization"},
            {
                "name": "dropout",
                "technique": "dropout",
                "grid": {"strength": rates},
                "note": "inverted dropout after both hidden ReLUs (one rate for both)",
            },
            {
                "name": "dropconnect",
                "technique": "dropconnect",
                "grid": {"strength": rates},
                "note": "DropConnect on lin2 and lin3's weights (Wan et al. 2013)",
            },
            {
                "name": "gaussian dropout",
                "technique": "gaussian_dropout",
                "grid": {"strength": rates},
                "note": "multiplicative N(1, p/(1-p)) noise after both hidden ReLUs",
            },
            {
                "name": "gaussian noise",
                "technique": "gaussian_noise",
                "grid": {"strength": [0.1, 0.3, 1.0, 3.0]},
                "note": "additive N(0, s^2) noise after both hidden ReLUs",
            },
            {
                "name": "weight decay",
                "technique": "none",
                "grid": {"weight_decay": [1e-4, 3e-4, 1e-3, 3e-3]},
                "note": "SGD's coupled decay on the weights only (seed 004's param groups)",
            },
            {
                "name": "max-norm + dropout",
                "technique": "dropout",
                "max_norm": 3.0,
                "grid": {"max_norm": [1.0, 2.0, 3.0, 4.0]},
                "inherit": {"strength": "dropout"},
                "note": "dropout at the rate chosen for dropout, each unit's incoming weights "
                "kept within max_norm after every step (Srivastava et al. 2014)",
            },
        ],
    }
