"""Bayesian matrix factorization by Gibbs sampling (``bpmf``; Salakhutdinov & Mnih 2008).

The model is explicit ALS's, r = mu + b_u + b_i + p_u.q_i + N(0, 1/beta), with a Gaussian prior on
each side's rows x = [p, b] (bias as the (k+1)-th coordinate) whose mean m0 and precision P get a
Normal-Wishart hyperprior (beta0 = 2, nu0 = K, W0 = I, mean 0: the paper's). One Gibbs sweep is

    for dst, src in (user, item), (item, user):
        (m0, P) ~ Normal-Wishart posterior given dst's current rows (rows with ratings only)
        every dst row ~ N(A^{-1}(P m0 + beta sum t f), A^{-1}),  A = P + beta sum f f^T
    beta ~ Gamma(1 + N/2, 1 + SSE/2)     (model.sample_noise; else beta = model.noise_precision)

The row draws are a map over dst blocks (kernels/bpmf.py), the hyperparameters a reduction of the
full dst matrix in the driver (n k^2, cheap beside the nnz k^2 of the rows). Every random number is
keyed by (seed, sweep, side[, row]) -- counter-based -- so the chain is the same on every engine and
for any block count, and a resumed chain continues the uninterrupted one.

After ``burn_in`` sweeps each sweep's (user, item) matrices are kept; the prediction is the average
over the S kept samples (rows without training ratings, drawn from the prior, are left out: zero rows,
so a cold user or item falls back to the biases as with every other kind). The fitted model stores them in the ordinary two-matrix layout so every job
(predict, evaluate, score, recommend) runs unchanged -- ``posterior_matrices`` below.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from recsys_dist.config import ModelConfig
from recsys_dist.errors import FitError
from recsys_dist.hashing import normal
from recsys_dist.kernels.row_threads import set_threads
from recsys_dist.kernels.bpmf import sample_in_block
from recsys_dist.blocking import InBlock

SIDES = {"user": 0, "item": 1}
STREAM_BASE = 1_000  # hashing streams 0..2 are the initial factors and fold-in; bpmf draws come after
SSE_SCALE = 2.0 ** 16  # squared errors are summed in this fixed point so the sum is the same for any blocks


def draw_stream(sweep: int, side: int) -> int:
    return STREAM_BASE + 2 * sweep + side


def sample_block(block: InBlock, src: np.ndarray, _prev: None, mu: float, beta: float, prior_prec: np.ndarray,
                 prior_rhs: np.ndarray, seed: int, stream: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Solve task: the block's rows drawn from their conditionals, and stats [fixed-point SSE, nnz, seconds]."""
    if src.dtype != np.float32 or not src.flags.c_contiguous:
        raise FitError(f"block {block.block_id}: src matrix must be C-contiguous float32, got {src.dtype}")
    set_threads(threads)
    started = time.perf_counter()
    n = block.hi - block.lo
    z = np.ascontiguousarray(normal(seed, stream, np.arange(block.lo, block.hi), src.shape[1]))
    rows = np.empty((n, src.shape[1]), np.float32)
    row_sse = np.empty(n, np.float64)
    bad = sample_in_block(block.indptr, block.indices, block.values, src, float(mu), float(beta),
                          np.ascontiguousarray(prior_prec, np.float64), np.ascontiguousarray(prior_rhs, np.float64),
                          z, rows, row_sse)
    if bad >= 0:
        raise FitError(f"block {block.block_id}: the posterior precision of row {block.lo + bad} is not positive "
                       "definite; lower model.noise_precision")
    sse = float(np.round(row_sse * SSE_SCALE).sum())  # integers below 2^53 add exactly, in any order
    return rows, np.array([sse, block.nnz, time.perf_counter() - started], np.float64)


def draw_hyper(rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(prior precision P, P m0) drawn from the Normal-Wishart posterior given ``rows`` [N, K]."""
    n, dim = rows.shape
    beta0, nu0 = 2.0, float(dim)
    x = rows.astype(np.float64)
    mean = x.mean(axis=0) if n else np.zeros(dim)
    scatter = x.T @ x - n * np.outer(mean, mean)  # N S, without an [N, K] centred copy (half the time)
    w_inv = np.eye(dim) + scatter + (beta0 * n / (beta0 + n)) * np.outer(mean, mean)
    w = np.linalg.inv(w_inv)
    w = (w + w.T) / 2
    precision = wishart(w, nu0 + n, rng)
    m0 = n * mean / (beta0 + n)
    chol = np.linalg.cholesky((beta0 + n) * precision)
    m0 = m0 + np.linalg.solve(chol.T, rng.standard_normal(dim))  # m0 ~ N(m0*, ((beta0 + N) P)^{-1})
    return precision, precision @ m0


def wishart(scale: np.ndarray, dof: float, rng: np.random.Generator) -> np.ndarray:
    """A Wishart(scale, dof) draw by Bartlett's decomposition."""
    dim = scale.shape[0]
    lower = np.linalg.cholesky(scale)
    bartlett = np.tril(rng.standard_normal((dim, dim)), -1)
    bartlett[np.diag_indices(dim)] = np.sqrt(rng.chisquare(dof - np.arange(dim)))
    half = lower @ bartlett
    return half @ half.T


def hyper_rng(seed: int, sweep: int, side: int) -> np.random.Generator:
    """Philox (counter-based) keyed by (seed, sweep, side): the hyperparameter draws of one half-step."""
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, sweep, side, 0xB9AF])))


class BPMFSteps:
    sides = ("user", "item")

    def __init__(self, cfg: ModelConfig, mu: float) -> None:
        self.cfg, self.mu = cfg, mu
        self.rank = cfg.rank
        self.beta = cfg.noise_precision
        self.counts: dict[str, np.ndarray] = {}
        self.kept: dict[str, list[np.ndarray]] = {"user": [], "item": []}
        self.betas: list[float] = []

    def describe(self) -> str:
        noise = "sampled" if self.cfg.sample_noise else f"fixed at {self.cfg.noise_precision:g}"
        return (f"Gibbs sampling, {self.cfg.burn_in} burn-in sweeps then {self.cfg.n_iter - self.cfg.burn_in} kept; "
                f"noise precision {noise}")

    def tasks_per_iteration(self, n_blocks: dict[str, int]) -> int:
        return n_blocks["user"] + n_blocks["item"]

    def prepare(self, ex: Any, counts: dict[str, np.ndarray], n_blocks: dict[str, int]) -> None:
        self.counts = counts

    def iteration(self, ex: Any, sweep: int) -> dict[str, Any]:
        cfg = self.cfg
        record: dict[str, Any] = {"noise_precision": self.beta}
        for dst, src in (("user", "item"), ("item", "user")):
            t0 = time.perf_counter()
            side = SIDES[dst]
            current = ex.matrix(dst)
            precision, rhs = draw_hyper(current[self.counts[dst] > 0], hyper_rng(cfg.seed, sweep, side))
            params = (self.mu, self.beta, precision, rhs, cfg.seed, draw_stream(sweep, side), ex.task_threads)
            stats = np.sum(ex.solve(dst, sample_block, src, dst, params), axis=0)
            record[f"{dst}_seconds"] = time.perf_counter() - t0
            record[f"{dst}_task_seconds"] = float(stats[-1])
        sse, nnz = stats[0] / SSE_SCALE, stats[1]
        record["train_rmse"] = float(np.sqrt(sse / nnz))
        if cfg.sample_noise:  # Gamma(1 + N/2, rate 1 + SSE/2), keyed by (seed, sweep)
            rng = hyper_rng(cfg.seed, sweep, 2)
            self.beta = float(rng.gamma(1.0 + nnz / 2.0, 1.0 / (1.0 + sse / 2.0)))
        if sweep >= cfg.burn_in:
            for side in self.sides:
                self.kept[side].append(ex.matrix(side).copy())
            self.betas.append(record["noise_precision"])
        record["kept_samples"] = len(self.betas)
        record["next_noise_precision"] = self.beta  # what a resumed chain continues with
        return record

    @staticmethod
    def summary(record: dict[str, Any]) -> str:
        return (f"train RMSE {record['train_rmse']:.4f} (this sample), noise precision {record['noise_precision']:.3g}"
                f", {record['kept_samples']} kept")

    # --- the driver's hooks: the averaged model, checkpoints and resume ---

    def posterior(self) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        """(user, item, config entry) of the posterior layout over the kept samples; None before any is kept."""
        if not self.betas:
            return None
        user, item = posterior_matrices(np.stack(self.kept["user"]), np.stack(self.kept["item"]))
        # rows without ratings hold prior draws: zero them, so they fall back to the biases as in every kind
        user[self.counts["user"] == 0] = 0.0
        item[self.counts["item"] == 0] = 0.0
        noise_variance = float(np.mean(1.0 / np.asarray(self.betas)))
        return user, item, {"samples": len(self.betas), "rank": self.rank, "noise_variance": noise_variance}

    def checkpoint_arrays(self) -> dict[str, np.ndarray]:
        return {f"{side}_kept": np.stack(self.kept[side]) if self.betas else
                np.zeros((0, 0, 0), np.float32) for side in self.sides}

    def restore(self, arrays: dict[str, np.ndarray], history: list[dict[str, Any]]) -> None:
        """Continue the chain of a checkpoint: its kept samples and (from the log) the next noise precision."""
        for side in self.sides:
            self.kept[side] = list(arrays.get(f"{side}_kept", np.zeros((0, 0, 0), np.float32)))
        self.betas = [h["noise_precision"] for h in history if h["iteration"] > self.cfg.burn_in]
        if len(self.betas) != len(self.kept["user"]):
            raise FitError("the checkpoint's kept samples do not match its training log; train into a new --out")
        if history:
            self.beta = float(history[-1]["next_noise_precision"])


def posterior_matrices(user: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The S kept samples [S, n, k+1] of each side as one [n, S (k+2) + 1] matrix per side:

        user row  [p^1/sqrt(S), ..., p^S/sqrt(S),  b_u^1, ..., b_u^S,  0, ..., 0,     mean b_u]
        item row  [q^1/sqrt(S), ..., q^S/sqrt(S),  0, ..., 0,          b_i^1 ... b_i^S, mean b_i]

    so the ordinary prediction mu + b_u + b_i + p.q of these rows is exactly the posterior average
    (1/S) sum_s (mu + b_u^s + b_i^s + p^s.q^s) -- the bias-sample columns meet zeros -- and top-K
    scoring ranks by it. ``sample_predictions`` reads the samples back for the predictive spread.
    """
    n_samples, _, width = user.shape
    out = []
    for side, stack in enumerate((user, item)):
        n = stack.shape[1]
        factors = np.transpose(stack[:, :, :-1], (1, 0, 2)).reshape(n, n_samples * (width - 1)) / np.sqrt(n_samples)
        biases = np.zeros((n, 2 * n_samples), np.float32)
        biases[:, side * n_samples:(side + 1) * n_samples] = stack[:, :, -1].T
        mean_bias = stack[:, :, -1].astype(np.float64).mean(axis=0)[:, None]
        out.append(np.ascontiguousarray(np.hstack([factors, biases, mean_bias]), np.float32))
    return out[0], out[1]


def sample_predictions(user: np.ndarray, item: np.ndarray, mu: float, n_samples: int, rank: int,
                       user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
    """[pairs, S] per-sample predictions mu + b_u^s + b_i^s + p^s.q^s from the posterior layout; an index
    of -1 (unknown) contributes nothing on its side."""
    width = n_samples * rank
    out = np.full((len(user_idx), n_samples), mu, np.float64)
    known_u, known_i = user_idx >= 0, item_idx >= 0
    out[known_u] += user[user_idx[known_u], width:width + n_samples]
    out[known_i] += item[item_idx[known_i], width + n_samples:width + 2 * n_samples]
    both = np.flatnonzero(known_u & known_i)
    for lo in range(0, len(both), 4096):  # chunks bound the [pairs, S, k] temporaries
        pick = both[lo:lo + 4096]
        p = user[user_idx[pick], :width].reshape(len(pick), n_samples, rank)
        q = item[item_idx[pick], :width].reshape(len(pick), n_samples, rank)
        out[pick] += n_samples * np.einsum("psk,psk->ps", p, q, dtype=np.float64)
    return out


def predictive_std(user: np.ndarray, item: np.ndarray, mu: float, posterior: dict[str, Any], user_idx: np.ndarray,
                   item_idx: np.ndarray) -> np.ndarray:
    """Standard deviation of a new rating given the posterior: sqrt(spread over samples + noise variance)."""
    preds = sample_predictions(user, item, mu, int(posterior["samples"]), int(posterior["rank"]), user_idx, item_idx)
    return np.sqrt(preds.var(axis=1) + float(posterior["noise_variance"]))


FOLD_IN_STREAM_BASE = 1 << 40  # above every sweep's draw_stream: fold-in draws never reuse training's


def fold_in_bpmf(user: np.ndarray, item: np.ndarray, mu: float, posterior: dict[str, Any], user_counts: np.ndarray | None,
                 rows: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_new: int, keys: list[int],
                 seed: int) -> np.ndarray:
    """Posterior-layout rows [n_new, S (k+2) + 1] of users folded in without retraining.

    For each kept sample s the user's row is drawn from its Gibbs conditional given that sample's item
    rows: N(A^{-1}(P m0 + beta sum t f), A^{-1}), A = P + beta sum f f^T over the user's ratings, f = [q_j^s, 1],
    t = r - mu - b_j^s, with (m0, P) drawn from the Normal-Wishart posterior of sample s's trained user rows
    (as the sweep that made the sample did) and beta = 1 / the model's noise variance. So the folded-in
    user is averaged over S draws exactly as a trained one, and the predictive std keeps the spread of
    both sides' samples. Draws are keyed by (seed, sample, the user's key): the same fold-in gives the same
    rows. ``rows`` gives each rating's new-user row (0..n_new-1), ``items`` its item index."""
    n_samples, rank = int(posterior["samples"]), int(posterior["rank"])
    width, beta = n_samples * rank, 1.0 / float(posterior["noise_variance"])
    scale = np.sqrt(n_samples)
    trained = user_counts > 0 if user_counts is not None else user.any(axis=1)
    order = np.argsort(rows, kind="stable")
    bounds = np.searchsorted(rows[order], np.arange(n_new + 1))
    out = np.zeros((n_new, user.shape[1]), np.float64)
    key_rows = np.array([k >> 22 for k in keys], np.int64)
    for s in range(n_samples):
        q = np.hstack([item[:, s * rank:(s + 1) * rank].astype(np.float64) * scale, np.ones((len(item), 1))])
        b_item = item[:, width + n_samples + s].astype(np.float64)
        sample_users = np.hstack([user[trained, s * rank:(s + 1) * rank] * scale, user[trained, width + s:width + s + 1]])
        precision, prior_rhs = draw_hyper(sample_users, hyper_rng(seed, s, 0xF01D))
        z = normal(seed, FOLD_IN_STREAM_BASE + s, key_rows, rank + 1)
        for r in range(n_new):
            mine = order[bounds[r]:bounds[r + 1]]
            f = q[items[mine]]
            t = ratings[mine] - mu - b_item[items[mine]]
            chol = np.linalg.cholesky(precision + beta * f.T @ f)
            mean = np.linalg.solve(chol.T, np.linalg.solve(chol, prior_rhs + beta * f.T @ t))
            x = mean + np.linalg.solve(chol.T, z[r])  # covariance (L L^T)^{-1}
            out[r, s * rank:(s + 1) * rank] = x[:rank] / scale
            out[r, width + s] = x[rank]
    out[:, -1] = out[:, width:width + n_samples].mean(axis=1)
    return out.astype(np.float32)
