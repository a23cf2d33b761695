"""The math: activations, initializers, losses, optimizers, the dense network and the fit
loop. numpy only: no files, no terminal, no config models."""
