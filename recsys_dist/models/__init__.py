"""One module per model kind: its task functions (module-level, arrays in, arrays out) and its
``Steps``, the object the training driver asks for one iteration (or epoch) at a time.

Every model keeps the same factor layout as explicit ALS ([n, k+1] float32 per side, the last
column a bias), so saving, checkpoints, top-K scoring, evaluation and every engine work for all
kinds unchanged. Ranking models keep mu = 0 and the user bias column 0: ``implicit_als`` has no
biases, ``bpr`` an item bias, ``popular`` rank 0 with the item's interaction count as its bias.

A ``Steps`` object never imports an engine: the driver hands it the executor, and it calls the
executor's ``solve``, ``map_blocks`` or ``update_strata`` with its own task functions. A sampler
(``bpmf``) also has ``posterior()`` (the averaged model's matrices), ``checkpoint_arrays()`` and
``restore(arrays, history)``, which the driver calls when present.
"""

from __future__ import annotations

from typing import Any

from recsys_dist.config import ModelConfig


def steps_for(cfg: ModelConfig, mu: float, train: Any = None) -> Any:  # noqa: ANN401 - a Dataset
    """The ``Steps`` of an iterative model kind (als, bias, implicit_als, bpr, bpmf, genre_als: which reads the
    item genres and user demographics of ``train``)."""
    if cfg.kind == "genre_als":
        from recsys_dist.models.genre_als import GenreSteps

        return GenreSteps.for_dataset(cfg, mu, train)
    if cfg.kind == "implicit_als":
        from recsys_dist.models.implicit_als import ImplicitSteps

        return ImplicitSteps(cfg, mu)
    if cfg.kind == "bpr":
        from recsys_dist.models.bpr import BPRSteps

        return BPRSteps(cfg, mu)
    if cfg.kind == "bpmf":
        from recsys_dist.models.bpmf import BPMFSteps

        return BPMFSteps(cfg, mu)
    from recsys_dist.models.explicit import ExplicitSteps

    return ExplicitSteps(cfg, mu)
