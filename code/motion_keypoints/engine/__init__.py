"""What every model family shares, below the families (``docs/architecture.md``): config keys and
loading (:mod:`.config`), the run's datasets (:mod:`.datasets`) and evaluator (:mod:`.evaluator`),
the generic trainer (:mod:`.trainer`), checkpoints (:mod:`.checkpoint`), hooks (:mod:`.hooks`,
:mod:`.tracking`, :mod:`.progress`), the inference skeleton (:mod:`.inference`), the 17 -> K
keypoint transfer (:mod:`.transfer`), and the run start (:mod:`.run`, over :mod:`.data_cache`,
:mod:`.aug_set`, :mod:`.weights_check`, :mod:`.record`, :mod:`.metrics_log`). Nothing here
imports a family."""
