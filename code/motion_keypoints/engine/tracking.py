"""Optional Neptune experiment tracking, as a detectron2 hook.

TensorBoard and ``metrics.json`` are always written by detectron2's own writers; Neptune is an
extra, switched on by ``TRACKING.NEPTUNE True`` in a config or ``MOTION_KEYPOINTS_NEPTUNE=1`` in
the environment. ``neptune`` is imported only then. The run uses ``NEPTUNE_API_TOKEN`` and
``NEPTUNE_PROJECT`` from the environment (``NEPTUNE_MODE`` is honoured too); without a token, a
project or a reachable server it logs offline under ``OUTPUT_DIR/.neptune`` (or
``NEPTUNE_DATA_DIRECTORY``) after one warning, and training goes on. The token is never printed
or logged: this module only reads it to find the server's address.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Sequence, Tuple, Union
from urllib.parse import urlparse

import yaml
from detectron2.engine import HookBase

from ..io.runs import read_best_checkpoint
from ..meta import KEYPOINT_NAMES
from ..utils import PathLike

logger = logging.getLogger(__name__)

#: Evaluation result groups (detectron2 flattens ``{group: {metric: value}}`` into
#: ``group/metric``) and the Neptune namespace under ``metrics/`` their metrics go to.
EVAL_GROUPS = {
    "keypoints_rmse": "val",  # the kit's RMSE evaluator
    "val": "val",
    "keypoints": "val/keypoints",  # COCO evaluator
    "bbox": "val/bbox",
    "segm": "val/segm",
}

#: Environment variable that switches Neptune on regardless of the config.
ENV_FLAG = "MOTION_KEYPOINTS_NEPTUNE"
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def neptune_name(name: str) -> str:
    """The Neptune field (under ``metrics/``) of an EventStorage scalar.

    In Neptune a field is either a value or a namespace, never both, while detectron2's names
    use ``/`` for both: ``keypoints_rmse/rmse`` is a value and ``keypoints_rmse/rmse/nose`` needs
    ``rmse`` as a namespace. So evaluation groups move under ``val`` (:data:`EVAL_GROUPS`) and
    every segment between a name's group and its leaf gets a suffix, ``_per_keypoint`` when the
    leaf is a keypoint name, else ``_parts``. ``keypoints_rmse/rmse`` -> ``val/rmse``,
    ``keypoints_rmse/rmse/nose`` -> ``val/rmse_per_keypoint/nose``, ``keypoints/AP`` ->
    ``val/keypoints/AP``; losses, ``lr`` and ``rpn/num_pos_anchors`` keep their names.
    """
    segs = [s for s in name.split("/") if s] or [name]
    if len(segs) == 1:
        return segs[0]
    group, inner, leaf = segs[0], segs[1:-1], segs[-1]
    suffix = "_per_keypoint" if leaf in KEYPOINT_NAMES else "_parts"
    return "/".join([EVAL_GROUPS.get(group, group), *(s + suffix for s in inner), leaf])


def neptune_enabled(cfg_flag: bool, env: Mapping[str, str] = os.environ) -> bool:
    """True when the config flag is set or ``MOTION_KEYPOINTS_NEPTUNE`` is 1/true/yes/on."""
    return bool(cfg_flag) or env.get(ENV_FLAG, "").strip().lower() in ("1", "true", "yes", "on")


def make_neptune_hook(
    cfg_flag: bool,
    config: Union[Mapping, str],
    run_name: str,
    output_dir: PathLike,
    period: int = 20,
    tags: Sequence[str] = (),
    env: Mapping[str, str] = os.environ,
) -> NeptuneHook | None:
    """A :class:`NeptuneHook` when tracking is enabled, else None (``neptune`` stays unimported)."""
    if not neptune_enabled(cfg_flag, env):
        return None
    return NeptuneHook(config, run_name, output_dir, period=period, tags=tags)


def build_tracking_hook(cfg, env: Mapping[str, str] = os.environ) -> NeptuneHook | None:
    """The tracking hook of a kit config (``TRACKING.*``), named after its ``OUTPUT_DIR``."""
    out = Path(cfg.OUTPUT_DIR)
    return make_neptune_hook(
        cfg.TRACKING.NEPTUNE,
        cfg,
        out.resolve().name,
        out,
        period=cfg.TRACKING.PERIOD,
        tags=list(cfg.TRACKING.TAGS),
        env=env,
    )


@contextlib.contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the duration of the block unless it is already set."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _server_problem(token: str, timeout: float) -> str | None:
    """Why the server named in the token cannot be reached (None when it can or we cannot tell).

    Neptune retries a blocked connection for a minute or more; a plain TCP connect with a short
    timeout finds that out first. Behind a proxy the check is left to Neptune.
    """
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return None
    try:
        info = json.loads(base64.b64decode(token.encode()).decode())
        parsed = urlparse(info.get("api_url") or info["api_address"])
    except Exception:
        return None  # neptune rejects a malformed token itself, without network access
    if not parsed.hostname:
        return None
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"the Neptune server {parsed.hostname} cannot be reached ({type(exc).__name__})"


def _config_params(config: Union[Mapping, str]) -> Tuple[Dict[str, Any], str]:
    """``(nested dict, YAML text)`` of a YAML string, a detectron2 CfgNode or a plain mapping."""
    if isinstance(config, str):
        return yaml.safe_load(config) or {}, config
    if hasattr(config, "dump"):
        text = config.dump()
        return yaml.safe_load(text) or {}, text
    plain = json.loads(json.dumps(config, default=str))
    return plain, yaml.safe_dump(plain, sort_keys=False)


class NeptuneHook(HookBase):
    """Log the config, training scalars, validation metrics and best checkpoint to Neptune.

    Every ``period`` iterations the newest value of each scalar in the trainer's EventStorage
    (losses, ``lr``, validation metrics) goes to ``metrics/<name>`` at its own iteration
    (:func:`neptune_name`: ``metrics/val/rmse``, ``metrics/val/rmse_per_keypoint/<keypoint>``),
    with the same smoothing as detectron2's TensorBoard writer; the best checkpoint's record
    goes to ``best_checkpoint`` whenever it changes and at the end. A failure inside Neptune is reported
    once and switches the hook off; it never stops training.
    """

    def __init__(
        self,
        config: Union[Mapping, str],
        run_name: str,
        output_dir: PathLike,
        period: int = 20,
        tags: Sequence[str] = (),
        connect_timeout: float = 5.0,
        stop_timeout: float = 120.0,
        window_size: int = 20,
    ):
        if period < 1:
            raise ValueError(f"period must be a positive number of iterations, got {period}")
        self.config = config
        self.run_name = run_name
        self.output_dir = Path(output_dir)
        self.period = period
        self.tags = list(tags)
        self.connect_timeout = connect_timeout
        self.stop_timeout = stop_timeout
        self.window_size = window_size
        self.run = None
        #: The Neptune mode actually used ("async", "offline", ...); None while inactive.
        self.mode: str | None = None
        self.data_dir = Path(
            os.environ.get("NEPTUNE_DATA_DIRECTORY") or self.output_dir / ".neptune"
        )
        self._last_logged: Dict[str, int] = {}
        self._best_logged: Dict[str, Any] | None = None
        self._env = contextlib.ExitStack()

    def before_train(self):
        try:
            import neptune
        except ImportError:
            logger.warning(
                "Neptune tracking is enabled but the `neptune` package is not installed "
                "(pip install neptune); training continues without Neptune"
            )
            return
        self.run = self._start(neptune)
        if self.run is not None:
            self._safely(self._log_config)

    def after_step(self):
        if self.run is not None and (self.trainer.iter + 1) % self.period == 0:
            self._safely(self._log_scalars)

    def after_train(self):
        for log in (self._log_scalars, self._log_best_checkpoint):
            if self.run is not None:
                self._safely(log)
        if self.run is not None:
            self._stop()

    def _start(self, neptune):
        """Start a run in the configured mode, falling back to offline after one warning."""
        mode = os.environ.get("NEPTUNE_MODE", "async")
        project = os.environ.get("NEPTUNE_PROJECT", "").strip() or None
        problem = None
        if mode not in ("offline", "debug"):
            token = os.environ.get("NEPTUNE_API_TOKEN", "").strip()
            if not token:
                problem = "NEPTUNE_API_TOKEN is not set"
            elif project is None:
                problem = "NEPTUNE_PROJECT is not set"
            else:
                problem = _server_problem(token, self.connect_timeout)
        if problem is None:
            try:
                return self._init(neptune, mode, project)
            except Exception as exc:
                problem = f"starting the {mode} run failed ({type(exc).__name__})"
        logger.warning(
            "Neptune: %s; logging offline to %s instead (upload later with `neptune sync --path "
            "%s`); training continues",
            problem,
            self.data_dir,
            self.data_dir,
        )
        try:
            return self._init(neptune, "offline", None)
        except Exception as exc:
            logger.warning(
                "Neptune offline logging failed too (%s); training continues without it",
                type(exc).__name__,
            )
            return None

    def _init(self, neptune, mode: str, project: str | None):
        # Neptune reads NEPTUNE_DATA_DIRECTORY while the run is open: keep it set until _stop.
        env = contextlib.ExitStack()
        env.enter_context(_env_default("NEPTUNE_DATA_DIRECTORY", str(self.data_dir)))
        try:
            run = neptune.init_run(
                project=project,
                name=self.run_name,
                tags=self.tags,
                mode=mode,
                capture_stdout=False,
                capture_stderr=False,
            )
        except BaseException:
            env.close()
            raise
        self.mode, self._env = mode, env
        return run

    def _stop(self) -> None:
        """Stop the run (waiting at most ``stop_timeout`` s for uploads) and restore the env."""
        run, self.run = self.run, None
        try:
            with contextlib.suppress(Exception):
                run.stop(seconds=self.stop_timeout)
        finally:
            self._env.close()

    def _safely(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:
            logger.warning(
                "Neptune logging failed (%s); Neptune is switched off for the rest of this run, "
                "training continues",
                type(exc).__name__,
            )
            self._stop()

    def _log_config(self) -> None:
        from neptune.types import File
        from neptune.utils import stringify_unsupported

        params, text = _config_params(self.config)
        self.run["parameters"] = stringify_unsupported(params)
        self.run["config"].upload(File.from_content(text, extension="yaml"))

    def _log_scalars(self) -> None:
        storage = self.trainer.storage
        for name, (value, itr) in storage.latest_with_smoothing_hint(self.window_size).items():
            if itr > self._last_logged.get(name, -1):
                self.run[f"metrics/{neptune_name(name)}"].append(float(value), step=itr)
                self._last_logged[name] = itr
        self._log_best_checkpoint()

    def best_checkpoint(self) -> Dict[str, Any] | None:
        """The best checkpoint's record (path, iteration, metric, val_rmse): from the trainer's
        best-checkpoint hook (:class:`motion_keypoints.engine.hooks.BestCheckpointer`, its
        ``best_record``), else from ``OUTPUT_DIR/best_checkpoint.json``; None when neither has
        one."""
        best = None
        for hook in getattr(getattr(self, "trainer", None), "_hooks", None) or ():
            best = getattr(hook, "best_record", None)
            if best is not None:
                break
        if best is None:
            best = read_best_checkpoint(self.output_dir)
        if best is None:
            return None
        return {k: str(v) if isinstance(v, os.PathLike) else v for k, v in dict(best).items()}

    def _log_best_checkpoint(self) -> None:
        best = self.best_checkpoint()
        if best is not None and best != self._best_logged:
            from neptune.utils import stringify_unsupported

            self.run["best_checkpoint"] = stringify_unsupported(best)
            self._best_logged = best
