"""SequenceMDN: a backbone (LSTM or feedforward) and a head, the mixture-density network of the
paper (``model.head=mdn``) or the categorical moves head (``moves``), trained to predict the next
pen step, with the paper's metrics counted in sequence points processed."""

from __future__ import annotations

import math
import time

import lightning as L
import torch
import torch.nn.functional as F

from isl.checks import positive_int
from isl.data.units import to_pixels, to_units
from isl.models.backbones import BACKBONES, INPUT_SIZE
from isl.models.mdn import RHO_BOUND, SIGMA_FLOOR_PX, Mixture, MixtureDensityHead
from isl.models.metrics import rmse_per_coordinate
from isl.models.moves import Moves, MovesHead

# Accumulated between log calls, as sums over points (or sequences, for accuracy); "bits" only
# in evaluation (the discretised score costs a quadrature per component).
LOGGING = "[isl]write_metrics"  # the profiler's name for sending metrics to the loggers
_SUMS = ("loss", "nll_px", "bits", "sq_err_sampled", "sq_err_expected", "points", "correct", "sequences")


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradients became NaN or infinite; the batch was not trained on."""


class SequenceMDN(L.LightningModule):
    def __init__(self, network: str = "lstm", hidden: int = 200, layers: int = 2,
                 components: int = 17, classes: int = 10, lr: float = 0.0025, adam_eps: float = 1e-5,
                 lr_decay: float = 0.99995, grad_clip: float | None = 10.0,
                 prediction_weight: float = 1.0, class_loss_weight: float = 0.0,
                 init_from: str | None = None, sigma_floor_px: float | None = SIGMA_FLOOR_PX,
                 rho_bound: float = RHO_BOUND, max_weight_penalty: float = 0.0, init: str = "torch",
                 nll_epsilon: float = 0.0, misalign_ffnn: bool = False, class_inputs: bool = False,
                 lr_warmup_points: int = 0, lr_warmup_start: float = 0.0, head: str = "mdn",
                 class_dropout: float = 0.0):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"model.head must be one of {HEADS}, got {head!r}")
        if network not in BACKBONES:
            raise ValueError(f"model.network must be one of {sorted(BACKBONES)}, got {network!r}")
        for key, value in (("hidden", hidden), ("layers", layers), ("components", components)):
            positive_int(f"model.{key}", value)
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"model.grad_clip must be > 0 or null (no clipping), got {grad_clip!r}")
        for key, value in (("prediction_weight", prediction_weight), ("class_loss_weight", class_loss_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"model.{key} must be a number >= 0, got {value!r}")
        if sigma_floor_px is not None and not (isinstance(sigma_floor_px, (int, float)) and sigma_floor_px > 0):
            raise ValueError(f"model.sigma_floor_px must be > 0 (pixels) or null (no floor), got {sigma_floor_px!r}")
        if not (isinstance(rho_bound, (int, float)) and 0 < rho_bound < 1):
            raise ValueError(f"model.rho_bound must be in (0, 1), got {rho_bound!r}")
        if isinstance(max_weight_penalty, bool) or not isinstance(max_weight_penalty, (int, float)) \
                or max_weight_penalty < 0:
            raise ValueError(f"model.max_weight_penalty must be a number >= 0, got {max_weight_penalty!r}")
        if isinstance(nll_epsilon, bool) or not isinstance(nll_epsilon, (int, float)) or not 0 <= nll_epsilon < 1:
            raise ValueError(f"model.nll_epsilon must be a number in [0, 1), got {nll_epsilon!r}")
        if not isinstance(misalign_ffnn, bool) or (misalign_ffnn and network != "ffnn"):
            raise ValueError(f"model.misalign_ffnn must be true or false, and true only with network=ffnn "
                             f"(got {misalign_ffnn!r} with network={network!r})")
        if isinstance(lr_warmup_points, bool) or not isinstance(lr_warmup_points, int) or lr_warmup_points < 0:
            raise ValueError("model.lr_warmup_points must be an integer >= 0 (training points; 0: no "
                             f"warm-up), got {lr_warmup_points!r}")
        if isinstance(lr_warmup_start, bool) or not isinstance(lr_warmup_start, (int, float)) \
                or not 0 <= lr_warmup_start < 1:
            raise ValueError("model.lr_warmup_start must be a fraction of model.lr in [0, 1), "
                             f"got {lr_warmup_start!r}")
        if init not in INITS:
            raise ValueError(f"model.init must be one of {INITS}, got {init!r}")
        if prediction_weight == 0 and class_loss_weight == 0:
            raise ValueError("model.prediction_weight and model.class_loss_weight are both 0: nothing to learn")
        if not isinstance(class_inputs, bool):
            raise ValueError(f"model.class_inputs must be true or false, got {class_inputs!r}")
        if isinstance(class_dropout, bool) or not isinstance(class_dropout, (int, float)) \
                or not 0 <= class_dropout < 1 or (class_dropout and not class_inputs):
            raise ValueError("model.class_dropout must be a fraction in [0, 1), above 0 only with "
                             f"model.class_inputs=true, got {class_dropout!r}")
        if class_inputs and class_loss_weight:
            raise ValueError("model.class_inputs=true with model.class_loss_weight > 0 (task=classify): "
                             "the class to predict would be one of the inputs")
        self.save_hyperparameters()
        # The step is written out (Lightning's manual optimization): it does the same as the
        # automatic loop with a fraction of its per-step overhead, which matters at the length
        # curriculum's first stages, where a step is a few milliseconds.
        self.automatic_optimization = False
        # A class-conditional model (the paper's code's useClassInputVars) reads the one-hot
        # class beside every row, so that generation can be asked for a digit.
        self.backbone = BACKBONES[network](hidden, layers, INPUT_SIZE + classes * class_inputs)
        self.head = (MovesHead(hidden, classes) if head == "moves" else
                     MixtureDensityHead(hidden, components, classes, floor=sigma_floor_px is not None,
                                        rho_bound=rho_bound))
        # Input units of dx, dy = (pixels - offset_shift) / offset_scale (pixels per unit): set
        # from the DataModule, saved with the checkpoint.
        self.register_buffer("offset_scale", torch.ones(2))
        self.register_buffer("offset_shift", torch.zeros(2))
        self.set_units(self.offset_shift, self.offset_scale)
        if init == "tf":
            tf_initialise(self)
        self.points_processed = 0
        self._sums = None
        self.last_sums = None
        self.last_sequence_sums = None
        self._pass = None
        self._clock = None

    # --- the network ------------------------------------------------------------------------
    def forward(self, steps: torch.Tensor, state=None,
                classes: torch.Tensor | None = None) -> tuple[Mixture | Moves, object]:
        """Steps (B, T, 4) -> the predicted distribution of each next step, and the state.
        ``classes`` (B,): each sequence's digit, fed one-hot at every step; given to a
        class-conditional model (``model.class_inputs``) always and to any other never.
        ``NO_CLASS`` for a sequence feeds it no class (all zeros: ``model.class_dropout``)."""
        if self.hparams.class_inputs:
            if classes is None:
                raise ValueError("this model has model.class_inputs=true: it needs the class of "
                                 "every sequence it reads")
            classes = classes.long()
            one_hot = (F.one_hot(classes.clamp_min(0), self.hparams.classes)
                       * (classes != NO_CLASS).unsqueeze(-1)).to(steps.dtype)
            steps = torch.cat([steps, one_hot.unsqueeze(1).expand(-1, steps.shape[1], -1)], dim=-1)
        elif classes is not None:
            raise ValueError("this model has model.class_inputs=false: it reads no classes")
        h, state = self.backbone(steps, state)
        return self.head(h), state

    def classes_for(self, labels: torch.Tensor) -> torch.Tensor | None:
        """What ``forward`` takes as ``classes`` for sequences of these labels: the labels for a
        class-conditional model, nothing for any other. In training, ``model.class_dropout`` of
        them (drawn per sequence) are ``NO_CLASS``, so that the model also learns to predict
        without the class: what classifier-free guidance (``isl.generate --guidance``) needs."""
        if not self.hparams.class_inputs:
            return None
        if self.training and self.hparams.class_dropout:
            dropped = torch.rand(len(labels), device=labels.device) < self.hparams.class_dropout
            return torch.where(dropped, torch.full_like(labels, NO_CLASS), labels)
        return labels

    @torch.no_grad()
    def sample_step(self, prediction: Mixture | Moves, generator: torch.Generator | None = None,
                    bias: float = 0.0, temperature: float = 1.0) -> torch.Tensor:
        """Draw the next step (..., 4) from a predicted distribution (offsets in input units);
        ``temperature`` 1 and ``bias`` 0 sample plainly (see each head's ``sample_row``)."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        return prediction.sample_row(generator, temperature, bias)

    def to_pixels(self, xy: torch.Tensor) -> torch.Tensor:
        """Offsets (..., 2) in input units -> pixels."""
        return to_pixels(xy, self.offset_shift, self.offset_scale)

    def to_units(self, xy: torch.Tensor) -> torch.Tensor:
        """Offsets (..., 2) in pixels -> input units."""
        return to_units(xy, self.offset_shift, self.offset_scale)

    def set_units(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Take the data's input units, and express the sigma floor (pixels) in them."""
        self.offset_shift.copy_(shift)
        self.offset_scale.copy_(scale)
        if self.hparams.head == "moves":
            self.head.set_units(shift, scale)
        elif self.hparams.sigma_floor_px is not None:
            self.head.log_sigma_min.copy_(torch.log(self.hparams.sigma_floor_px / self.offset_scale))

    @property
    def log_jacobian(self) -> torch.Tensor:
        """log |d units / d pixels| of an offset: a density in input units times this is the
        density in pixels, so NLL in pixels = NLL in units + log(scale_x) + log(scale_y)."""
        return torch.log(self.offset_scale).sum()

    # --- one batch ----------------------------------------------------------------------------
    def _measure(self, batch, generator: torch.Generator | None = None, discrete: bool = False,
                 per_sequence: bool = False) -> tuple[torch.Tensor, ...]:
        """Loss of a batch and its metric sums (see _SUMS), in pixels where it matters;
        ``discrete`` adds the discretised score (bits); ``per_sequence`` a third item, each
        sequence's squared sampled error and real points, (B, 2)."""
        mixture, _ = self(batch.steps, classes=self.classes_for(batch.labels))
        # Step t predicts step t + 1; the last position only feeds the class output.
        prediction = mixture.map(lambda t: t[:, :-1])
        if self.hparams.misalign_ffnn:
            # The paper's code's FFNN (model.py): its predictions flattened time-major (row r is
            # step r // B of sequence r % B), its targets batch-major (step r % T of sequence
            # r // T), so row r's prediction is scored against another step's target.
            prediction = prediction.map(lambda t: t.transpose(0, 1).reshape(t.shape))
        target, mask = batch.steps[:, 1:], batch.mask[:, 1:]
        nll = prediction.nll(target, mask, self.hparams.nll_epsilon)
        loss = self.hparams.prediction_weight * nll
        last = mixture.class_logits[torch.arange(len(batch), device=self.device), batch.lengths - 1]
        if self.hparams.class_loss_weight:  # the class at every step (the transfer task)
            per_step = F.cross_entropy(mixture.class_logits[batch.mask],
                                       batch.labels.unsqueeze(1).expand_as(batch.mask)[batch.mask])
            loss = loss + self.hparams.class_loss_weight * per_step
        if not torch.isfinite(loss):  # before sampling, which cannot draw from a NaN mixture
            raise NonFiniteLossError(f"loss is {loss.item()} {self._where()}")
        with torch.no_grad():
            true_xy = self.to_pixels(target[..., :2][mask])
            sampled = self.to_pixels(prediction.sample(generator)[mask])
            expected = self.to_pixels(prediction.mean()[mask])
            n = mask.sum()
            bits = self._bits(prediction, target, mask, true_xy) if discrete else torch.zeros_like(loss)
            sq_sampled = (sampled - true_xy) ** 2
            sums = torch.stack([loss.detach() * n, (nll.detach() + self.log_jacobian) * n, bits,
                                sq_sampled.sum(),
                                ((expected - true_xy) ** 2).sum(), n.to(loss.dtype),
                                (last.argmax(-1) == batch.labels).sum().to(loss.dtype),
                                torch.tensor(float(len(batch)), device=self.device)])
            if not (self.training or per_sequence):
                return loss, sums
            # Per sequence, as the paper's code counts its curriculum window (curriculum.window)
            # and its test batches (budget.test_protocol).
            owner = torch.arange(len(batch), device=self.device).unsqueeze(1).expand_as(mask)[mask]
            sq = torch.zeros(len(batch), dtype=loss.dtype, device=self.device)
            sequences = torch.stack([sq.index_add_(0, owner, sq_sampled.sum(-1)), mask.sum(1).to(loss.dtype)], 1)
            if self.training:
                self.last_sequence_sums = sequences
        return (loss, sums, sequences) if per_sequence else (loss, sums)

    def _bits(self, prediction: Mixture | Moves, target: torch.Tensor, mask: torch.Tensor,
              true_xy: torch.Tensor) -> torch.Tensor:
        """Sum over real points of -log2 P(step) with every part of a step discrete: the mass of
        the true offset's pixel cell (offset +- 0.5 px) times the two Bernoulli probabilities.
        Bounded (P <= 1) and the same in every input unit, unlike a density. The moves head's
        P(row) is already that (isl.models.moves)."""
        masked = prediction.map(lambda t: t[mask])
        if isinstance(masked, Moves):
            return -masked.log_prob(target[mask]).sum() / math.log(2)
        cell = torch.round(true_xy)
        log_mass = masked.cell_log_mass(self.to_units(cell - 0.5), self.to_units(cell + 0.5))
        flags = target[mask][:, 2:]
        flag_nll = (F.binary_cross_entropy_with_logits(masked.eos_logit, flags[:, 0], reduction="sum")
                    + F.binary_cross_entropy_with_logits(masked.eod_logit, flags[:, 1], reduction="sum"))
        return (flag_nll - log_mass.sum()) / math.log(2)

    def _where(self) -> str:
        phase = "in training" if self.training else "in evaluation"
        return (f"{phase} at step {self.global_step} after {self.points_processed:,} sequence points; "
                "the batch was not trained on")

    def training_step(self, batch, batch_idx):
        loss, sums = self._measure(batch)
        if self.hparams.max_weight_penalty:
            loss = loss + self.hparams.max_weight_penalty * self._max_weight()
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._clip_gradients()
        points = self._global_points(batch.n_points)
        if self.hparams.lr_warmup_points:
            self._warm_up(optimizer, self.points_processed + points)
        optimizer.step()
        if self._pass is not None and batch.epoch != self._pass:
            self.lr_schedulers().step()  # as in the paper's code: decay once per pass over the data
        self._pass = batch.epoch
        self.points_processed += points
        self.last_sums = sums
        self._sums = sums if self._sums is None else self._sums + sums
        # By optimizer steps, which a resumed run restores whichever loop state it stopped in
        # (one stopped by Ctrl-C, or extended past its budget, starts a new loop epoch).
        if self.global_step % self.trainer.log_every_n_steps == 0:
            self._log_train()

    def _warm_up(self, optimizer, points: int) -> None:
        """Linear learning-rate warm-up by training points: ``lr_warmup_start`` x lr rising to lr
        over the first ``lr_warmup_points`` (``points`` counts this batch's, so no step is taken
        at 0), times the per-pass decay, whose scheduler keeps counting passes. Set before every
        step from the points and the passes, both in the checkpoint: a resumed run goes on alike."""
        start = self.hparams.lr_warmup_start
        factor = start + (1 - start) * min(1.0, points / self.hparams.lr_warmup_points)
        decayed = self.hparams.lr * self.hparams.lr_decay ** self.lr_schedulers().last_epoch
        for group in optimizer.param_groups:
            group["lr"] = decayed * factor

    def _max_weight(self) -> torch.Tensor:
        """The paper's code's ``max_weight_regularization`` (model.py getRegularizationTerm):
        max(0, the largest element of any trainable variable whose TF name contains no "Bias").
        Its LSTM and hidden-layer biases are named "biases"/"bias" (lower case), so only the
        output layer's bias is left out. Signed, not absolute, as written there."""
        largest = torch.stack([self._as_tf_variable(name, p).max() for name, p in self.named_parameters()
                               if name != "head.linear.bias"])
        return largest.max().clamp_min(0)

    def _as_tf_variable(self, name: str, p: torch.Tensor) -> torch.Tensor:
        """The parameter as the paper's TF variable holds it: with init=tf the forget gate's
        constant 1.0 lives in ``bias_ih`` here and in the cell there."""
        if self.hparams.init != "tf" or not name.startswith("backbone.lstm.bias_ih"):
            return p
        hidden = self.backbone.lstm.hidden_size
        return torch.cat([p[:hidden], p[hidden:2 * hidden] - 1.0, p[2 * hidden:]])

    def last_batch_error(self) -> tuple[float, int]:
        """(sum of squared sampled-offset errors in pixels over both coordinates, real points) of
        the last training batch, over all processes, so that every rank's curriculum decides
        alike; ``rmse_per_coordinate(*last_batch_error())`` is its per-coordinate RMSE."""
        picked = self.last_sums[[_SUMS.index("sq_err_sampled"), _SUMS.index("points")]]
        sq, n = self._sum_over_ranks(picked).tolist()
        return sq, int(n)

    def last_sequence_errors(self) -> list[tuple[float, int]]:
        """``last_batch_error`` per sequence of the last training batch, over all processes."""
        sums = self.last_sequence_sums
        if self._world() > 1:
            sums = self.all_gather(sums).reshape(-1, 2)
        return [(sq, int(n)) for sq, n in sums.tolist()]

    # --- several processes (DDP): every rank counts and decides on the same global numbers ----
    def _world(self) -> int:
        return self._trainer.world_size if self._trainer is not None else 1

    def _sum_over_ranks(self, t: torch.Tensor) -> torch.Tensor:
        return self.trainer.strategy.reduce(t, reduce_op="sum") if self._world() > 1 else t

    def _global_points(self, n: int) -> int:
        if self._world() == 1:
            return n
        return int(self._sum_over_ranks(torch.tensor(float(n), device=self.device)).item())

    def _clip_gradients(self) -> None:
        # One pass over the gradients both clips their norm and catches NaN/inf, which a finite
        # loss can still produce, before the optimizer step.
        norm = torch.nn.utils.clip_grad_norm_(self.parameters(), self.hparams.grad_clip or math.inf)
        if not torch.isfinite(norm):
            raise NonFiniteLossError(f"gradients are not finite {self._where()}")

    def _log_train(self) -> None:
        s = dict(zip(_SUMS, self._sum_over_ranks(self._sums).tolist()))
        now = time.perf_counter()
        metrics = metric_means(s, "train", density=self.hparams.head == "mdn")
        if self._clock is not None:
            seconds, points = now - self._clock[0], self.points_processed - self._clock[1]
            metrics["train/points_per_sec"] = points / seconds
        self._clock = (now, self.points_processed)
        metrics["lr"] = self.optimizers().param_groups[0]["lr"]
        self.write_metrics(metrics)
        self.log("rmse", metrics["train/rmse_sampled"], prog_bar=True, logger=False)
        self._sums = None

    def write_metrics(self, metrics: dict[str, float]) -> None:
        """Send metrics to every logger now, with the points processed so far as a column.

        Written directly rather than through ``self.log``, which would hold them until
        Lightning's next logging step and aggregate them by optimizer step, not by points.
        """
        metrics = {**metrics, "points": float(self.points_processed)}
        with self.trainer.profiler.profile(LOGGING):  # a no-op unless profiled (isl.bench run)
            for logger in self.loggers:
                logger.log_metrics(metrics, step=self.global_step)

    @torch.inference_mode()  # no autograd bookkeeping at all: about 7% faster than no_grad here
    def evaluate(self, dataloader, seed: int = 0, sequence_errors: torch.Tensor | None = None) -> dict[str, float]:
        """Loss, RMSE (sampled and expected) and last-point accuracy over a whole dataloader
        (under DDP each rank takes every world-th batch and the sums are added up). With
        ``sequence_errors`` (a (test sequences, 2) tensor), each sequence's squared sampled
        error in pixels (both coordinates) and its real points are added to its row."""
        was_training = self.training
        self.eval()
        world, rank = self._world(), (self.global_rank if self._trainer is not None else 0)
        generator = torch.Generator(device=self.device).manual_seed(seed + rank)
        total = torch.zeros(len(_SUMS), device=self.device)
        table = None if sequence_errors is None else torch.zeros(sequence_errors.shape, device=self.device)
        # Evaluation observes, never steers: training draws its sampled-RMSE points (which the
        # length curriculum steps on) from torch's global generator, and a DataLoader draws its
        # base seed from it each time it is iterated; so the global state is put back as it was.
        with torch.random.fork_rng(devices=[] if self.device.type == "cpu" else [self.device],
                                   device_type=self.device.type):
            for i, batch in enumerate(dataloader):
                if i % world == rank:
                    batch = batch.to(self.device)
                    measured = self._measure(batch, generator, discrete=True, per_sequence=table is not None)
                    total += measured[1]
                    if table is not None:
                        table.index_add_(0, batch.indices, measured[2])
        self.train(was_training)
        if table is not None:
            sequence_errors += self._sum_over_ranks(table).to(sequence_errors)
        return metric_means(dict(zip(_SUMS, self._sum_over_ranks(total).tolist())), "test", discrete=True,
                            density=self.hparams.head == "mdn")

    # --- optimisation -------------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, eps=self.hparams.adam_eps)
        return [optimizer], [torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.hparams.lr_decay)]

    # --- bookkeeping --------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None)
        if hasattr(datamodule, "offset_scale"):
            self.set_units(datamodule.offset_shift, datamodule.offset_scale)

    def on_fit_start(self) -> None:
        # Here, not in ``setup``: Lightning restores a checkpoint after ``setup`` and before
        # this hook, and a resumed run takes its weights from its checkpoint alone.
        if self.hparams.init_from and self.trainer.ckpt_path is None:
            self.load_pretrained(self.hparams.init_from,
                                 same_units=hasattr(self.trainer.datamodule, "offset_scale"))

    def load_pretrained(self, path: str, same_units: bool = False) -> None:
        """Start from the weights of another run's checkpoint (e.g. a predictor, for transfer to
        classification). Every weight must match: the networks must have the same shape; with
        ``same_units``, its input units must be those already set from this run's data (a
        network fed offsets in other units than it learned on would silently start from noise)."""
        try:
            checkpoint = torch.load(path, map_location=self.device, weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"model.init_from: no checkpoint at {path}") from None
        except Exception as err:  # a corrupt or foreign file
            raise ValueError(f"model.init_from: cannot read {path} as a checkpoint ({err})") from err
        weights = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
        if weights is None:
            raise ValueError(f"model.init_from: {path} holds no state_dict")
        # Before the shapes: a class-conditional network differs in its first layer only, and
        # the key says why better than a weight's shape does.
        theirs, ours = bool(checkpoint.get("hyper_parameters", {}).get("class_inputs", False)), \
            self.hparams.class_inputs
        if theirs != ours:
            raise ValueError(f"model.init_from: {path} was trained with model.class_inputs={_yaml(theirs)}, "
                             f"this run has model.class_inputs={_yaml(ours)}: a network must be fed the "
                             "inputs it was trained on")
        ours = self.state_dict()
        wrong = [f"{k} {tuple(v.shape)} vs ours {tuple(ours[k].shape)}" for k, v in weights.items()
                 if k in ours and v.shape != ours[k].shape]
        missing, unexpected = sorted(set(ours) - set(weights)), sorted(set(weights) - set(ours))
        if wrong or missing or unexpected:
            raise ValueError(f"model.init_from: {path} is a different network: "
                             + "; ".join(filter(None, [", ".join(wrong), "missing " + ", ".join(missing)
                                                       if missing else "", "unexpected " + ", ".join(unexpected)
                                                       if unexpected else ""])))
        units = ("offset_shift", "offset_scale")
        if same_units and not all(torch.allclose(weights[k], ours[k], rtol=1e-5, atol=1e-6) for k in units):
            raise ValueError(
                f"model.init_from: {path} was trained on offsets in other input units (shift, "
                f"scale in pixels: {_rounded([weights[k] for k in units])}) than this run's data "
                f"gives ({_rounded([ours[k] for k in units])}): run with the data settings it was "
                "trained with (data.scaling, data.num_train)")
        self.load_state_dict(weights)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # What an exact resume needs beyond Lightning's own state: the points counter, the
        # pass the learning rate last decayed in, and the training metrics not yet logged
        # (summed over all processes, so that a run resumed on any number of them has them once).
        checkpoint["points_processed"] = self.points_processed
        checkpoint["pass"] = self._pass
        checkpoint["train_sums"] = None if self._sums is None else self._sum_over_ranks(self._sums)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.points_processed = checkpoint.get("points_processed", 0)
        self._pass, self._sums = checkpoint.get("pass"), checkpoint.get("train_sums")
        if self._sums is not None and self.global_rank != 0:  # rank 0 carries them on alone
            self._sums = torch.zeros_like(self._sums)


INITS = ("torch", "tf")
NO_CLASS = -1  # a class-conditional model's input for "no class" (SequenceMDN.forward)
HEADS = ("mdn", "moves")


def tf_initialise(net: SequenceMDN) -> None:
    """The paper's code's initial weights (TF 1.x ``tf.get_variable`` defaults, no
    ``useInitializers``): Glorot-uniform for every weight and for the output layer's and the
    feedforward layers' biases (a 1-D variable has fan-in = fan-out = its size), zero LSTM
    biases with BasicLSTMCell's forget bias of 1.0 (added in the cell there, put in the bias
    here: the same function). An LSTM layer's kernel is one [input + hidden, 4 hidden] matrix
    in TF, so its Glorot limit is taken over that shape."""
    def glorot(t: torch.Tensor, fan_in: int, fan_out: int) -> None:
        limit = math.sqrt(6 / (fan_in + fan_out))
        torch.nn.init.uniform_(t, -limit, limit)

    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("backbone.lstm."):
                hidden = net.backbone.lstm.hidden_size
                if name.startswith("backbone.lstm.weight"):
                    layer = int(name.rsplit("l", 1)[1])
                    inputs = net.backbone.lstm.input_size if layer == 0 else hidden
                    glorot(p, inputs + hidden, 4 * hidden)
                else:  # bias_ih and bias_hh: their sum is the cell's bias
                    p.zero_()
                    if name.startswith("backbone.lstm.bias_ih"):
                        p[hidden:2 * hidden] = 1.0  # PyTorch's gate order: input, forget, cell, output
            elif p.dim() == 2:
                glorot(p, p.shape[1], p.shape[0])
            else:
                glorot(p, len(p), len(p))


def check_class_inputs(model: SequenceMDN, wanted: bool, who: str, what: str = "this model") -> None:
    """Refuse ``model`` (``what``, e.g. its checkpoint) unless its ``class_inputs`` is ``wanted``,
    naming the key and both values; ``who`` is the tool or option that feeds it."""
    have = bool(model.hparams.class_inputs)
    if have != wanted:
        raise ValueError(f"{who} needs a model with model.class_inputs={_yaml(wanted)}; {what} has "
                         f"model.class_inputs={_yaml(have)}")


def _yaml(flag: bool) -> str:
    return "true" if flag else "false"


def _rounded(tensors: list[torch.Tensor]) -> list:
    return [[round(v, 3) for v in t.tolist()] for t in tensors]


def metric_means(sums: dict[str, float], prefix: str, discrete: bool = False,
                 density: bool = True) -> dict[str, float]:
    """Metric sums over points -> the logged means; RMSE in pixels per coordinate. ``loss`` is
    the training objective (densities in input units); ``nll_px`` (with ``density``: a head with
    a density, the MDN) the prediction NLL per point with the offset density in pixels
    (comparable across units); ``bits_per_point`` (with ``discrete``) the discretised score."""
    points, sequences = max(sums["points"], 1.0), max(sums["sequences"], 1.0)
    discretised = {f"{prefix}/bits_per_point": sums["bits"] / points} if discrete else {}
    nll_px = {f"{prefix}/nll_px": sums["nll_px"] / points} if density else {}
    return {f"{prefix}/loss": sums["loss"] / points, **nll_px,
            **discretised,
            f"{prefix}/rmse_sampled": rmse_per_coordinate(sums["sq_err_sampled"], points),
            f"{prefix}/rmse_expected": rmse_per_coordinate(sums["sq_err_expected"], points),
            f"{prefix}/accuracy": sums["correct"] / sequences}


def load_model(checkpoint, device: str = "cpu") -> SequenceMDN:
    """A trained SequenceMDN in eval mode, loaded with ``weights_only=True``: the checkpoint
    holds tensors and plain hyperparameters only, so nothing in it is unpickled as code."""
    return SequenceMDN.load_from_checkpoint(checkpoint, map_location=device, weights_only=True).eval()
