"""Problem 2: BYOL self-supervised pre-training, a supervised backbone and the A-E fine-tuning
study.

``datasets`` (csv images -> uint8 tensors), ``augment`` (per-sample batch augmentation on the
device), ``models`` (torchvision ResNets, backbone files), ``pretrain`` (BYOL and supervised
pre-training, one process or data-parallel ones: ``distributed``), ``finetune`` (settings A-E,
prediction), ``knn`` (feature monitor), ``checkpoint`` (atomic files, resume checks), ``jobs``
(the API notebooks call), ``bench`` (loader cost).
"""
