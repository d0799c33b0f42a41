"""Data roots: layout and validation (:mod:`.layout`), image names (:mod:`.naming`), the
leak-free split (:mod:`.split`), the label audit (:mod:`.audit`, :mod:`.audit_report`), the
check_data logic (:mod:`.check`) and synthetic data (:mod:`.synthetic`)."""
