"""L1 and sum-of-L2-norms over VGG16's parameters (seed 000's ``Regularization(model)``).

``L1 = sum over params of sum(|p|)`` and ``L2 = sum over params of torch.norm(p, 2)`` (a sum of
per-tensor norms, not the global norm) over the 138M parameters of ``torchvision.models.vgg16()``,
biases included. jaxreg initializes VGG16 in Flax, converts the weights to the torch twin with
``jaxreg.convert.flax_to_torch`` and computes both sums in both frameworks from the same weights.
"""


def get_config():
    """jaxreg run vgg-norms --framework both"""
    return {
        "name": "vgg-norms",
        "seeds": "000",
        "model": {"name": "VGG16", "num_classes": 1000, "hidden": 4096},
        # Flax init needs an input (NHWC; >= 32 pixels); the parameters do not depend on its size.
        "input_shape": [1, 32, 32, 3],
        "seed_figure": "values printed (none quoted)",
    }
