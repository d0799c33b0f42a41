"""``python -m motion_keypoints COMMAND [ARGS]``: the same as the ``motion-keypoints`` command."""

from motion_keypoints.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
