"""SequenceMDN: a backbone (LSTM or feedforward) and a head, the mixture-density network of the
paper (``model.head=mdn``) or the categorical moves head (``moves``), trained to predict the next
pen step, with the paper's metrics counted in sequence points processed."""

from __future__ import annotations

import math
import time

import lightning as L
import torch
import torch.nn.functional as F

from isl.core.units import to_pixels, to_units
from isl.models.backbones import BACKBONES, INPUT_SIZE
from isl.models.mdn import RHO_BOUND, SIGMA_FLOOR_PX, Mixture, MixtureDensityHead
from isl.models.metrics import SUMS, discretised_bits, metric_means
from isl.models.loading import load_weights
from isl.models.moves import Moves, MovesHead
from isl.models.original import max_weight, misaligned, tf_initialise
from isl.models.settings import check_settings

LOGGING = "[isl]write_metrics"  # the profiler's name for sending metrics to the loggers


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
        check_settings(**{k: v for k, v in locals().items() if k not in ('self', '__class__')})
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
        without the class: what classifier-free guidance (``isl.tools.generate --guidance``) needs."""
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
        """Loss of a batch and its metric sums (see SUMS), in pixels where it matters;
        ``discrete`` adds the discretised score (bits); ``per_sequence`` a third item, each
        sequence's squared sampled error and real points, (B, 2)."""
        mixture, _ = self(batch.steps, classes=self.classes_for(batch.labels))
        # Step t predicts step t + 1; the last position only feeds the class output.
        prediction = mixture.map(lambda t: t[:, :-1])
        if self.hparams.misalign_ffnn:
            prediction = misaligned(prediction)
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
            bits = discretised_bits(prediction, target, mask, true_xy, self.to_units) if discrete else torch.zeros_like(loss)
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

    def _where(self) -> str:
        phase = "in training" if self.training else "in evaluation"
        return (f"{phase} at step {self.global_step} after {self.points_processed:,} sequence points; "
                "the batch was not trained on")

    def training_step(self, batch, batch_idx):
        loss, sums = self._measure(batch)
        if self.hparams.max_weight_penalty:
            loss = loss + self.hparams.max_weight_penalty * max_weight(self)
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

    def last_batch_error(self) -> tuple[float, int]:
        """(sum of squared sampled-offset errors in pixels over both coordinates, real points) of
        the last training batch, over all processes, so that every rank's curriculum decides
        alike; ``rmse_per_coordinate(*last_batch_error())`` is its per-coordinate RMSE."""
        picked = self.last_sums[[SUMS.index("sq_err_sampled"), SUMS.index("points")]]
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
        s = dict(zip(SUMS, self._sum_over_ranks(self._sums).tolist()))
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
        with self.trainer.profiler.profile(LOGGING):  # a no-op unless profiled (isl.tools.bench run)
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
        total = torch.zeros(len(SUMS), device=self.device)
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
        return metric_means(dict(zip(SUMS, self._sum_over_ranks(total).tolist())), "test", discrete=True,
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
        """Start from the weights of another run's checkpoint (``isl.models.loading.load_weights``)."""
        load_weights(self, path, same_units)

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


NO_CLASS = -1  # a class-conditional model's input for "no class" (SequenceMDN.forward)


def load_model(checkpoint, device: str = "cpu") -> SequenceMDN:
    """A trained SequenceMDN in eval mode, loaded with ``weights_only=True``: the checkpoint
    holds tensors and plain hyperparameters only, so nothing in it is unpickled as code."""
    return SequenceMDN.load_from_checkpoint(checkpoint, map_location=device, weights_only=True).eval()
