"""SequenceMDN and its mixture-density head: the density and loss against scipy/numpy, masking,
context (LSTM) versus none (FFNN), overfitting, seeded sampling, biased sampling, NaN handling
under a real Trainer, config validation and evaluation."""

from __future__ import annotations

import copy
import dataclasses

import lightning as L
import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from isl.curricula.regular import Regular
from isl.data.datamodule import StrokeBatch, StrokeDataModule
from isl.models.mdn import RHO_BOUND, Mixture, MixtureDensityHead, prediction_loss
from isl.models.metrics import SUMS, metric_means
from isl.models.module import NonFiniteLossError, SequenceMDN, load_model

K = 17
HIDDEN = 32


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: intra-op threads only contend (and vary) on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_dm(source, batch_size=8, seed=0, **kwargs) -> StrokeDataModule:
    kwargs.setdefault("num_train", 500)
    kwargs.setdefault("num_test", 500)
    dm = StrokeDataModule(source, batching={"by": "sequences", "size": batch_size}, seed=seed, **kwargs)
    dm.setup()
    return dm


def first_batch(dm) -> StrokeBatch:
    return next(iter(dm.train_dataloader()))


def model(network="lstm", seed=0, **kwargs) -> SequenceMDN:
    """A small untrained network in the real data's range units (-18 px, 34 px per unit)."""
    torch.manual_seed(seed)
    net = SequenceMDN(network, hidden=HIDDEN, **kwargs)
    net.set_units(torch.tensor([-18.0, -18.0]), torch.tensor([34.0, 34.0]))
    return net


def random_mixture(shape, hidden=HIDDEN, components=K, scale=3.0, seed=0, dtype=torch.float64) -> Mixture:
    """The head's output on random hidden states, weights scaled up so that the parameters
    spread (weights far from uniform, sigmas over orders of magnitude, |rho| close to 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # its initial weights too: the same whatever ran before
        torch.manual_seed(seed)
        head = MixtureDensityHead(hidden, components).to(dtype)
    with torch.no_grad():
        head.linear.weight.mul_(scale)
        h = torch.randn(*shape, hidden, generator=g, dtype=dtype)
        return head(h)


def mixture_array(mixture: Mixture, name: str) -> np.ndarray:
    return getattr(mixture, name).detach().double().numpy()


def scipy_density(mixture: Mixture, xy: np.ndarray) -> np.ndarray:
    """sum_j pi_j N(xy | mu_j, [[s1^2, rho s1 s2], [rho s1 s2, s2^2]]) at every position."""
    pi = np.exp(mixture_array(mixture, "log_pi"))
    mu, sigma = mixture_array(mixture, "mu"), np.exp(mixture_array(mixture, "log_sigma"))
    rho = mixture_array(mixture, "rho")
    flat = pi.reshape(-1, pi.shape[-1]), mu.reshape(-1, *mu.shape[-2:]), \
        sigma.reshape(-1, *sigma.shape[-2:]), rho.reshape(-1, rho.shape[-1])
    out = []
    for (p, m, s, r), x in zip(zip(*flat), xy.reshape(-1, 2)):
        total = 0.0
        for j in range(len(p)):
            cov = [[s[j, 0] ** 2, r[j] * s[j, 0] * s[j, 1]], [r[j] * s[j, 0] * s[j, 1], s[j, 1] ** 2]]
            total += p[j] * multivariate_normal(mean=m[j], cov=cov).pdf(x)
        out.append(total)
    return np.array(out).reshape(pi.shape[:-1])


def bce(logit: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-logit))
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


# --- 1. the density and the loss, independently ------------------------------------------------
def test_mixture_log_density_equals_scipy_bivariate_gaussian_mixture():
    mixture = random_mixture((3, 6))                                   # 18 positions, K = 17
    rho, sigma = mixture_array(mixture, "rho"), np.exp(mixture_array(mixture, "log_sigma"))
    assert np.abs(rho).max() > 0.9 and np.abs(rho).max() < RHO_BOUND   # correlations matter
    assert sigma.max() / sigma.min() > 100                             # sigmas spread
    # Points near the mixture (a component mean plus noise) and some far from it.
    g = torch.Generator().manual_seed(1)
    near = mixture.mu[..., 0, :] + 0.5 * torch.randn(3, 6, 2, generator=g, dtype=torch.float64)
    for xy in (near, near + 2.0):
        expected = scipy_density(mixture, xy.numpy())
        assert (expected > 1e-250).all()
        got = mixture.log_density(xy).numpy()
        np.testing.assert_allclose(got, np.log(expected), rtol=1e-9, atol=1e-9)


def test_prediction_loss_is_the_masked_mean_of_nll_and_both_bernoulli_terms(real_source):
    batch = first_batch(make_dm(real_source))
    target, mask = batch.steps[:, 1:].double(), batch.mask[:, 1:]
    assert (~mask).any() and mask.any()                                # padding to exclude
    mixture = random_mixture(target.shape[:2], scale=1.5, seed=3)
    loss = prediction_loss(mixture, target, mask).item()

    t = target.numpy()
    per_step = (-np.log(scipy_density(mixture, t[..., :2]))
                + bce(mixture_array(mixture, "eos_logit"), t[..., 2])
                + bce(mixture_array(mixture, "eod_logit"), t[..., 3]))
    m = mask.numpy()
    assert t[..., 2][m].any() and t[..., 3][m].any()                   # both flags occur
    np.testing.assert_allclose(loss, per_step[m].mean(), rtol=1e-9)
    assert not np.isclose(loss, per_step.mean())                       # the mask really matters


def test_the_original_epsilon_takes_minus_log_of_each_probability_plus_epsilon(real_source):
    batch = first_batch(make_dm(real_source))
    target, mask = batch.steps[:, 1:].double(), batch.mask[:, 1:]
    target[:, 0, :2] = 40.0   # the first offsets far out of reach: their density underflows
    mixture = random_mixture(target.shape[:2], scale=1.5, seed=3)
    t, m, eps = target.numpy(), mask.numpy(), 1e-10
    p_eos, p_eod = (1 / (1 + np.exp(-mixture_array(mixture, k))) for k in ("eos_logit", "eod_logit"))
    density = scipy_density(mixture, t[..., :2])
    per_step = -(np.log(density + eps)
                 + np.log(np.where(t[..., 2] == 1, p_eos, 1 - p_eos) + eps)
                 + np.log(np.where(t[..., 3] == 1, p_eod, 1 - p_eod) + eps))
    loss = prediction_loss(mixture, target, mask, epsilon=eps).item()
    np.testing.assert_allclose(loss, per_step[m].mean(), rtol=1e-9)
    assert (density[:, 0] < 1e-30).all()                               # underflowed: the term is
    assert prediction_loss(mixture, target, mask).item() > loss + 1     # bounded only with epsilon
    with pytest.raises(ValueError, match="model.nll_epsilon"):
        SequenceMDN(nll_epsilon=-1e-10)


# --- 2. padding, masked tails and curriculum truncation -----------------------------------------
@pytest.mark.parametrize("network", ["lstm", "ffnn"])
def test_extra_padding_leaves_the_loss_unchanged(real_source, network):
    batch = first_batch(make_dm(real_source))
    net = model(network)
    loss = net._measure(batch)[0]
    extra = 7
    g = torch.Generator().manual_seed(0)
    for pad in (torch.zeros(len(batch), extra, 4), 5 * torch.randn(len(batch), extra, 4, generator=g)):
        padded = dataclasses.replace(batch, steps=torch.cat([batch.steps, pad], 1),
                                     mask=torch.cat([batch.mask, torch.zeros(len(batch), extra, dtype=bool)], 1))
        torch.testing.assert_close(net._measure(padded)[0], loss, rtol=1e-6, atol=1e-6)


def _per_sequence_loss(net, steps_list):
    """Point-weighted mean of each sequence's loss, each run alone with no padding at all."""
    total, points = 0.0, 0
    for steps in steps_list:
        n = len(steps)
        alone = StrokeBatch(steps=steps[None], mask=torch.ones(1, n, dtype=bool),
                            lengths=torch.tensor([n]), labels=torch.zeros(1, dtype=torch.long),
                            indices=torch.zeros(1, dtype=torch.long), n_points=n, version=0, epoch=0, draw=0)
        total += net._measure(alone)[0].item() * (n - 1)
        points += n - 1
    return total / points


@pytest.mark.parametrize("network", ["lstm", "ffnn"])
def test_a_masked_tail_equals_the_sequence_truncated(real_source, network):
    # Unit-spread inputs: in range units an untrained model's per-step losses barely differ.
    batch = first_batch(make_dm(real_source, scaling="std"))
    net = model(network)
    lengths = batch.lengths.tolist()
    seqs = [batch.steps[i, :n] for i, n in enumerate(lengths)]
    assert _per_sequence_loss(net, seqs) == pytest.approx(net._measure(batch)[0].item(), rel=1e-5)

    # Mask out the tail of the longest sequence, leaving its (real) steps in place.
    r, cut = int(np.argmax(lengths)), 9
    mask = batch.mask.clone()
    mask[r, cut:] = False
    lengths_cut = batch.lengths.clone()
    lengths_cut[r] = cut
    masked = dataclasses.replace(batch, mask=mask, lengths=lengths_cut)
    seqs[r] = batch.steps[r, :cut]
    expected = _per_sequence_loss(net, seqs)
    got = net._measure(masked)[0].item()
    assert got == pytest.approx(expected, rel=1e-5)
    assert got != pytest.approx(net._measure(batch)[0].item(), rel=1e-3)   # the tail did count before


@pytest.mark.parametrize("network", ["lstm", "ffnn"])
def test_curriculum_truncated_batch_equals_the_full_batch_restricted_to_its_first_steps(real_source, network):
    L_ = 10
    full = first_batch(make_dm(real_source, seed=5))
    dm = make_dm(real_source, seed=5)
    dm.curriculum.max_length = L_
    short = first_batch(dm)
    # The same sequences (the sampler may order a batch by length): align the full batch's rows.
    assert sorted(short.indices.tolist()) == sorted(full.indices.tolist()) and short.steps.shape[1] == L_
    row = {i: r for r, i in enumerate(full.indices.tolist())}
    order = torch.tensor([row[i] for i in short.indices.tolist()])
    full = dataclasses.replace(full, steps=full.steps[order], mask=full.mask[order], lengths=full.lengths[order],
                               labels=full.labels[order], indices=full.indices[order])
    assert full.steps.shape[1] > 2 * L_

    net = model(network)
    net.set_units(dm.offset_shift, dm.offset_scale)
    loss = net._measure(short)[0]
    # The model on the full batch's first L steps, the loss over their real steps.
    mixture, _ = net(full.steps[:, :L_])
    reference = prediction_loss(mixture.map(lambda t: t[:, :-1]), full.steps[:, 1:L_], full.mask[:, 1:L_])
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-6)
    # Causal: the model run on the whole sequences, its predictions cut to the same steps.
    mixture, _ = net(full.steps)
    causal = prediction_loss(mixture.map(lambda t: t[:, :L_ - 1]), full.steps[:, 1:L_], full.mask[:, 1:L_])
    torch.testing.assert_close(loss, causal, rtol=1e-5, atol=1e-5)
    assert abs(loss.item() - net._measure(full)[0].item()) > 1e-3      # truncation did change it


# --- 3. context --------------------------------------------------------------------------------
def test_ffnn_output_ignores_earlier_steps_while_lstm_output_depends_on_them(real_source):
    steps = first_batch(make_dm(real_source)).steps
    perturbed = steps.clone()
    perturbed[:, 0] += torch.tensor([3.0, -2.0, 1.0, 0.0])
    fields = [f.name for f in dataclasses.fields(Mixture)]
    with torch.no_grad():
        ffnn = model("ffnn")
        a, b = ffnn(steps)[0], ffnn(perturbed)[0]
        for name in fields:
            assert torch.equal(getattr(a, name)[:, 1:], getattr(b, name)[:, 1:]), name
        assert not torch.equal(a.mu[:, 0], b.mu[:, 0])
        lstm = model("lstm")
        a, b = lstm(steps)[0], lstm(perturbed)[0]
        for t in (1, 2, 5):
            diff = (a.mu[:, t] - b.mu[:, t]).abs().amax(dim=(-2, -1))   # per sequence
            assert (diff > 1e-4).all(), (t, diff)


# --- 4. fitting a tiny batch ---------------------------------------------------------------------
def _overfit(network, batch, seed, steps=300, tail=30):
    """The loss before training and the mean over the last ``tail`` steps: one step's loss
    swings by a nat or more as Adam oscillates around the fit."""
    net = model(network, seed=seed, lr=1e-3)
    optimizer = net.configure_optimizers()[0][0]                      # Adam, the module's eps
    losses = []
    for _ in range(steps):
        loss = net._measure(batch)[0]
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
    return losses[0], float(np.mean(losses[-tail:]))


def test_each_model_overfits_four_real_sequences_and_context_helps(real_source):
    # Unit-spread inputs: in range units (a pixel is ~0.03 units) 300 steps are too few for
    # the LSTM to make use of the context.
    batch = first_batch(make_dm(real_source, batch_size=4, scaling="std"))
    assert len(batch) == 4 and batch.lengths.min() > 15
    final = {}
    for network in ("lstm", "ffnn"):
        final[network] = []
        for seed in range(3):
            initial, last = _overfit(network, batch, seed)
            assert initial > 3.5                                          # ~ an untrained model
            assert last < initial - 2.5, (network, seed, initial, last)   # measured: 3.1-6.0
            final[network].append(last)
    # Averaged over three initialisations the LSTM fits clearly better than the FFNN.
    assert np.mean(final["lstm"]) < np.mean(final["ffnn"]) - 0.5, final


# --- 5. seeded sampling and the stateful path -----------------------------------------------------
def test_sampling_is_reproducible_under_a_seed():
    mixture = random_mixture((8, 20), seed=2, dtype=torch.float32)
    def draw(seed, fn):
        return fn(torch.Generator().manual_seed(seed))
    net = model("lstm")
    for fn in (mixture.sample, lambda g: net.sample_step(mixture, g)):
        a, b, c = draw(11, fn), draw(11, fn), draw(12, fn)
        assert torch.equal(a, b)
        assert not torch.equal(a, c) and (a != c).float().mean() > 0.5
    step = net.sample_step(mixture, torch.Generator().manual_seed(0))
    assert step.shape == (8, 20, 4) and set(step[..., 2:].unique().tolist()) <= {0.0, 1.0}


def _generate(net, start, seed, n=30, bias=0.0):
    g = torch.Generator().manual_seed(seed)
    x, state, out = start, None, []
    with torch.no_grad():
        for _ in range(n):
            mixture, state = net(x, state)
            x = net.sample_step(mixture, g, bias)
            out.append(x)
    return torch.cat(out, 1)


def test_stateful_generation_reproduces_the_same_sequence_for_the_same_seed(real_source):
    start = first_batch(make_dm(real_source, batch_size=3)).steps[:, :1]
    net = model("lstm")
    a, b, c = _generate(net, start, 5), _generate(net, start, 5), _generate(net, start, 6)
    assert a.shape == (3, 30, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # The state matters: the same step fed without it predicts differently.
    with torch.no_grad():
        mixture, state = net(start)
        with_state, _ = net(a[:, :1], state)
        without, _ = net(a[:, :1])
    assert not torch.allclose(with_state.mu, without.mu)


@pytest.mark.parametrize("network", ["lstm", "ffnn"])
def test_feeding_steps_one_at_a_time_with_state_equals_feeding_them_at_once(real_source, network):
    steps = first_batch(make_dm(real_source)).steps[:, :25]
    net = model(network)
    with torch.no_grad():
        whole, _ = net(steps)
        state, parts = None, []
        for t in range(steps.shape[1]):
            mixture, state = net(steps[:, t:t + 1], state)
            parts.append(mixture)
    for f in dataclasses.fields(Mixture):
        stepped = torch.cat([getattr(p, f.name) for p in parts], 1)
        torch.testing.assert_close(stepped, getattr(whole, f.name), rtol=1e-5, atol=1e-5)


# --- 6. biased sampling --------------------------------------------------------------------------
def _draws(mixture: Mixture, n: int, bias: float, seed=0) -> torch.Tensor:
    many = mixture.map(lambda t: t.expand(n, *t.shape[1:]))
    return many.sample(torch.Generator().manual_seed(seed), bias)


def test_bias_lowers_the_spread_of_sampled_offsets():
    n = 20_000
    mixture = random_mixture((1,), scale=1.0, seed=4, dtype=torch.float32)
    spread = {b: _draws(mixture, n, b).std(0) for b in (0.0, 0.5, 2.0)}
    assert (spread[0.5] < spread[0.0]).all() and (spread[2.0] < spread[0.5]).all(), spread

    # One component: the spread is exactly sigma * exp(-bias), the mean unchanged.
    single = random_mixture((1,), components=1, scale=1.0, seed=4, dtype=torch.float32)
    sigma = single.log_sigma.exp()[0, 0]
    for b in (0.0, 1.0):
        xy = _draws(single, n, b)
        torch.testing.assert_close(xy.std(0), sigma * np.exp(-b), rtol=0.03, atol=0)
        torch.testing.assert_close(xy.mean(0), single.mu[0, 0], rtol=0, atol=float(4 * sigma.max() / n ** 0.5))


# --- 7. a NaN batch is reported, not trained on ---------------------------------------------------
NAN_STEP = 3


class NaNAtStep(StrokeDataModule):
    """Puts a NaN into one real step of the batch that training step ``NAN_STEP`` gets."""

    def on_before_batch_transfer(self, batch, dataloader_idx):
        batch = super().on_before_batch_transfer(batch, dataloader_idx)
        if self.trainer is not None and self.trainer.training and self.trainer.global_step == NAN_STEP:
            batch.steps = batch.steps.clone()
            batch.steps[0, 1, 0] = float("nan")
        return batch


class Snapshot(L.Callback):
    def __init__(self, nan_batch: bool = True):
        self.trained_points, self.params, self.points_before = 0, None, None
        self.nan_batch = nan_batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == NAN_STEP:
            assert bool(torch.isnan(batch.steps).any()) == self.nan_batch
            self.params = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            self.points_before = self.trained_points

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.trained_points += batch.n_points


def test_a_nan_batch_raises_naming_the_step_and_points_and_is_not_trained_on(real_source):
    dm = NaNAtStep(real_source, num_train=200, num_test=50, batching={"by": "sequences", "size": 8})
    net = model("lstm")
    initial = {k: v.detach().clone() for k, v in net.state_dict().items()}
    snapshot = Snapshot()
    trainer = L.Trainer(accelerator="cpu", max_steps=NAN_STEP + 3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=[snapshot])
    with pytest.raises(NonFiniteLossError) as raised:
        trainer.fit(net, datamodule=dm)
    message = str(raised.value)
    assert snapshot.params is not None and snapshot.points_before > 0
    assert f"step {NAN_STEP}" in message
    assert f"{snapshot.points_before:,} sequence points" in message
    assert net.points_processed == snapshot.points_before
    after = net.state_dict()
    assert any(not torch.equal(initial[k], snapshot.params[k]) for k in initial)   # it did train before
    for k, v in snapshot.params.items():
        assert torch.equal(after[k], v), k


class NaNGradientAtStep(L.Callback):
    """Poisons one gradient after the backward pass of step ``NAN_STEP`` (finite loss)."""

    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step == NAN_STEP:
            next(pl_module.parameters()).grad[0, 0] = float("nan")


def test_nan_gradients_under_a_finite_loss_are_caught_before_the_optimizer_step(real_source):
    dm = StrokeDataModule(real_source, num_train=200, num_test=50, batching={"by": "sequences", "size": 8})
    net, snapshot = model("ffnn"), Snapshot(nan_batch=False)
    trainer = L.Trainer(accelerator="cpu", max_steps=NAN_STEP + 3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[snapshot, NaNGradientAtStep()])
    with pytest.raises(NonFiniteLossError, match=f"gradients are not finite in training at step {NAN_STEP}"):
        trainer.fit(net, datamodule=dm)
    for k, v in snapshot.params.items():
        assert torch.equal(net.state_dict()[k], v), k


def test_a_collapsing_component_keeps_sigma_above_the_floor_and_gradients_finite():
    """Offsets sit on a pixel grid: a component narrowing onto one point must not overflow."""
    head = MixtureDensityHead(hidden=8, components=2)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.zero_()
        head.linear.bias[6:8] = -60.0                     # component 2: log sigma far below the floor
        head.linear.bias[11] = 20.0                       # its correlation near 1
    mixture = head(torch.zeros(1, 3, 8))
    assert (mixture.log_sigma >= head.log_sigma_min).all() and mixture.rho.abs().max() <= RHO_BOUND
    target = torch.tensor([[[1.0, 0.0, 0.0, 0.0]] * 3])
    loss = prediction_loss(mixture, target, torch.ones(1, 3, dtype=torch.bool))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(head.linear.weight.grad).all()


# --- 8. config validation ---------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, key", [({"network": "gru"}, "model.network"), ({"hidden": 0}, "model.hidden"),
                                         ({"hidden": 2.5}, "model.hidden"), ({"layers": 0}, "model.layers"),
                                         ({"components": -1}, "model.components"),
                                         ({"hidden": True}, "model.hidden"),
                                         ({"lr_warmup_points": -1}, "model.lr_warmup_points"),
                                         ({"lr_warmup_points": 1e5}, "model.lr_warmup_points"),
                                         ({"lr_warmup_start": 1.0}, "model.lr_warmup_start"),
                                         ({"lr_warmup_start": -0.1}, "model.lr_warmup_start")])
def test_bad_model_config_is_refused_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        SequenceMDN(**kwargs)


# --- 8b. learning rate ---------------------------------------------------------------------------
class StepLog(L.Callback):
    """The learning rate each optimizer step used, with the points after its batch and the pass."""

    def __init__(self):
        self.lrs, self.steps = [], []

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.steps.append((module.points_processed, batch.epoch))


@pytest.mark.parametrize("warmup, start", [(0, 0.0), (20000, 0.0), (20000, 0.2)])
def test_the_learning_rate_warms_up_linearly_by_points_times_the_per_pass_decay(real_source, warmup, start):
    """lr x decay^(passes ended before the step: the decay follows the first step of a new pass)
    x the warm-up factor at the points after the batch; no warm-up: the per-pass decay alone, as
    before. An exaggerated decay makes each pass show; 300 sequences a pass (6 batches of 50,
    ~11,000 points): the warm-up spans two passes."""
    log = StepLog()
    net = SequenceMDN(hidden=16, lr=0.01, lr_decay=0.5, lr_warmup_points=warmup, lr_warmup_start=start)
    trainer = L.Trainer(accelerator="cpu", max_steps=16, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[log])
    trainer.fit(net, datamodule=StrokeDataModule(real_source, num_train=300, num_test=50))
    passes = np.cumsum([0, 0] + [b != a for (_, a), (_, b) in zip(log.steps, log.steps[1:])])[:-1]
    expected = [0.01 * 0.5 ** n * (1.0 if not warmup else start + (1 - start) * min(1.0, points / warmup))
                for (points, _), n in zip(log.steps, passes)]
    assert passes[-1] >= 2 and len(log.lrs) == 16
    np.testing.assert_allclose(log.lrs, expected, rtol=1e-12)
    if warmup:
        assert log.lrs[0] < 0.01 * (start + 0.2) and log.steps[3][0] < warmup < log.steps[-1][0]


# --- 9. evaluation -----------------------------------------------------------------------------
def test_evaluate_reports_finite_plausible_metrics_reproducibly(real_source):
    dm = make_dm(real_source, num_test=500, test_batch_size=128)
    net = model("lstm")
    net.set_units(dm.offset_shift, dm.offset_scale)
    net.train()
    result = net.evaluate(dm.test_dataloader(), seed=3)
    assert net.training                                                # mode restored
    assert set(result) == {"test/loss", "test/nll_px", "test/bits_per_point", "test/rmse_sampled",
                           "test/rmse_expected", "test/accuracy"}
    assert all(np.isfinite(v) for v in result.values())
    # Untrained, in range units (sigma ~ 1 unit ~ 30-55 pixels): tens of pixels, as in the paper.
    assert 1 < result["test/rmse_expected"] < 100 and 5 < result["test/rmse_sampled"] < 100
    assert 0 <= result["test/accuracy"] <= 1
    assert net.evaluate(dm.test_dataloader(), seed=3) == result
    other = net.evaluate(dm.test_dataloader(), seed=4)
    assert other["test/rmse_sampled"] != result["test/rmse_sampled"]
    assert other["test/loss"] == pytest.approx(result["test/loss"], rel=1e-6)

    # Independently, on the whole test set as one batch: points-weighted loss, pixel RMSE
    # per coordinate of the expected offset (numpy, in pixels), last-step accuracy.
    whole = dm.collate(np.arange(len(dm.test)), dm.test)
    with torch.no_grad():
        mixture, _ = net(whole.steps)
    target, mask = whole.steps[:, 1:], whole.mask[:, 1:]
    prediction = mixture.map(lambda t: t[:, :-1])
    assert result["test/loss"] == pytest.approx(prediction_loss(prediction, target, mask).item(), rel=1e-5)
    jacobian = np.log(dm.offset_scale.double().numpy()).sum()
    assert result["test/nll_px"] == pytest.approx(result["test/loss"] + jacobian, rel=1e-5)
    # Untrained: sigma of tens of pixels over 1-pixel cells, so many bits, but a finite number.
    assert 8 < result["test/bits_per_point"] < 30
    units = prediction.mean()[mask].double().numpy()
    pixels = units * dm.offset_scale.double().numpy() + dm.offset_shift.double().numpy()
    true = np.concatenate([dm.test.sequence(i)[1:n, :2] for i, n in
                           zip(whole.indices.tolist(), whole.lengths.tolist())]).astype(np.float64)
    assert np.sqrt(np.mean((pixels - true) ** 2)) == pytest.approx(result["test/rmse_expected"], rel=1e-4)
    last = mixture.class_logits[torch.arange(len(whole)), whole.lengths - 1].argmax(-1)
    assert result["test/accuracy"] == pytest.approx((last == whole.labels).float().mean().item())


def test_rmse_is_per_coordinate_as_in_the_paper_s_code(real_source):
    """The squared dx and dy errors in pixels over 2 x points (the original stats.py RMSEStat
    fed with 2 * nrrowsused), for the sampled and the expected offset, and the curriculum's
    window reads the same number."""
    dm = make_dm(real_source, batch_size=16)
    net = model("lstm")
    net.set_units(dm.offset_shift, dm.offset_scale)
    batch = first_batch(dm)
    with torch.no_grad():
        _, sums = net._measure(batch, torch.Generator().manual_seed(7))
        prediction = net(batch.steps)[0].map(lambda t: t[:, :-1])
        sampled = prediction.sample(torch.Generator().manual_seed(7))   # the same draw
    mask = batch.mask[:, 1:]
    scale, shift = dm.offset_scale.double().numpy(), dm.offset_shift.double().numpy()
    true = np.concatenate([dm.train.sequence(i)[1:n, :2] for i, n in
                           zip(batch.indices.tolist(), batch.lengths.tolist())]).astype(np.float64)
    expected = {"sampled": sampled[mask].double().numpy() * scale + shift,
                "expected": prediction.mean()[mask].double().numpy() * scale + shift}
    metrics = metric_means(dict(zip(SUMS, sums.tolist())), "train")
    for name, pixels in expected.items():
        per_coordinate = np.sqrt(((pixels - true) ** 2).sum() / (2 * len(true)))
        assert metrics[f"train/rmse_{name}"] == pytest.approx(per_coordinate, rel=1e-4)
        euclidean = np.sqrt(((pixels - true) ** 2).sum(-1).mean())
        assert metrics[f"train/rmse_{name}"] == pytest.approx(euclidean / np.sqrt(2), rel=1e-4)
    net.last_sums = sums
    curriculum = Regular()
    curriculum.window_sums = list(net.last_batch_error())
    assert curriculum.rmse == pytest.approx(metrics["train/rmse_sampled"], rel=1e-6)


def test_offset_shift_is_saved_and_a_checkpoint_without_it_is_refused(real_source, tmp_path):
    dm = StrokeDataModule(real_source, num_train=200, num_test=50, batching={"by": "sequences", "size": 8})
    net = model("ffnn")
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(net, datamodule=dm)
    assert net.offset_shift.tolist() == dm.offset_shift.tolist() != [0.0, 0.0]   # range scaling
    trainer.save_checkpoint(tmp_path / "new.ckpt")
    loaded = load_model(tmp_path / "new.ckpt")
    assert torch.equal(loaded.offset_shift, net.offset_shift)
    assert torch.equal(loaded.offset_scale, net.offset_scale)

    old = torch.load(tmp_path / "new.ckpt", weights_only=True)
    del old["state_dict"]["offset_shift"]                      # as the project's early versions saved
    torch.save(old, tmp_path / "old.ckpt")
    with pytest.raises(RuntimeError, match="offset_shift"):   # no migration: its units are unknown
        load_model(tmp_path / "old.ckpt")
    with pytest.raises(ValueError, match=r"old.ckpt is a different network: missing offset_shift"):
        model("ffnn").load_pretrained(str(tmp_path / "old.ckpt"))


# --- 10. likelihoods that mean the same in every unit -----------------------------------------
def test_the_pixel_cell_mass_matches_a_brute_force_integration():
    """Mixture.cell_log_mass (Gauss-Legendre over one coordinate, the normal CDF over the other)
    against a midpoint sum of the density on a 1,000 x 1,000 grid over the cell, for narrow,
    wide, offset and strongly correlated components, mixed."""
    mu = torch.tensor([[0.1, -0.2], [0.9, 0.3], [0.0, 0.0], [-1.4, 2.0]], dtype=torch.float64)
    sigma = torch.tensor([[0.05, 0.08], [0.6, 1.5], [2.0, 0.3], [0.4, 0.4]], dtype=torch.float64)
    rho = torch.tensor([0.2, -0.95, 0.998, 0.0], dtype=torch.float64)
    log_pi = torch.log_softmax(torch.tensor([0.5, 1.0, -0.3, 0.2], dtype=torch.float64), -1)
    mixture = Mixture(log_pi=log_pi, mu=mu, log_sigma=sigma.log(), rho=rho,
                      eos_logit=None, eod_logit=None, class_logits=None)
    for cx, cy in [(0, 0), (1, 0), (0, 1), (-1, 2), (3, -2)]:
        low = torch.tensor([cx - 0.5, cy - 0.5], dtype=torch.float64)
        got = mixture.cell_log_mass(low, low + 1).exp().item()
        n = 1000
        x = (low[0] + (torch.arange(n, dtype=torch.float64) + 0.5) / n)
        y = (low[1] + (torch.arange(n, dtype=torch.float64) + 0.5) / n)
        grid = torch.stack(torch.meshgrid(x, y, indexing="ij"), -1)
        brute = mixture.log_density(grid).exp().mean().item()       # cell area 1
        assert got == pytest.approx(brute, rel=1e-3, abs=1e-7), (cx, cy)


def _in_other_units(net: SequenceMDN, shift: torch.Tensor, scale: torch.Tensor) -> SequenceMDN:
    """The same network re-expressed for inputs in other units: its first layer takes the new
    units and its head emits means and sigmas in them, so that in pixels it is the same
    predictor. Only a density's units change."""
    other = copy.deepcopy(net)
    with torch.no_grad():
        old_shift, old_scale = net.offset_shift.double(), net.offset_scale.double()
        a = (scale.double() / old_scale)                   # old units = a * new + c
        c = (shift.double() - old_shift) / old_scale
        w = other.backbone.lstm.weight_ih_l0
        other.backbone.lstm.bias_ih_l0 += (w[:, :2].double() @ c).float()
        w[:, :2] *= a.float()
        k = other.head.components
        rows = other.head.linear
        for j in range(k):
            for d in range(2):
                m, s_ = k + 2 * j + d, 3 * k + 2 * j + d     # mu and log-sigma rows
                rows.weight[m] *= float(1 / a[d])
                rows.bias[m] = float((rows.bias[m] - c[d]) / a[d])
                rows.bias[s_] -= float(torch.log(a[d]))
        other.set_units(shift, scale)
    return other


def test_nll_in_pixels_and_the_discretised_score_agree_across_units(real_source):
    """One network, evaluated as it is (range units) and re-expressed for unit-variance inputs:
    the loss (a density in input units) differs by the Jacobian, the NLL in pixels and the
    discretised score agree; the sigma floor in pixels is the same constraint in both."""
    ranged, std = make_dm(real_source, num_test=200), make_dm(real_source, num_test=200, scaling="std")
    assert not torch.allclose(ranged.offset_scale, std.offset_scale)
    net = model("lstm", seed=3)
    net.set_units(ranged.offset_shift, ranged.offset_scale)
    other = _in_other_units(net, std.offset_shift, std.offset_scale)
    a = net.evaluate(ranged.test_dataloader(), seed=1)
    b = other.evaluate(std.test_dataloader(), seed=1)
    jacobian = float(torch.log(ranged.offset_scale).sum() - torch.log(std.offset_scale).sum())
    assert a["test/loss"] - b["test/loss"] == pytest.approx(-jacobian, rel=1e-3)
    assert abs(jacobian) > 3                                      # a real difference in units
    for key in ("test/nll_px", "test/bits_per_point", "test/rmse_expected"):
        assert a[key] == pytest.approx(b[key], rel=1e-4), key
    floor = {n: n.head.log_sigma_min.exp() * n.offset_scale for n in (net, other)}
    assert torch.allclose(floor[net], floor[other]) and torch.allclose(floor[net], torch.tensor(0.34))


def test_no_sigma_floor_and_the_paper_s_rho_bound():
    net = model("lstm", sigma_floor_px=None, rho_bound=0.95)
    with torch.no_grad():
        net.head.linear.bias[3 * K:5 * K] = -40.0                      # log sigma far below any floor
        net.head.linear.bias[5 * K:6 * K] = 20.0
    mixture, _ = net(torch.zeros(1, 2, 4))
    assert mixture.log_sigma.max() < -30 and mixture.rho.abs().max() <= 0.95


def test_misaligned_ffnn_scores_each_prediction_against_the_original_codes_target(real_source):
    """model.misalign_ffnn: the paper's code flattened FFNN predictions time-major and targets
    batch-major; flat row r holds step r // B of sequence r % B against step r % T of r // T."""
    dm = make_dm(real_source, batch_size=5)
    batch = first_batch(dm)
    aligned, misaligned = model("ffnn", seed=4), model("ffnn", seed=4, misalign_ffnn=True)
    mixture, _ = aligned(batch.steps)
    prediction = mixture.map(lambda t: t[:, :-1])
    B, T = prediction.log_pi.shape[:2]
    order = [(r % B, r // B) for r in range(B * T)]                      # time-major rows
    moved = prediction.map(lambda t: torch.stack([t[b, s] for b, s in order]).reshape(t.shape))
    expected = prediction_loss(moved, batch.steps[:, 1:], batch.mask[:, 1:])
    assert misaligned._measure(batch)[0].item() == pytest.approx(expected.item(), rel=1e-6)
    assert aligned._measure(batch)[0].item() != pytest.approx(expected.item(), rel=1e-3)
    with pytest.raises(ValueError, match="model.misalign_ffnn"):
        SequenceMDN(network="lstm", misalign_ffnn=True)
