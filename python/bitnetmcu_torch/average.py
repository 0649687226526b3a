"""Exponential moving average of the latent weights (config key ema_decay), the twin of
training/weight_average.{hpp,cpp}: after optimizer step t, avg = d avg + (1 - d) w with
d = min(ema_decay, t / (t + 9)). The average is what is evaluated and saved under model/ and
clip/ (so exported); the trained model goes under training/ (tests: the same case on both sides)."""
import copy

import torch

from .models import model_entries


def average_decay(ema_decay, t):
    """The decay of update number t (1-based)."""
    return min(ema_decay, t / (t + 9))


class WeightAverage:
    def __init__(self, cfg, trained):
        self.cfg, self.trained = cfg, trained
        self.enabled = cfg["ema_decay"] > 0
        self.average = copy.deepcopy(trained).eval() if self.enabled else None
        self.updates = 0

    @torch.no_grad()
    def update(self):
        """After each optimizer step."""
        if not self.enabled:
            return
        self.updates += 1
        d = average_decay(self.cfg["ema_decay"], self.updates)
        for avg, now in zip(self.average.parameters(), self.trained.parameters()):
            avg.mul_(d).add_(now.detach(), alpha=1 - d)

    @torch.no_grad()
    def sync(self, epoch):
        """Before evaluating or saving at the end of epoch (0-based): buffers from the trained model,
        the average's own clipping scalars while clipping is still updated."""
        if not self.enabled:
            return
        for (name, avg), now in zip(self.average.named_buffers(), self.trained.buffers()):
            if "clip" not in name:
                avg.copy_(now)
        if epoch < self.cfg["maxw_update_until_epoch"]:
            self.average.update_clips(self.cfg["maxw_algo"], self.cfg["maxw_quantscale"])

    def model(self):
        """The model to evaluate and save."""
        return self.average if self.enabled else self.trained

    def entries(self):
        """Checkpoint entries: the average under model/ and clip/; when enabled also the trained
        model under training/ and the update count as training/average_updates."""
        out = model_entries(self.model())
        if self.enabled:
            out.update({"training/" + k: v for k, v in model_entries(self.trained).items()})
            out["training/average_updates"] = torch.tensor([self.updates], dtype=torch.int64)
        return out
