"""Seed 004 exercises 1-2: accuracy against the weight-decay lambda, lambda chosen on validation.

The 784-256-10 weight-decay MLP of ``experiments/weight_decay.py`` (SGD lr 0.1, batch 256,
10 epochs), decay on the weights only, 8 lambdas from 1e-4 to 1e-1 (log-spaced) x 2 seeds; 10000
training images are held out as the validation split that picks lambda.
"""

import numpy as np


def get_config():
    """jaxreg sweep lambda-curve"""
    return {
        "name": "lambda-curve",
        "description": "seed 004 exercise 1-2: train/validation/test accuracy against the "
        "weight-decay lambda (log scale), lambda chosen on a 10000-image validation split",
        "base": "weight_decay",
        "grid": {"weight_decay": np.geomspace(1e-4, 1e-1, 8).tolist()},
        "seeds": [0, 1],
        "validation": 10000,
        "plots": [
            {
                "file": "accuracy_vs_lambda.png",
                "kind": "final_vs",
                "axis": "weight_decay",
                "mark": "val_acc",
            }
        ],
        "analysis": "lambda_choice",
    }
