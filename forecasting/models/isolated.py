"""Network work (fit, predict) in a fresh Python process, one process per job.

TensorFlow takes about 0.65 GB once imported and each fit adds compiled code it never gives
back, so a process that retrains day after day grows by GBs. Here each job runs in
`python -m forecasting.models.isolated JOB_DIR`, which exits when done: the memory goes back to the
system, the calling process never loads TensorFlow, and jobs are independent of each other
(each seeds itself), so running them side by side changes no result. Only files cross: the
windows as plain arrays, the model directories, and the predictions; never pickles.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.config import ForecastParams
from forecasting.scoring.backtest import predict_windows
from forecasting.models.families import holds_network, load_model, read_meta
from forecasting.models.linear import LinearForecaster
from forecasting.models.reuse import PriorNetwork
from forecasting.windows import Windows

JOB_FILE = "job.json"
WINDOWS_FILE = "windows.npz"
PREDICTIONS_FILE = "predictions.npz"
BASE_FILES = "base"  # the fitted linear base the networks correct


class JobFailed(RuntimeError):
    """The job's process ended with an error; carries the end of what it wrote to stderr."""


def save_windows(path: Path, sets: dict[str, Windows]) -> None:
    """Several window sets over the same series: the series once, the origins of each."""
    first = next(iter(sets.values()))
    if any(w.data is not first.data for w in sets.values()):
        raise ValueError("the window sets of one job must share one series")
    np.savez(path, data=first.data, target=first.target,
             times=first.times.as_unit("ns").asi8, lookback=first.lookback,
             horizon=first.horizon,
             target_index=first.target_index, columns=np.array(first.columns),
             **{f"origins_{name}": w.origins for name, w in sets.items()})


def load_windows(path: Path) -> dict[str, Windows]:
    with np.load(path, allow_pickle=False) as arrays:
        times = pd.DatetimeIndex(pd.to_datetime(arrays["times"], utc=True))
        shared = dict(data=arrays["data"], target=arrays["target"], times=times,
                      lookback=int(arrays["lookback"]), horizon=int(arrays["horizon"]),
                      target_index=int(arrays["target_index"]),
                      columns=tuple(str(c) for c in arrays["columns"]))
        return {key.removeprefix("origins_"): Windows(origins=arrays[key], **shared)
                for key in arrays.files if key.startswith("origins_")}


@dataclass
class SavedNetwork:
    """A network fitted and saved by a job process (or the network model bound to a
    station): its files, not a live model. Saving copies the files; predicting loads the
    network into this process (and TensorFlow)."""

    family: str
    params: ForecastParams
    columns: tuple[str, ...]
    directory: Path
    epochs_run: int
    training: dict = field(default_factory=dict)  # how the fit went (NetworkForecaster.fit)
    _loaded: object = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.family

    def training_summary(self) -> str:
        """How the fit went, for the run's logs."""
        t = self.training
        if not t:
            return f"{self.epochs_run} epochs"
        stop = (f"early stopping after {t['epochs_run']} of {t['epochs_max']} epochs"
                if t["stopped_early"] else f"all {t['epochs_max']} epochs (no early stop)")
        outcome = ("no epoch beat the base forecast, so it is kept (an untrained correction)"
                   if t["kept_base"] else f"best epoch {t['best_epoch']}")
        start = (f"fine-tuned from {t['warm_start']}" if t.get("warm_start")
                 else "trained from zero")
        return (f"{start}, {stop}; validation MAE {t['best_val_mae']:.3f} (base "
                f"{t['base_val_mae']:.3f}); {outcome}")

    def save(self, directory: Path) -> Path:
        shutil.copytree(self.directory, directory)
        return Path(directory)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        if self._loaded is None:  # TensorFlow only when asked
            self._loaded = load_model(self.directory)
        return self._loaded.predict(inputs)


def run_job(job_dir: Path, job: dict) -> None:
    """Run one job in a child process; JobFailed with its stderr when it fails."""
    (job_dir / JOB_FILE).write_text(json.dumps(job))
    done = subprocess.run([sys.executable, "-m", "forecasting.models.isolated", str(job_dir)],
                          capture_output=True, text=True, errors="replace")
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise JobFailed(f"{job['kind']} job in {job_dir} ended with exit code "
                        f"{done.returncode}:\n{tail}")


def fit_networks(job_dir: Path, families: list[str], params: ForecastParams,
                 relative: np.ndarray, base: LinearForecaster, train: Windows,
                 validation: Windows, test: Windows, threads: int,
                 warm: dict[str, PriorNetwork] | None = None
                 ) -> dict[str, tuple[SavedNetwork, np.ndarray]]:
    """Fit each network family on `train` (correcting `base`) in one process, save them under
    `job_dir`, and return each with its predictions for `test`; a family in `warm` is
    fine-tuned from that saved network (verified by the caller) instead of from zero."""
    job_dir.mkdir(parents=True)
    base.save(job_dir / BASE_FILES)
    save_windows(job_dir / WINDOWS_FILE, {"train": train, "validation": validation,
                                          "test": test})
    run_job(job_dir, {"kind": "fit", "families": families, "threads": threads,
                      "params": params.model_dump(mode="json"),
                      "relative": np.asarray(relative, bool).tolist(),
                      "warm": {family: {"directory": str(w.directory), "label": w.label}
                               for family, w in (warm or {}).items()}})
    fitted = {}
    with np.load(job_dir / PREDICTIONS_FILE, allow_pickle=False) as predictions:
        for family in families:
            directory = job_dir / family
            meta = read_meta(directory)
            fitted[family] = (SavedNetwork(family, params, tuple(meta["columns"]), directory,
                                           meta["epochs_run"], meta.get("training", {})),
                              predictions[family])
    return fitted


def predict_saved(job_dir: Path, model: Path, sets: dict[str, Windows], threads: int
                  ) -> dict[str, np.ndarray]:
    """The forecast of a saved model (as `load_model` reads it) for each window set: in a
    process of its own when it holds a network, here when it does not (a linear model needs
    no TensorFlow, and a process that imports it costs seconds and 0.65 GB)."""
    models = {name: Path(model) for name in sets}
    try:
        networks = any(holds_network(m) for m in set(models.values()))
        linear = None if networks else {m: load_model(m) for m in set(models.values())}
    except (OSError, ValueError, KeyError) as unreadable:
        raise JobFailed(f"{type(unreadable).__name__}: {unreadable}") from unreadable
    if linear is not None:
        return {name: predict_windows(linear[models[name]], w).astype(np.float64)
                for name, w in sets.items()}
    job_dir.mkdir(parents=True)
    save_windows(job_dir / WINDOWS_FILE, sets)
    run_job(job_dir, {"kind": "predict", "threads": threads,
                      "models": {name: str(path) for name, path in models.items()}})
    with np.load(job_dir / PREDICTIONS_FILE, allow_pickle=False) as predictions:
        return {name: predictions[name] for name in sets}


def _main(job_dir: Path) -> None:
    from forecasting.models.networks import NetworkForecaster, set_tensorflow_threads

    job = json.loads((job_dir / JOB_FILE).read_text())
    set_tensorflow_threads(job["threads"])
    sets = load_windows(job_dir / WINDOWS_FILE)
    if job["kind"] == "fit":
        base, predictions = LinearForecaster.load(job_dir / BASE_FILES), {}
        for family in job["families"]:
            network = NetworkForecaster(family, ForecastParams(**job["params"]),
                                        np.array(job["relative"], bool), base)
            warm = job.get("warm", {}).get(family)
            start = NetworkForecaster.load(warm["directory"]) if warm else None
            network.fit(sets["train"], sets["validation"], start,
                        warm["label"] if warm else "").save(job_dir / family)
            predictions[family] = predict_windows(network, sets["test"])
        np.savez(job_dir / PREDICTIONS_FILE, **predictions)
    else:
        models = {path: load_model(Path(path)) for path in set(job["models"].values())}
        np.savez(job_dir / PREDICTIONS_FILE, **{
            name: predict_windows(models[job["models"][name]], w).astype(np.float64)
            for name, w in sets.items()})


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
