"""The kit's config keys and loading live in :mod:`motion_keypoints.engine.config` (both
families share them); this module keeps the names importable from their old place."""

from ...engine.config import (  # noqa: F401  (re-exports)
    DEFAULT_OUTPUT_DIR,
    KIT_KEY_RULES,
    ZOO_PREFIX,
    CfgNode,
    ConfigError,
    add_kit_config,
    check_config,
    coerce_int_for_float,
    default_output_dir,
    legacy_check_images,
    merge_problem,
    schedule_opts,
    setup_cfg,
)
