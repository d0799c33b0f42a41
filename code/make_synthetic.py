"""Write synthetic motion-keypoint data in the competition layout.

    python code/make_synthetic.py --out outputs/synthetic --train 240 --test 60 [--width 1920
        --height 1080 --seed 0]

See ``motion_keypoints.synthetic`` for what the images show; ``--help`` lists every option.
"""

import sys

from motion_keypoints.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
