"""The base of every error that is the user's to fix (bad data, config, options, missing files of
an earlier stage). The command-line wrapper (:mod:`motion_keypoints.cli._run`) prints such an
error as ``error: ...`` without a traceback and exits 1."""


class UserError(Exception):
    """An error whose message says what to fix; no traceback is needed to act on it."""


class SetupError(UserError, RuntimeError):
    """A run cannot start: missing augmentation set, weights that cannot be loaded, ..."""
