"""Problem 2: BYOL self-supervised pre-training, a supervised backbone and the A-E fine-tuning
study.

``datasets`` (csv images -> uint8 tensors), ``augment`` (per-sample batch augmentation on the
device), ``models`` (torchvision ResNets, backbone files), ``request`` (what a user asks of one
run), ``pretrain_run`` / ``pretrain`` (BYOL and supervised pre-training: the run folder's
entry, then the loop; one process or data-parallel ones: ``distributed``), ``ae`` (settings
A-E), ``finetune_run`` / ``finetune`` (fine-tuning one setting: entry, then loop), ``predict``
(the hw4_2 contract), ``study`` (the A-E study and its raw table), ``curve`` (the budget
curve), ``knn`` (feature monitor), ``loop`` and ``checkpoint`` (the loops' shared skeleton,
atomic files, resume checks), ``bench`` (loader cost).
"""
